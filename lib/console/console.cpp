#include "console/console.h"

#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/URI.h>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <istream>
#include <map>
#include <tuple>

#include "auth/secrets.h"
#include "common/form.h"
#include "common/json.h"
#include "common/log.h"
#include "common/text.h"
#include "common/units.h"
#include "console/assets.h"
#include "console/pages.h"
#include "console/web.h"
#include "journal/journal.h"
#include "journal/queue.h"
#include "journal/requests.h"

namespace mews::console {

using Poco::Net::HTTPResponse;

namespace {

constexpr std::string_view kSessionCookie = "mews_console";
constexpr std::string_view kNonceCookie = "mews_console_sign_in";
constexpr std::size_t kMaxFormBytes = 64 * 1024;
constexpr int kPageSize = 50;
constexpr std::int64_t kActivityBucketMs = 5 * 60 * 1000;
constexpr int kActivityBuckets = 24 * 12;  // the last 24 h in 5-minute buckets
constexpr std::int64_t kActivityMaxAgeMs = 10'000;
constexpr std::int64_t kHourMs = 3'600'000;
constexpr auto kSampleEvery = std::chrono::seconds(60);

// Nothing inline, nothing from elsewhere: the pages' own stylesheet and script only.
constexpr const char* kContentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

std::optional<std::int64_t> positiveNumber(const std::string& text) {
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value <= 0) return std::nullopt;
  return value;
}

// TIME as the CLI reads it (ISO 8601 or an age before now), and as the
// filter's help promises: a plain date (2026-11-27) or a time without a zone
// (2026-11-27T10:00) is UTC.
std::optional<std::int64_t> timeArgument(const std::string& text, std::int64_t now_ms) {
  if (const auto iso = parseIsoMillis(text)) return iso;
  const bool date = text.size() >= 10 && text[4] == '-' && text[7] == '-';
  if (date && text.size() == 10) return parseIsoMillis(text + "T00:00:00Z");
  if (date && text.size() == 16 && text[10] == 'T') return parseIsoMillis(text + ":00Z");
  if (date && text.size() == 19 && text[10] == 'T') return parseIsoMillis(text + "Z");
  const auto age = parseDuration(text);
  if (age.ok()) return now_ms - age.value().count();
  return std::nullopt;
}

// Only a path of the console itself may be the target of the sign-in's redirect.
std::string safeNext(const std::string& next) {
  if (next.rfind("/console/", 0) != 0 || next.find("//") != std::string::npos || next.find('\\') != std::string::npos ||
      next.find_first_of("\r\n") != std::string::npos)
    return "/console/";
  return next;
}

std::string plural(std::int64_t count, std::string_view one, std::string_view many) {
  return fmt::format("{} {}", count, count == 1 ? one : many);
}

}  // namespace

auth::HostRule consoleHostRule(const config::Settings& settings) {
  const auto listen = auth::parseHost(settings.admin.listen);
  auth::HostRule rule;
  rule.listen_host = listen ? listen->name : std::string();
  rule.any_address = true;
  rule.names = settings.console.host_names;
  return rule;
}

// One request as the console sees it.
struct Console::Request {
  Poco::Net::HTTPServerRequest& http;
  Poco::Net::HTTPServerResponse& response;
  std::string path;
  form::Params query;
  form::Params form;
  bool post = false;
  std::string remote;
  std::int64_t now_ms = 0;

  [[nodiscard]] std::optional<std::string> cookie(std::string_view name) const {
    return web::cookie(http.get("Cookie", ""), name);
  }

  void securityHeaders(bool cache) {
    response.set("Content-Security-Policy", kContentSecurityPolicy);
    response.set("X-Content-Type-Options", "nosniff");
    response.set("X-Frame-Options", "DENY");
    // Not no-referrer: with it, browsers send "Origin: null" on posts, and the
    // Origin check needs the real one. Nothing leaves for other sites.
    response.set("Referrer-Policy", "same-origin");
    response.set("Cross-Origin-Opener-Policy", "same-origin");
    response.set("Cross-Origin-Resource-Policy", "same-origin");
    response.set("Cache-Control", cache ? "no-cache" : "no-store");
  }

  void send(HTTPResponse::HTTPStatus status, std::string_view content_type, const std::string& body) {
    securityHeaders(false);
    response.setStatusAndReason(status);
    response.setContentType(std::string(content_type));
    response.sendBuffer(body.data(), body.size());
  }
  void html(HTTPResponse::HTTPStatus status, const std::string& body) {
    send(status, "text/html; charset=utf-8", body);
  }
  void redirect(const std::string& location) {
    securityHeaders(false);
    response.setStatusAndReason(HTTPResponse::HTTP_SEE_OTHER);
    response.set("Location", location);
    response.setContentLength(0);
    response.send();
  }
};

Console::Console(ConsoleSources sources)
    : settings_(sources.settings),
      writer_(sources.writer),
      clock_(sources.clock),
      on_requeued_(std::move(sources.on_requeued)),
      ingest_(sources.ingest),
      targets_(std::move(sources.targets)),
      tls_(!sources.settings.admin.tls_certificate.empty()),
      host_rule_(consoleHostRule(sources.settings)),
      started_ms_(sources.clock.wallMillis()),
      sessions_(sources.settings.console.session_lifetime.count()) {
  const auto& console = settings_.console;
  if (!console.password_hash.empty()) {
    std::string error;
    auto hash = auth::parsePasswordHash(console.password_hash, error);
    if (!hash) throw std::runtime_error("[console] password_hash: " + error);
    credential_ = auth::Credential::fromHash(std::move(*hash));
    // The console's credential is its own: refuse a hash a webhook token would match.
    for (const auto& token : settings_.server.tokens)
      if (credential_->verify(token))
        throw std::runtime_error(
            "[console] password_hash: is the hash of a webhook token; choose a password of its own");
  } else if (!console.password.empty()) {
    credential_ = auth::Credential::fromSecret(console.password);
  }
  samples_.push_back({started_ms_, rejectionCounts()});
}

Console::~Console() {
  stop();
}

void Console::start() {
  if (sampler_.joinable()) return;
  sampler_ = std::thread([this] { sampleLoop(); });
}

void Console::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  sampler_wake_.notify_all();
  if (sampler_.joinable()) sampler_.join();
}

bool Console::owns(const std::string& path) {
  return path == "/" || path == "/console" || path.rfind("/console/", 0) == 0;
}

void Console::handle(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response) {
  Request r{request, response, {}, {}, {}, false, request.clientAddress().host().toString(), clock_.wallMillis()};
  try {
    const Poco::URI uri(request.getURI());
    r.path = uri.getPath();
    r.query = form::Params(form::parseUrlEncoded(uri.getRawQuery()));
    r.post = request.getMethod() == Poco::Net::HTTPRequest::HTTP_POST;
    route(r);
  } catch (const journal::StorageError& e) {
    log::warn("console", "journal read failed", {{"path", r.path}, {"error", e.what()}});
    if (!response.sent())
      r.html(HTTPResponse::HTTP_SERVICE_UNAVAILABLE,
             pages::message({"Journal unavailable"}, "The journal cannot be read right now", e.what()));
  } catch (const std::exception& e) {
    log::error("console", "request failed", {{"path", r.path}, {"error", e.what()}});
    if (!response.sent())
      r.html(HTTPResponse::HTTP_INTERNAL_SERVER_ERROR, pages::message({"Error"}, "Something went wrong", e.what()));
  }
}

void Console::route(Request& r) {
  if (r.path == "/" || r.path == "/console") return r.redirect("/console/");
  // DNS rebinding: a foreign name in Host means a page elsewhere is talking to us.
  if (!auth::hostAllowed(r.http.get("Host", ""), host_rule_)) {
    log::warn("console", "request refused: host not accepted", {{"remote", r.remote}});
    return r.send(HTTPResponse::HTTP_MISDIRECTED_REQUEST, "text/plain; charset=utf-8",
                  "this host name is not accepted; use the relay's address or add the name to [console] "
                  "host_names\n");
  }
  constexpr std::string_view kStatic = "/console/static/";
  if (r.path.rfind(kStatic, 0) == 0) {
    const std::string name = r.path.substr(kStatic.size());
    for (const auto& asset : consoleAssets()) {
      if (asset.name != name) continue;
      r.securityHeaders(true);
      r.response.setStatusAndReason(HTTPResponse::HTTP_OK);
      r.response.setContentType(std::string(asset.content_type));
      return r.response.sendBuffer(asset.body.data(), asset.body.size());
    }
    return r.send(HTTPResponse::HTTP_NOT_FOUND, "text/plain; charset=utf-8", "no such file\n");
  }
  if (!credential_) return r.html(HTTPResponse::HTTP_FORBIDDEN, pages::notConfigured({"Console not enabled"}));

  if (r.post) {
    // A post must come from our own page: the browser says where it came from.
    if (!web::originMatches(r.http.get("Origin", ""), r.http.get("Host", ""), tls_)) {
      log::warn("console", "post refused: origin does not match", {{"path", r.path}, {"remote", r.remote}});
      return r.html(HTTPResponse::HTTP_FORBIDDEN,
                    pages::message({"Refused"}, "Refused", "This form was not sent from this console's own page."));
    }
    if (r.http.hasContentLength() && r.http.getContentLength64() > static_cast<std::int64_t>(kMaxFormBytes))
      return r.html(HTTPResponse::HTTP_REQUEST_ENTITY_TOO_LARGE,
                    pages::message({"Too large"}, "Too large", "The form is larger than the console accepts."));
    std::string body(kMaxFormBytes + 1, '\0');
    r.http.stream().read(body.data(), static_cast<std::streamsize>(body.size()));
    body.resize(static_cast<std::size_t>(r.http.stream().gcount()));
    if (body.size() > kMaxFormBytes)
      return r.html(HTTPResponse::HTTP_REQUEST_ENTITY_TOO_LARGE,
                    pages::message({"Too large"}, "Too large", "The form is larger than the console accepts."));
    r.form = form::Params(form::parseUrlEncoded(body));
  }

  if (r.path == "/console/sign-in") {
    if (r.post) return signInPost(r);
    const auto session = sessions_.find(r.cookie(kSessionCookie).value_or(""), r.now_ms);
    if (session) return r.redirect("/console/");
    return signInPage(r, "", HTTPResponse::HTTP_OK);
  }

  const auto session = sessions_.find(r.cookie(kSessionCookie).value_or(""), r.now_ms);
  if (!session) {
    if (r.path == "/console/api/states")
      return r.send(HTTPResponse::HTTP_UNAUTHORIZED, "application/json", R"({"error":"sign in first"})");
    if (r.post)
      return r.html(HTTPResponse::HTTP_FORBIDDEN,
                    pages::message({"Sign in first"}, "Sign in first", "Your session has ended; sign in again."));
    std::string next = r.path;
    if (const auto raw = Poco::URI(r.http.getURI()).getRawQuery(); !raw.empty()) next += "?" + raw;
    return r.redirect("/console/sign-in?next=" + form::urlEncode(safeNext(next)));
  }
  if (r.post && !auth::equalSecrets(r.form.get("csrf").value_or(""), session->csrf)) {
    log::warn("console", "post refused: CSRF token missing or wrong", {{"path", r.path}, {"remote", r.remote}});
    return r.html(HTTPResponse::HTTP_FORBIDDEN, pages::message({"Refused"}, "Refused",
                                                               "The form's security token is missing or out of date. "
                                                               "Reload the page and try again."));
  }
  signedIn(r, *session);
}

void Console::signedIn(Request& r, const Session& session) {
  const std::string& path = r.path;
  if (r.post) {
    // Both read one replay request (journal/requests.h): ticked ids, or the
    // confirmation form's filter.
    if (path == "/console/replay" || path == "/console/replay-matching") return replay(r, session);
    if (path == "/console/purge") return purge(r, session);
    if (path == "/console/sign-out") return signOut(r, session);
  } else {
    if (path == "/console/") return overview(r, session);
    if (path == "/console/dead-letters") return deadLetterList(r, session);
    if (path == "/console/confirm") return confirmPage(r, session);
    if (path == "/console/api/states") return statesApi(r);
    constexpr std::string_view kLetter = "/console/dead-letters/";
    constexpr std::string_view kDelivery = "/console/deliveries/";
    constexpr std::string_view kAction = "/console/actions/";
    if (path.rfind(kLetter, 0) == 0) {
      if (const auto id = positiveNumber(path.substr(kLetter.size()))) {
        journal::Journal reader(settings_.journal.location(), {0, true});
        if (const auto delivery = journal::deliveryOfDeadLetter(reader, *id))
          return r.redirect(fmt::format("/console/deliveries/{}", *delivery));
        return r.html(HTTPResponse::HTTP_NOT_FOUND,
                      pages::message({"Not found", session.csrf}, "Not found",
                                     fmt::format("There is no dead letter {}: it was delivered after a replay, or "
                                                 "purged.",
                                                 *id)));
      }
    }
    if (path.rfind(kDelivery, 0) == 0) {
      std::string rest = path.substr(kDelivery.size());
      const bool raw = rest.size() > 8 && rest.compare(rest.size() - 8, 8, "/payload") == 0;
      if (raw) rest.resize(rest.size() - 8);
      if (const auto id = positiveNumber(rest)) return raw ? payload(r, *id) : deliveryPage(r, session, *id);
    }
    if (path.rfind(kAction, 0) == 0)
      if (const auto number = positiveNumber(path.substr(kAction.size())))
        return actionPage(r, session, static_cast<int>(*number));
  }
  const bool known = path == "/console/replay" || path == "/console/replay-matching" || path == "/console/purge" ||
                     path == "/console/sign-out" || path == "/console/" || path == "/console/dead-letters" ||
                     path == "/console/confirm";
  if (known) {
    r.response.set("Allow", r.post ? "GET" : "POST");
    return r.html(HTTPResponse::HTTP_METHOD_NOT_ALLOWED, pages::message({"Not allowed", session.csrf}, "Not allowed",
                                                                        "This address does not take that method."));
  }
  r.html(HTTPResponse::HTTP_NOT_FOUND,
         pages::message({"Not found", session.csrf}, "Not found", "There is no such page in the console."));
}

// --- signing in and out ------------------------------------------------------

void Console::signInPage(Request& r, const std::string& error, int status) {
  // The form's own token, also set as a cookie: a sign-in must be posted from
  // this page (login CSRF), on top of the Origin check.
  const std::string nonce = auth::randomHex(16);
  r.response.add("Set-Cookie", fmt::format("{}={}; Path=/console/sign-in; Max-Age=900; HttpOnly; SameSite=Strict{}",
                                           kNonceCookie, nonce, tls_ ? "; Secure" : ""));
  pages::Chrome chrome{"Sign in"};
  if (r.query.get("signed_out")) chrome.notice = "Signed out.";
  const std::string next = safeNext(r.post ? r.form.get("next").value_or("") : r.query.get("next").value_or(""));
  r.html(static_cast<HTTPResponse::HTTPStatus>(status),
         pages::signIn(chrome, {nonce, next, error, settings_.console.password_hash.empty()}));
}

void Console::signInPost(Request& r) {
  // The form's token first: a post without it guesses nothing and costs the address nothing.
  const std::string nonce = r.form.get("nonce").value_or("");
  if (nonce.empty() || !auth::equalSecrets(nonce, r.cookie(kNonceCookie).value_or(""))) {
    log::warn("console", "sign-in refused: form token missing or expired", {{"remote", r.remote}});
    return signInPage(r, "The sign-in form had expired. Please sign in again.", HTTPResponse::HTTP_FORBIDDEN);
  }
  const auto attempt = limiter_.attempt(r.remote, r.now_ms);
  if (attempt.retry_after_ms > 0) {
    log::warn("console", "sign-in refused: too many failures", {{"remote", r.remote}});
    r.response.set("Retry-After", std::to_string((attempt.retry_after_ms + 999) / 1000));
    return signInPage(r,
                      fmt::format("Too many failed sign-ins from your address. Try again in {}.",
                                  web::ageText(attempt.retry_after_ms + 999)),
                      HTTPResponse::HTTP_TOO_MANY_REQUESTS);
  }
  // The attempted password is never logged, stored or echoed.
  if (!credential_->verify(r.form.get("password").value_or(""))) {
    log::warn("console", "sign-in failed", {{"remote", r.remote}, {"failures", std::to_string(attempt.failures)}});
    return signInPage(r, "Wrong password.", HTTPResponse::HTTP_UNAUTHORIZED);
  }
  limiter_.succeeded(r.remote);
  const Session session = sessions_.create(r.now_ms);
  log::info("console", "signed in", {{"remote", r.remote}});
  r.response.add("Set-Cookie",
                 fmt::format("{}={}; Path=/console; Max-Age={}; HttpOnly; SameSite=Strict{}", kSessionCookie,
                             session.id, (session.expires_ms - session.created_ms) / 1000, tls_ ? "; Secure" : ""));
  r.response.add("Set-Cookie", fmt::format("{}=; Path=/console/sign-in; Max-Age=0; HttpOnly; SameSite=Strict{}",
                                           kNonceCookie, tls_ ? "; Secure" : ""));
  r.redirect(safeNext(r.form.get("next").value_or("")));
}

void Console::signOut(Request& r, const Session& session) {
  sessions_.end(session.id);
  log::info("console", "signed out", {{"remote", r.remote}});
  r.response.add("Set-Cookie", fmt::format("{}=; Path=/console; Max-Age=0; HttpOnly; SameSite=Strict{}", kSessionCookie,
                                           tls_ ? "; Secure" : ""));
  r.redirect("/console/sign-in?signed_out=1");
}

// --- reading -----------------------------------------------------------------

std::int64_t Console::deadLetterTotal(journal::Journal& reader) const {
  return journal::countDeadLetters(reader, {});
}

Console::ActivityCache Console::activity(journal::Journal& reader, std::int64_t now_ms) {
  {
    std::lock_guard lock(mutex_);
    if (activity_.computed_ms != 0 && now_ms - activity_.computed_ms < kActivityMaxAgeMs &&
        now_ms >= activity_.computed_ms)
      return activity_;
  }
  ActivityCache fresh;
  fresh.computed_ms = now_ms;
  // Buckets on 5-minute boundaries, the last one holding now: bars stay put between reloads.
  fresh.start_ms = (now_ms / kActivityBucketMs + 1) * kActivityBucketMs - kActivityBucketMs * kActivityBuckets;
  fresh.targets = journal::attemptActivity(reader, fresh.start_ms, kActivityBucketMs, kActivityBuckets);
  std::lock_guard lock(mutex_);
  activity_ = fresh;
  return fresh;
}

std::vector<std::uint64_t> Console::rejectionCounts() const {
  std::vector<std::uint64_t> counts(ingest::kRejectionCount, 0);
  if (ingest_ != nullptr)
    for (std::size_t i = 0; i < counts.size(); ++i) counts[i] = ingest_->rejected[i].value();
  return counts;
}

std::vector<std::pair<std::string, std::uint64_t>> Console::rejectionsSince(std::int64_t since_ms) const {
  const auto now = rejectionCounts();
  std::vector<std::uint64_t> base(now.size(), 0);
  {
    std::lock_guard lock(mutex_);
    // The earliest sample inside the window (the start-up one while younger than it).
    for (const auto& sample : samples_)
      if (sample.at_ms >= since_ms || &sample == &samples_.back()) {
        base = sample.counts;
        break;
      }
  }
  std::vector<std::pair<std::string, std::uint64_t>> out;
  for (std::size_t i = 0; i < now.size(); ++i)
    out.emplace_back(ingest::rejectionName(static_cast<ingest::Rejection>(i)),
                     now[i] >= base[i] ? now[i] - base[i] : 0);
  return out;
}

void Console::sampleLoop() {
  std::unique_lock lock(mutex_);
  while (!sampler_wake_.wait_for(lock, kSampleEvery, [this] { return stopping_; })) {
    lock.unlock();
    RejectionSample sample{clock_.wallMillis(), rejectionCounts()};
    lock.lock();
    samples_.push_back(std::move(sample));
    while (samples_.size() > 62) samples_.pop_front();  // an hour and a little
  }
}

std::vector<std::string> Console::targetNames() const {
  std::vector<std::string> names;
  if (targets_) {
    for (const auto& snapshot : targets_()) names.push_back(snapshot.name);
  } else {
    for (const auto& target : settings_.targets) names.push_back(target.name);
  }
  return names;
}

void Console::overview(Request& r, const Session& session) {
  int hours = 6;
  if (const auto asked = r.query.get("hours")) hours = *asked == "1" ? 1 : *asked == "24" ? 24 : 6;
  journal::Journal reader(settings_.journal.location(), {0, true});
  const std::vector<std::string> names = targetNames();

  pages::Overview view;
  view.now_ms = r.now_ms;
  view.chart_hours = hours;
  const ActivityCache cache = activity(reader, r.now_ms);
  view.activity_as_of_ms = cache.computed_ms;
  // 1 h and 6 h in 5-minute bars, 24 h in 15-minute bars.
  const int group = hours == 24 ? 3 : 1;
  const int base_buckets = hours * 12;
  view.bucket_ms = kActivityBucketMs * group;
  view.chart_start_ms = cache.start_ms + kActivityBucketMs * (kActivityBuckets - base_buckets);

  if (reader.backend() == journal::Backend::Postgres) {
    view.relays = journal::relays(reader);
    for (const auto& lease : journal::leases(reader))
      if (lease.expires_in_s > 0) view.dispatched_by[lease.target] = journal::ownerName(lease.owner);
  }
  // The engine's circuits, for the targets this relay dispatches; the journal's for the others.
  std::map<std::string, std::string> live_circuits;
  if (targets_)
    for (const auto& snapshot : targets_()) {
      const auto owner = view.dispatched_by.find(snapshot.name);
      if (view.relays.empty() || (owner != view.dispatched_by.end() && owner->second == settings_.relay.name))
        live_circuits[snapshot.name] = delivery::circuitName(snapshot.circuit);
    }
  for (auto& queue : journal::targetQueues(reader, names)) {
    pages::TargetRow row;
    row.circuit = live_circuits.count(queue.target) ? live_circuits[queue.target] : queue.circuit;
    row.chart.assign(static_cast<std::size_t>(base_buckets / group), {});
    for (const auto& [target, buckets] : cache.targets) {
      if (target != queue.target) continue;
      for (std::size_t i = 0; i < buckets.size(); ++i) {
        row.delivered_24h += buckets[i].delivered;
        row.failed_24h += buckets[i].failed;
        const auto offset = static_cast<std::int64_t>(i) - (kActivityBuckets - base_buckets);
        if (offset < 0) continue;
        auto& bar = row.chart[static_cast<std::size_t>(offset / group)];
        bar.delivered += buckets[i].delivered;
        bar.failed += buckets[i].failed;
      }
    }
    row.queue = std::move(queue);
    view.targets.push_back(std::move(row));
  }

  const auto location = settings_.journal.location();
  view.journal.bytes = journal::journalSizeBytes(reader);
  view.journal.path = location.display();
  if (location.backend() == journal::Backend::Sqlite) view.journal.free_bytes = journal::freeDiskBytes(location.path);
  view.journal.min_free = settings_.journal.min_free;
  view.journal.max_size = settings_.journal.max_size;

  view.ingest.batches_hour = journal::batchesSince(reader, r.now_ms - kHourMs);
  view.ingest.rejected_since_start = rejectionsSince(0);
  view.ingest.rejected_hour = rejectionsSince(r.now_ms - kHourMs);
  view.ingest.uptime_ms = r.now_ms - started_ms_;

  pages::Chrome chrome{"Overview", session.csrf, "overview", deadLetterTotal(reader)};
  chrome.refresh_seconds = 30;
  r.html(HTTPResponse::HTTP_OK, pages::overview(chrome, view));
}

namespace {

// The list's filter from a query or a form. `errors` gets one line per value
// that could not be read: a filter read in part would show, replay or purge
// more than was asked for, so the caller answers 400 and does nothing.
journal::DeadLetterQuery queryOf(const form::Params& params, std::int64_t now_ms, pages::Filter& shown,
                                 std::vector<std::string>& errors) {
  journal::DeadLetterQuery query;
  shown.target = params.get("target").value_or("");
  shown.reason = params.get("reason").value_or("");
  shown.since = params.get("since").value_or("");
  shown.until = params.get("until").value_or("");
  if (!shown.target.empty()) query.target = shown.target;
  if (!shown.reason.empty()) {
    if (std::find(std::begin(journal::kDeathReasons), std::end(journal::kDeathReasons), shown.reason) ==
        std::end(journal::kDeathReasons))
      errors.push_back(fmt::format("Reason: '{}' is not rejected, max_attempts or max_age.", shown.reason));
    else
      query.reason = shown.reason;
  }
  for (const auto& [label, text, bound] : {std::tuple{"Died since", &shown.since, &query.since_ms},
                                           std::tuple{"Died before", &shown.until, &query.until_ms}}) {
    if (text->empty()) continue;
    *bound = timeArgument(*text, now_ms);
    if (!*bound)
      errors.push_back(
          fmt::format("{}: '{}' is neither an age (30m, 2h, 3d) nor an ISO 8601 date or time in UTC (2026-11-27, "
                      "2026-11-27T10:00).",
                      label, *text));
  }
  // Absolute bounds carried by the confirmation forms.
  for (const auto& [name, bound] : {std::pair{"since_ms", &query.since_ms}, std::pair{"until_ms", &query.until_ms}})
    if (const auto text = params.get(name)) {
      *bound = positiveNumber(*text);
      if (!*bound) errors.push_back(fmt::format("{}: '{}' is not a time in milliseconds.", name, *text));
    }
  return query;
}

std::string joinedErrors(const std::vector<std::string>& errors) {
  std::string out;
  for (const auto& error : errors) out += (out.empty() ? "" : " ") + error;
  return out;
}

std::string describe(const journal::DeadLetterQuery& query) {
  std::vector<std::string> parts;
  if (query.target) parts.push_back("of target " + *query.target);
  if (query.reason) parts.push_back("with reason " + *query.reason);
  if (query.since_ms) parts.push_back("that died since " + formatIsoMillis(*query.since_ms).substr(0, 19) + " UTC");
  if (query.until_ms) parts.push_back("that died before " + formatIsoMillis(*query.until_ms).substr(0, 19) + " UTC");
  if (parts.empty()) return "in all (every target, every reason)";
  std::string out;
  for (const auto& part : parts) out += (out.empty() ? "" : ", ") + part;
  return out;
}

std::string cursorUrl(const pages::Filter& filter, std::string_view direction, const journal::DeadLetter& letter) {
  const std::string query = filter.query();
  return fmt::format("/console/dead-letters?{}{}{}_at={}&{}_id={}", query, query.empty() ? "" : "&", direction,
                     form::urlEncode(letter.died_at), direction, letter.id);
}

}  // namespace

void Console::deadLetterList(Request& r, const Session& session) {
  pages::DeadLetterList view;
  view.now_ms = r.now_ms;
  const auto query = queryOf(r.query, r.now_ms, view.filter, view.filter_errors);
  view.targets = targetNames();
  if (!view.filter_errors.empty()) {
    // The form again with what it could not read, and no list: none of it would match what was asked.
    journal::Journal reader(settings_.journal.location(), {0, true});
    pages::Chrome chrome{"Dead letters", session.csrf, "dead-letters", deadLetterTotal(reader)};
    return r.html(HTTPResponse::HTTP_BAD_REQUEST, pages::deadLetters(chrome, view));
  }
  std::optional<journal::DeadLetterCursor> older;
  std::optional<journal::DeadLetterCursor> newer;
  const auto older_at = r.query.get("older_at");
  const auto older_id = positiveNumber(r.query.get("older_id").value_or(""));
  if (older_at && older_id) older = journal::DeadLetterCursor{*older_at, *older_id};
  const auto newer_at = r.query.get("newer_at");
  const auto newer_id = positiveNumber(r.query.get("newer_id").value_or(""));
  if (newer_at && newer_id) newer = journal::DeadLetterCursor{*newer_at, *newer_id};

  journal::Journal reader(settings_.journal.location(), {0, true});
  view.page = journal::pageDeadLetters(reader, query, older, newer, kPageSize);
  view.matching = journal::countDeadLetters(reader, query);
  std::vector<std::int64_t> deliveries;
  for (const auto& letter : view.page.letters) deliveries.push_back(letter.delivery_id);
  for (auto& [id, excerpt] : journal::lastResponses(reader, deliveries)) view.answers[id] = std::move(excerpt);
  if (view.page.has_newer) view.newer_url = cursorUrl(view.filter, "newer", view.page.letters.front());
  if (view.page.has_older) view.older_url = cursorUrl(view.filter, "older", view.page.letters.back());
  pages::Chrome chrome{"Dead letters", session.csrf, "dead-letters", deadLetterTotal(reader)};
  r.html(HTTPResponse::HTTP_OK, pages::deadLetters(chrome, view));
}

void Console::deliveryPage(Request& r, const Session& session, std::int64_t delivery_id) {
  journal::Journal reader(settings_.journal.location(), {0, true});
  auto detail = journal::deliveryDetail(reader, delivery_id);
  if (!detail)
    return r.html(HTTPResponse::HTTP_NOT_FOUND,
                  pages::message({"Not found", session.csrf, "dead-letters"}, "Not found",
                                 fmt::format("There is no delivery {}: delivered work is pruned after the journal's "
                                             "retention, and purged dead letters are gone.",
                                             delivery_id)));
  pages::Chrome chrome{detail->dead_letter ? fmt::format("Dead letter {}", detail->dead_letter->id)
                                           : fmt::format("Delivery {}", delivery_id),
                       session.csrf, "dead-letters", deadLetterTotal(reader)};
  // Follow a delivery that is on its way (no script: reload).
  if (detail->state != journal::DeliveryState::Dead && detail->state != journal::DeliveryState::Delivered) {
    chrome.refresh_seconds = 3;
    chrome.refresh_without_script = true;
  }
  r.html(HTTPResponse::HTTP_OK, pages::detail(chrome, {r.now_ms, std::move(*detail)}));
}

void Console::payload(Request& r, std::int64_t delivery_id) {
  journal::Journal reader(settings_.journal.location(), {0, true});
  const auto detail = journal::deliveryDetail(reader, delivery_id);
  if (!detail) return r.send(HTTPResponse::HTTP_NOT_FOUND, "text/plain; charset=utf-8", "no such delivery\n");
  // Bytes as received, as a download: never rendered by the browser.
  r.response.set("Content-Disposition", fmt::format("attachment; filename=\"batch-{}.json\"", detail->batch_id));
  r.send(HTTPResponse::HTTP_OK, "application/octet-stream", detail->payload);
}

void Console::confirmPage(Request& r, const Session& session) {
  const std::string action = r.query.get("action").value_or("");
  if (action != "replay" && action != "purge")
    return r.html(HTTPResponse::HTTP_BAD_REQUEST,
                  pages::message({"Bad request", session.csrf}, "Bad request", "Say action=replay or action=purge."));
  pages::Filter shown;
  std::vector<std::string> errors;
  auto query = queryOf(r.query, r.now_ms, shown, errors);
  if (!errors.empty())
    return r.html(HTTPResponse::HTTP_BAD_REQUEST,
                  pages::message({"Bad request", session.csrf}, "Bad filter", joinedErrors(errors)));
  // What the page counts is what the button changes: nothing that dies later.
  query.until_ms = std::min(query.until_ms.value_or(r.now_ms + 1), r.now_ms + 1);
  journal::Journal reader(settings_.journal.location(), {0, true});
  pages::Confirm view;
  view.purge = action == "purge";
  view.count = view.purge ? journal::countDeadLetters(reader, query)
                          : static_cast<std::int64_t>(journal::deadLetterIdsMatching(reader, query).size());
  view.description = describe(query);
  if (view.purge) {
    journal::PurgeRequest request;
    request.what = journal::PurgeRequest::DeadLetters{query};
    view.fields = journal::encode(request);
  } else {
    journal::ReplayRequest request;
    request.what = journal::ReplayRequest::DeadLettersMatching{query, {}};
    view.fields = journal::encode(request);
  }
  const std::string back = shown.query();
  view.back_url = "/console/dead-letters" + (back.empty() ? "" : "?" + back);
  pages::Chrome chrome{view.purge ? "Purge dead letters" : "Replay dead letters", session.csrf, "dead-letters",
                       deadLetterTotal(reader)};
  r.html(HTTPResponse::HTTP_OK, pages::confirm(chrome, view));
}

void Console::actionPage(Request& r, const Session& session, int number) {
  const auto result = sessions_.action(session.id, number);
  if (!result)
    return r.html(HTTPResponse::HTTP_NOT_FOUND,
                  pages::message({"Not found", session.csrf}, "Not found",
                                 "This result is no longer kept (a session keeps its last few)."));
  journal::Journal reader(settings_.journal.location(), {0, true});
  pages::ActionPage view;
  view.result = *result;
  view.now_ms = r.now_ms;
  auto states = journal::deliveryStates(reader, result->delivery_ids);
  std::map<std::string, std::int64_t> counts;
  for (const auto& [id, state] : states) ++counts[std::string(journal::stateName(state))];
  const auto gone = static_cast<std::int64_t>(result->delivery_ids.size() - states.size());
  if (gone > 0) counts["gone (purged)"] = gone;
  view.by_state.assign(counts.begin(), counts.end());
  std::sort(states.begin(), states.end());
  if (states.size() > 200) states.resize(200);
  view.states = std::move(states);
  pages::Chrome chrome{result->summary, session.csrf, "dead-letters", deadLetterTotal(reader)};
  const bool settled = std::all_of(view.states.begin(), view.states.end(), [](const auto& s) {
    return s.second == journal::DeliveryState::Delivered || s.second == journal::DeliveryState::Dead;
  });
  if (!settled) {
    chrome.refresh_seconds = 3;
    chrome.refresh_without_script = true;
  }
  r.html(HTTPResponse::HTTP_OK, pages::action(chrome, view));
}

void Console::statesApi(Request& r) {
  std::vector<std::int64_t> ids;
  const std::string list = r.query.get("d").value_or("");
  for (std::size_t start = 0; start < list.size() && ids.size() < 500;) {
    const auto comma = list.find(',', start);
    if (const auto id =
            positiveNumber(list.substr(start, comma == std::string::npos ? std::string::npos : comma - start)))
      ids.push_back(*id);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  journal::Journal reader(settings_.journal.location(), {0, true});
  std::string out = "{";
  for (const auto& [id, state] : journal::deliveryStates(reader, ids))
    out += fmt::format("{}\"{}\":{}", out.size() > 1 ? "," : "", id, json::quote(journal::stateName(state)));
  out += "}";
  r.send(HTTPResponse::HTTP_OK, "application/json", out);
}

// --- changing ------------------------------------------------------------------

namespace {

// The form without the console's own field: what is left is the request.
form::Pairs requestPairs(const form::Params& form) {
  form::Pairs pairs;
  for (const auto& pair : form.pairs())
    if (pair.first != "csrf") pairs.push_back(pair);
  return pairs;
}

}  // namespace

std::int64_t Console::replayLetters(const std::vector<journal::ReplayRequest>& steps,
                                    std::vector<std::int64_t>& delivery_ids) {
  std::int64_t moved = 0;
  for (const auto& step : steps) {
    auto deliveries = std::make_shared<std::vector<std::int64_t>>();
    auto unknown = std::make_shared<std::vector<std::int64_t>>();
    const std::int64_t now = clock_.wallMillis();
    const auto outcome = writer_
                             .submit([step, deliveries, unknown, now](journal::Journal& journal) {
                               deliveries->clear();  // a job may run twice (journal/writer.h)
                               const auto* named = std::get_if<journal::ReplayRequest::DeadLetterIds>(&step.what);
                               const auto* matching =
                                   std::get_if<journal::ReplayRequest::DeadLettersMatching>(&step.what);
                               for (const auto id : named ? named->ids : matching->among)
                                 if (const auto delivery = journal::deliveryOfDeadLetter(journal, id))
                                   deliveries->push_back(*delivery);
                               auto result = journal::apply(journal, step, now);
                               *unknown = std::move(result.unknown);
                               return result.count;
                             })
                             .get();
    if (!outcome.committed() || !unknown->empty()) {
      if (moved > 0 && on_requeued_) on_requeued_();
      throw std::runtime_error(fmt::format(
          "the journal did not take the replay ({}); {} replayed before that",
          outcome.committed() ? "no dead letter " + text::joinList(*unknown) + " any more" : outcome.error, moved));
    }
    moved += outcome.value;
    for (const auto id : *deliveries)
      if (delivery_ids.size() < kMaxTrackedItems) delivery_ids.push_back(id);
  }
  if (moved > 0 && on_requeued_) on_requeued_();
  return moved;
}

void Console::replay(Request& r, const Session& session) {
  const pages::Chrome refused{"Not replayed", session.csrf, "dead-letters"};
  if (r.path == "/console/replay" && r.form.all("id").empty())
    return r.html(HTTPResponse::HTTP_BAD_REQUEST,
                  pages::message({"Nothing selected", session.csrf, "dead-letters"}, "Nothing selected",
                                 "Tick the dead letters to replay first."));
  journal::ReplayRequest request;
  try {
    request = journal::decodeReplay(requestPairs(r.form));
  } catch (const journal::RequestError& e) {
    return r.html(HTTPResponse::HTTP_BAD_REQUEST, pages::message(refused, "Nothing was replayed", e.what()));
  }
  const auto* named = std::get_if<journal::ReplayRequest::DeadLetterIds>(&request.what);
  const auto* matching = std::get_if<journal::ReplayRequest::DeadLettersMatching>(&request.what);
  if ((!named && !matching) || request.dry_run)
    return r.html(HTTPResponse::HTTP_BAD_REQUEST,
                  pages::message(refused, "Nothing was replayed",
                                 "The console replays dead letters, ticked or matching a filter; the CLI does the "
                                 "rest (mews-relay replay --help)."));
  if (const auto conflict = journal::refusalByTargets(request, targetNames(), "in the running configuration"))
    return r.html(HTTPResponse::HTTP_CONFLICT, pages::message(refused, "Nothing was replayed", *conflict));
  std::vector<journal::ReplayRequest> steps;
  {
    journal::Journal reader(settings_.journal.location(), {0, true});
    // A page shown before a letter was delivered after a replay, or purged,
    // names it still: refused whole, so that what is replayed is what was
    // ticked (ids are never reused, so a gone letter's id names no other).
    if (named) {
      const auto gone = journal::unknownDeadLetters(reader, named->ids);
      if (!gone.empty())
        return r.html(HTTPResponse::HTTP_CONFLICT,
                      pages::message(refused, "Nothing replayed",
                                     fmt::format("No dead letter {} any more: delivered after a replay, or purged "
                                                 "since the page was shown. Nothing was replayed; reload the list.",
                                                 text::joinList(gone))));
    }
    steps = journal::replaySteps(reader, request);
  }
  ActionResult result;
  result.at_ms = r.now_ms;
  result.count = replayLetters(steps, result.delivery_ids);
  result.summary = fmt::format("Replayed {}", plural(result.count, "dead letter", "dead letters"));
  if (named && result.count < static_cast<std::int64_t>(named->ids.size()))
    result.summary += fmt::format(" ({} no longer dead)", static_cast<std::int64_t>(named->ids.size()) - result.count);
  if (matching) {
    std::size_t read = 0;
    for (const auto& step : steps)
      read += std::get<journal::ReplayRequest::DeadLettersMatching>(step.what).among.size();
    result.truncated = read > kMaxTrackedItems;
    result.summary += " " + describe(matching->query);
  }
  log::info("console", "replayed dead letters", {{"count", std::to_string(result.count)}, {"remote", r.remote}});
  r.redirect(fmt::format("/console/actions/{}", sessions_.addAction(session.id, std::move(result))));
}

void Console::purge(Request& r, const Session& session) {
  const pages::Chrome refused{"Not purged", session.csrf, "dead-letters"};
  journal::PurgeRequest request;
  try {
    request = journal::decodePurge(requestPairs(r.form));
  } catch (const journal::RequestError& e) {
    return r.html(HTTPResponse::HTTP_BAD_REQUEST, pages::message(refused, "Nothing was purged", e.what()));
  }
  const auto* letters = std::get_if<journal::PurgeRequest::DeadLetters>(&request.what);
  if (!letters || request.dry_run)
    return r.html(HTTPResponse::HTTP_BAD_REQUEST,
                  pages::message(refused, "Nothing was purged",
                                 "The console purges dead letters matching a filter; the CLI does the rest "
                                 "(mews-relay dlq purge --help)."));
  const auto outcome = writer_
                           .submit([request, now = r.now_ms](journal::Journal& journal) {
                             return journal::apply(journal, request, now);
                           })
                           .get();
  if (!outcome.committed())
    return r.html(
        HTTPResponse::HTTP_SERVICE_UNAVAILABLE,
        pages::message(refused, "Nothing was purged", "The journal did not take the change: " + outcome.error));
  ActionResult result;
  result.at_ms = r.now_ms;
  result.count = outcome.value;
  result.summary =
      fmt::format("Purged {} {}", plural(result.count, "dead letter", "dead letters"), describe(letters->query));
  log::info("console", "purged dead letters", {{"count", std::to_string(result.count)}, {"remote", r.remote}});
  r.redirect(fmt::format("/console/actions/{}", sessions_.addAction(session.id, std::move(result))));
}

}  // namespace mews::console
