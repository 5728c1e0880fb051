#include "delivery/http_client.h"

#include <algorithm>

#include <Poco/Exception.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/SSLManager.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/String.h>
#include <fmt/format.h>

#include "common/url.h"

namespace mews::delivery {
namespace {

Poco::Net::Context::Ptr clientContext() {
  // System CA store, full verification, TLS 1.2 at least.
  static Poco::Net::Context::Ptr context = [] {
    Poco::Net::Context::Ptr created =
        new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, "", "", "", Poco::Net::Context::VERIFY_RELAXED, 9,
                               /*loadDefaultCAs=*/true);
    created->requireMinimumProtocol(Poco::Net::Context::PROTO_TLSV1_2);
    return created;
  }();
  return context;
}

bool sameOrigin(const Poco::URI& a, const Poco::URI& b) {
  return a.getScheme() == b.getScheme() && a.getHost() == b.getHost() && a.getPort() == b.getPort();
}

}  // namespace

void initializeTls() {
  static std::once_flag once;
  std::call_once(once, [] { Poco::Net::initializeSSL(); });
}

namespace {

// Why `next` is not followed from `from` under `policy`; empty when it is.
std::string redirectRefusal(config::RedirectPolicy policy, const Poco::URI& origin, const Poco::URI& from,
                            const Poco::URI& next) {
  // The Location is the target's: a password or a signed query in it stays out
  // of the journal and the log.
  const std::string where = maskUrl(next.getScheme() + "://" + next.getAuthority());
  switch (policy) {
    case config::RedirectPolicy::None:
      return "redirect not followed (redirects = none): " + where;
    case config::RedirectPolicy::SameOrigin:
      if (sameOrigin(next, origin)) return {};
      return "redirect to another host not followed (redirects = same-origin): " + where;
    case config::RedirectPolicy::Any:
      if (next.getScheme() != "http" && next.getScheme() != "https") return "redirect to a non-HTTP URL: " + where;
      if (from.getScheme() == "https" && next.getScheme() == "http")
        return "redirect from https to http not followed: " + where;
      return {};
  }
  return "redirect not followed";
}

}  // namespace

// A session that tells the attempt using it about every connection it opens
// (Poco reconnects by itself when a kept-alive connection was closed), so that
// the attempt's deadline always watches the connection in use.
class PooledSession {
 public:
  virtual ~PooledSession() = default;
  virtual Poco::Net::HTTPClientSession& http() = 0;
  // The attempt using the session; null between attempts.
  AttemptDeadline* deadline = nullptr;
};

namespace {

Poco::Timespan timespanOf(std::chrono::milliseconds time) {
  // Never zero: to Poco (and SO_RCVTIMEO) a zero timeout means none at all.
  return Poco::Timespan(std::max<std::int64_t>(time.count(), 1) * 1000);
}

// A watched socket's own send and receive timeouts are a backstop this much
// past the deadline: the watchdog (deadline.h) ends the attempt at the
// deadline by shutting the socket down, which Poco reads as the end of the
// answer, keeping what arrived (the response excerpt); a socket timeout firing
// first would throw inside the read and lose it.
constexpr std::chrono::milliseconds kSocketBackstop{1000};

template <class Session>
class WatchedSession final : public Session, public PooledSession {
 public:
  template <class... Args>
  explicit WatchedSession(Args&&... args) : Session(std::forward<Args>(args)...) {}
  Poco::Net::HTTPClientSession& http() override { return *this; }

 protected:
  void connect(const Poco::Net::SocketAddress& address) override {
    if (deadline) {
      const Poco::Timespan left = timespanOf(deadline->remaining());
      const Poco::Timespan backstop = timespanOf(deadline->remaining() + kSocketBackstop);
      this->setTimeout(left, backstop, backstop);  // the connect is not watched yet
    }
    Session::connect(address);
    if (deadline) deadline->watch(this->socket());
  }
};

}  // namespace

TargetClient::TargetClient(const config::TargetSettings& target, AttemptWatchdog& watchdog)
    : uri_(target.url),
      timeout_(target.timeout),
      name_(target.name),
      max_idle_(static_cast<std::size_t>(target.concurrency)),
      redirects_(target.redirects),
      watchdog_(watchdog) {
  for (const auto& header : target.headers) configured_headers_.insert(Poco::toLower(header.first));
  // With redirects = any, an http target may lead to https.
  if (uri_.getScheme() == "https" || redirects_ == config::RedirectPolicy::Any) initializeTls();
}

TargetClient::~TargetClient() = default;

std::unique_ptr<PooledSession> TargetClient::acquire(const Poco::URI& uri, bool& reused) {
  reused = false;
  if (sameOrigin(uri, uri_)) {
    const std::lock_guard lock(mutex_);
    if (!idle_.empty()) {
      auto session = std::move(idle_.back());
      idle_.pop_back();
      reused = true;
      return session;
    }
  }
  std::unique_ptr<PooledSession> session;
  if (uri.getScheme() == "https")
    session =
        std::make_unique<WatchedSession<Poco::Net::HTTPSClientSession>>(uri.getHost(), uri.getPort(), clientContext());
  else
    session = std::make_unique<WatchedSession<Poco::Net::HTTPClientSession>>(uri.getHost(), uri.getPort());
  session->http().setKeepAlive(true);
  return session;
}

void TargetClient::release(std::unique_ptr<PooledSession> session, const Poco::URI& uri) {
  if (!sameOrigin(uri, uri_)) return;
  session->deadline = nullptr;
  const std::lock_guard lock(mutex_);
  if (idle_.size() < max_idle_) idle_.push_back(std::move(session));
}

HttpAttempt TargetClient::postOnce(const Poco::URI& uri, const std::string& body, const Headers& headers,
                                   AttemptDeadline& deadline, std::optional<std::string>& location, bool& reused) {
  HttpAttempt attempt;
  reused = false;
  if (deadline.expired()) {
    attempt.error = fmt::format("timed out after {}ms", timeout_.count());
    return attempt;
  }
  auto pooled = acquire(uri, reused);
  pooled->deadline = &deadline;
  Poco::Net::HTTPClientSession& session = pooled->http();
  bool reusable = false;
  try {
    const Poco::Timespan left = timespanOf(deadline.remaining());
    const Poco::Timespan backstop = timespanOf(deadline.remaining() + kSocketBackstop);
    session.setTimeout(left, backstop, backstop);  // for a connection opened now
    if (session.connected()) {
      // A kept-alive connection: watched as it is (Poco reconnects through
      // WatchedSession::connect if the server has closed it meanwhile).
      session.socket().setSendTimeout(backstop);
      session.socket().setReceiveTimeout(backstop);
      deadline.watch(session.socket());
    }
    Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_POST, uri.getPathEtc(),
                                   Poco::Net::HTTPMessage::HTTP_1_1);
    request.setContentType("application/json");
    request.setContentLength64(static_cast<Poco::Int64>(body.size()));
    request.setKeepAlive(true);
    for (const auto& [name, value] : headers) request.set(name, value);
    std::ostream& out = session.sendRequest(request);
    out.write(body.data(), static_cast<std::streamsize>(body.size()));
    out.flush();
    if (!out) {
      // The stream swallowed the socket's exception; Poco kept it.
      if (session.networkException() != nullptr) session.networkException()->rethrow();
      throw Poco::IOException("the request body could not be sent");
    }

    Poco::Net::HTTPResponse response;
    std::istream& in = session.receiveResponse(response);
    // Poco takes a head cut short by the end of the stream as complete: one
    // the watchdog cut is no answer.
    if (deadline.expired()) throw Poco::TimeoutException("response head not complete in time");
    attempt.status = static_cast<int>(response.getStatus());
    attempt.retry_after = response.get("Retry-After", "");
    if (response.has("Location")) location = response.get("Location");
    char buffer[4096];
    std::size_t total = 0;
    // The status is what counts; the body is read while the attempt's time
    // lasts (the watchdog ends a read that would outlast it).
    while (in && total <= kDrainBytes && !deadline.expired()) {
      in.read(buffer, sizeof buffer);
      const auto got = static_cast<std::size_t>(in.gcount());
      if (attempt.response_excerpt.size() < kExcerptBytes)
        attempt.response_excerpt.append(buffer, std::min(got, kExcerptBytes - attempt.response_excerpt.size()));
      total += got;
    }
    reusable = total <= kDrainBytes && !deadline.expired() && response.getKeepAlive();
  } catch (const Poco::TimeoutException&) {
    attempt.status.reset();
    attempt.error = fmt::format("timed out after {}ms", timeout_.count());
  } catch (const Poco::Exception& e) {
    attempt.status.reset();
    attempt.error = e.displayText();
  } catch (const std::exception& e) {
    attempt.status.reset();
    attempt.error = e.what();
  }
  pooled->deadline = nullptr;
  if (reusable) release(std::move(pooled), uri);
  return attempt;
}

const Headers& TargetClient::withoutConfigured(const Headers& headers, Headers& storage) const {
  storage.clear();
  for (const auto& header : headers)
    if (!configured_headers_.contains(Poco::toLower(header.first))) storage.push_back(header);
  return storage;
}

HttpAttempt TargetClient::post(const std::string& body, const Headers& headers) {
  const auto started = std::chrono::steady_clock::now();
  const AttemptWatchdog::Armed deadline = watchdog_.arm(timeout_, name_);
  Poco::URI uri = uri_;
  HttpAttempt attempt;
  Headers cross_origin_headers;
  for (int hop = 0;; ++hop) {
    std::optional<std::string> location;
    bool reused = false;
    // The configured headers (credentials, typically) go to the target's own origin only.
    const Headers& sent = sameOrigin(uri, uri_) ? headers : withoutConfigured(headers, cross_origin_headers);
    attempt = postOnce(uri, body, sent, *deadline, location, reused);
    // A kept-alive connection may have been closed by the server while idle:
    // one immediate retry on a fresh connection before reporting a failure.
    if (!attempt.status && reused && !deadline->expired())
      attempt = postOnce(uri, body, sent, *deadline, location, reused);
    const bool redirect = attempt.status && (*attempt.status == 307 || *attempt.status == 308);
    if (!redirect) break;
    if (!location) {
      attempt.error = "redirect without Location";
      attempt.redirect_refused = true;
      break;
    }
    Poco::URI next;
    try {
      next = Poco::URI(uri, *location);
    } catch (const Poco::Exception&) {
      attempt.error = "redirect to an unreadable Location";
      attempt.redirect_refused = true;
      break;
    }
    if (std::string refusal = redirectRefusal(redirects_, uri_, uri, next); !refusal.empty()) {
      attempt.error = std::move(refusal);
      attempt.redirect_refused = true;
      break;
    }
    if (hop + 1 > kMaxRedirects) {
      attempt.error = fmt::format("more than {} redirects", kMaxRedirects);
      attempt.redirect_refused = true;
      break;
    }
    uri = next;
  }
  if (!attempt.status && deadline->abandoned()) {
    attempt.abandoned = true;
    attempt.error = "abandoned: the relay is stopping";
  } else if (!attempt.status && deadline->expired()) {
    // Whatever the cut read or write reported: the deadline is why it failed.
    attempt.error = fmt::format("timed out after {}ms", timeout_.count());
  }
  attempt.duration = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  return attempt;
}

}  // namespace mews::delivery
