// console/pages.h: the console's HTML, from view models, with no I/O. Every
// value from outside (target names, event types, target answers, payloads,
// filter values, notices, errors) reaches the markup escaped, in text and in
// attributes; pages link their script and stylesheet and carry none inline;
// the states a page shows (signed in or out, dead letters or none, a circuit
// open, below the disk watermark, delivered, dead, purged) and the pager's
// links are the ones the view asks for.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include <string>
#include <string_view>

#include "common/clock.h"
#include "console/pages.h"

using namespace mews;
using namespace mews::console;

namespace {

constexpr std::int64_t kNow = 1'795'860'000'000;  // 2026-11-28T10:00:00Z

// A value that would be markup if it reached the page as is; `what` tells the
// places apart.
std::string hostile(std::string_view what) {
  return fmt::format(R"(<img src=x onerror="{}">'&)", what);
}
std::string escaped(std::string_view what) {
  return fmt::format("&lt;img src=x onerror=&quot;{}&quot;&gt;&#39;&amp;", what);
}

std::size_t count(const std::string& text, std::string_view part) {
  std::size_t n = 0;
  for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + part.size())) ++n;
  return n;
}

bool contains(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

// What every page must be: no markup of anyone else's, no inline script.
void checkPage(const std::string& html) {
  CHECK_FALSE(contains(html, "<img"));
  CHECK(count(html, "<script") == 1);
  CHECK(contains(html, R"(<script src="/console/static/console.js" defer></script>)"));
  CHECK(contains(html, R"(<link rel="stylesheet" href="/console/static/console.css">)"));
  CHECK(html.rfind("<!doctype html>", 0) == 0);
}

pages::Chrome signedIn(std::string title = "Overview", std::string active = "overview") {
  return pages::Chrome(std::move(title), "csrf-token-1", std::move(active), 0);
}

journal::DeadLetter letter(std::int64_t id, std::string target = "crm") {
  journal::DeadLetter l;
  l.id = id;
  l.delivery_id = id + 100;
  l.batch_id = id + 200;
  l.target = std::move(target);
  l.event_types = "ReservationUpdated,CustomerAdded";
  l.attempts = 3;
  l.last_status = 422;
  l.last_error = "HTTP 422";
  l.reason = "rejected";
  l.received_at = "2026-11-28T09:00:00.000Z";
  l.died_at = "2026-11-28T09:30:00.000Z";
  l.state = journal::DeliveryState::Dead;
  return l;
}

}  // namespace

TEST_CASE("chrome: signed out, no navigation and no sign-out; signed in, both, with the CSRF token") {
  const std::string out = pages::message(pages::Chrome("Refused"), "Refused", "Not from this console.");
  checkPage(out);
  CHECK_FALSE(contains(out, "main-nav"));
  CHECK_FALSE(contains(out, "sign-out"));

  pages::Chrome chrome("Dead letters", hostile("csrf"), "dead-letters", 4);
  const std::string in = pages::message(chrome, "Heading", "Text");
  checkPage(in);
  CHECK(contains(in, "main-nav"));
  CHECK(contains(in, R"(<input type="hidden" name="csrf" value=")" + escaped("csrf") + R"(">)"));
  CHECK(contains(in, R"(<a href="/console/dead-letters" aria-current="page">)"));
  CHECK_FALSE(contains(in, R"(<a href="/console/" aria-current="page">)"));
  CHECK(contains(in, R"(<span class="count alert">4</span>)"));

  chrome.dead = 0;
  CHECK(contains(pages::message(chrome, "h", "t"), R"(<span class="count">0</span>)"));
}

TEST_CASE("chrome: the title, notice, heading and text escaped; a reload with or without the script") {
  pages::Chrome chrome(hostile("title"));
  chrome.notice = hostile("notice");
  chrome.refresh_seconds = 15;
  const std::string page = pages::message(chrome, hostile("heading"), hostile("text"));
  checkPage(page);
  for (const auto* what : {"title", "notice", "heading", "text"}) {
    CAPTURE(what);
    CHECK(contains(page, escaped(what)));
  }
  CHECK(contains(page, R"(<meta http-equiv="refresh" content="15">)"));
  CHECK_FALSE(contains(page, "<noscript>"));

  chrome.refresh_without_script = true;
  CHECK(contains(pages::message(chrome, "h", "t"), R"(<noscript><meta http-equiv="refresh" content="15"></noscript>)"));
  chrome.refresh_seconds = 0;
  CHECK_FALSE(contains(pages::message(chrome, "h", "t"), "http-equiv"));
}

TEST_CASE("overview: hostile target names and errors escaped; dead letters called out; circuits and the disk") {
  pages::Overview view;
  view.now_ms = kNow;
  view.chart_hours = 6;
  view.bucket_ms = 15 * 60 * 1000;
  view.chart_start_ms = kNow - 6 * 3'600'000;
  view.activity_as_of_ms = kNow;
  pages::TargetRow row;
  row.queue.target = hostile("target");
  row.queue.pending = 7;
  row.queue.dead = 1;
  row.queue.last_error = hostile("error");
  row.queue.last_error_at = "2026-11-28T09:57:00.000Z";
  row.circuit = "half_open";
  row.chart = {{3, 1}, {0, 2}};
  view.targets.push_back(row);
  view.journal.path = hostile("path");
  view.journal.bytes = 1024;
  view.journal.free_bytes = 10;
  view.journal.min_free = 1000;
  view.ingest.rejected_since_start = {{hostile("reason"), 5}, {"token", 0}};
  view.ingest.rejected_hour = {{hostile("reason"), 2}, {"token", 0}};

  pages::Chrome chrome = signedIn();
  chrome.refresh_seconds = 10;
  const std::string page = pages::overview(chrome, view);
  checkPage(page);
  for (const auto* what : {"target", "error", "path", "reason"}) {
    CAPTURE(what);
    CHECK(contains(page, escaped(what)));
  }
  CHECK(contains(page, "<strong>1 dead letter</strong>"));
  CHECK(contains(page, R"(<span class="badge circuit-half_open">half-open</span>)"));
  CHECK(contains(page, "A circuit is <strong>open</strong>"));
  CHECK(contains(page, "below the watermark: ingest refused"));
  CHECK(contains(page,
                 R"(<th scope="row">)" + escaped("reason") + R"(</th><td class="num">2</td><td class="num">5</td>)"));
  CHECK_FALSE(contains(page, ">token<"));  // a reason never seen is not listed
  CHECK(contains(page, "3 sent, 3 failed attempts"));
  CHECK(contains(page, "<strong>6 h</strong>"));
  CHECK(contains(page, R"(<a href="/console/?hours=1#activity">1 h</a>)"));
  CHECK(contains(page, R"(<a href="/console/?hours=24#activity">24 h</a>)"));
}

TEST_CASE("overview: all well, no call-out, no circuit note, nothing rejected") {
  pages::Overview view;
  view.now_ms = kNow;
  view.bucket_ms = 60'000;
  pages::TargetRow row;
  row.queue.target = "crm";
  row.circuit = "closed";
  view.targets.push_back(row);
  view.journal.free_bytes = 1'000'000;
  view.journal.min_free = 1000;
  view.ingest.batches_hour = 1;
  const std::string page = pages::overview(signedIn(), view);
  checkPage(page);
  CHECK_FALSE(contains(page, "callout bad"));
  CHECK_FALSE(contains(page, "A circuit is"));
  CHECK_FALSE(contains(page, "below the watermark"));
  CHECK(contains(page, "none since the relay started"));
  CHECK(contains(page, "1 batch received"));
}

TEST_CASE("overview with several relays: every relay, who dispatches each target, hostile names escaped") {
  pages::Overview view;
  view.now_ms = kNow;
  view.bucket_ms = 60'000;
  pages::TargetRow row;
  row.queue.target = "crm";
  row.circuit = "closed";
  view.targets.push_back(row);
  view.journal.free_bytes = 1'000'000;
  journal::RelayRow live;
  live.relay.name = hostile("relay");
  live.relay.instance = "a1";
  live.relay.version = "0.1.0";
  live.relay.host = hostile("host");
  live.relay.fingerprint = "5c1e0a9d";
  live.relay.accepted_hour = 1204;
  live.heartbeat_age_s = 1;
  journal::RelayRow silent = live;
  silent.relay.name = "relay2";
  silent.heartbeat_age_s = 30;
  journal::RelayRow stopped = live;
  stopped.relay.name = "relay3";
  stopped.relay.instance.clear();
  view.relays = {live, silent, stopped};
  view.dispatched_by["crm"] = hostile("relay");
  const std::string page = pages::overview(signedIn(), view);
  checkPage(page);
  CHECK(contains(page, "Relays on this journal"));
  CHECK(contains(page, "<th scope=\"col\">Dispatched by</th>"));
  CHECK(contains(page, "<td data-label=\"Dispatched by\">" + escaped("relay") + "</td>"));
  CHECK(count(page, escaped("relay")) == 2);  // its own row, and the Dispatched by of its target
  CHECK(contains(page, escaped("host")));
  CHECK_FALSE(contains(page, hostile("relay")));
  CHECK(contains(page, ">1204<"));
  CHECK(contains(page, "silent</span>"));
  CHECK(contains(page, "<td>stopped</td>"));
}

TEST_CASE("overview on one box: no relays section, no Dispatched by column") {
  pages::Overview view;
  view.now_ms = kNow;
  view.bucket_ms = 60'000;
  const std::string page = pages::overview(signedIn(), view);
  CHECK_FALSE(contains(page, "Relays on this journal"));
  CHECK_FALSE(contains(page, "Dispatched by"));
}

TEST_CASE("dead letters: hostile filter values shown back escaped, the target kept in the list") {
  pages::DeadLetterList view;
  view.now_ms = kNow;
  view.filter = {hostile("target"), "max_age", hostile("since"), hostile("until")};
  view.targets = {"crm", "pms"};
  view.matching = 0;
  const std::string page = pages::deadLetters(signedIn("Dead letters", "dead-letters"), view);
  checkPage(page);
  CHECK(contains(page, R"(<option value=")" + escaped("target") + R"(" selected>)"));
  CHECK(contains(page, R"(name="since" value=")" + escaped("since") + "\""));
  CHECK(contains(page, R"(name="until" value=")" + escaped("until") + "\""));
  CHECK(contains(page, R"(<option value="max_age" selected>)"));
  CHECK(contains(page, "Nothing on this page."));  // a filter: not "no dead letters" at all
  CHECK(contains(page, R"(href="/console/dead-letters">Clear</a>)"));
}

TEST_CASE("dead letters: a filter it cannot read lists nothing and says why, escaped") {
  pages::DeadLetterList view;
  view.filter.since = "yesterday";
  view.filter_errors = {hostile("error")};
  view.page.letters.push_back(letter(1));
  view.matching = 1;
  const std::string page = pages::deadLetters(signedIn(), view);
  checkPage(page);
  CHECK(contains(page, "<li>" + escaped("error") + "</li>"));
  CHECK_FALSE(contains(page, "/console/dead-letters/1"));
  CHECK_FALSE(contains(page, "Replay all"));
}

TEST_CASE("dead letters: none at all") {
  const std::string page = pages::deadLetters(signedIn(), pages::DeadLetterList{});
  checkPage(page);
  CHECK(contains(page, "No dead letters"));
  CHECK_FALSE(contains(page, "Replay all"));
  CHECK_FALSE(contains(page, "pager"));
}

TEST_CASE("dead letters: rows escaped, replayed ones not selectable, answers cut at 80 bytes on a character") {
  pages::DeadLetterList view;
  view.now_ms = kNow;
  view.filter.target = "crm & co";
  view.matching = 2;
  journal::DeadLetter hostile_row = letter(7, hostile("target"));
  hostile_row.event_types = hostile("event") + ",Other";
  hostile_row.last_error = hostile("answer");
  hostile_row.last_status.reset();
  journal::DeadLetter replayed = letter(8);
  replayed.state = journal::DeliveryState::Pending;
  view.page.letters = {hostile_row, replayed};
  std::string long_answer(79, 'a');
  long_answer += "é and more";  // the cut falls inside the é
  view.answers = {{107, long_answer}, {108, hostile("excerpt")}};

  const std::string page = pages::deadLetters(signedIn(), view);
  checkPage(page);
  for (const auto* what : {"target", "event", "answer", "excerpt"}) {
    CAPTURE(what);
    CHECK(contains(page, escaped(what)));
  }
  CHECK(contains(page, R"(<span class="chip">Other</span>)"));
  CHECK(contains(page, R"(name="id" value="7" aria-label="Select dead letter 7">)"));
  CHECK(contains(page, R"(name="id" value="8" aria-label="Select dead letter 8" disabled>)"));
  CHECK(contains(page, "replayed</span>"));
  CHECK(contains(page, std::string(79, 'a') + "…</code>"));
  CHECK(contains(page, "<strong>2</strong> dead letters match this filter"));
  CHECK(contains(page, R"(href="/console/confirm?action=replay&amp;target=crm%20%26%20co")"));
  CHECK(contains(page, R"(href="/console/confirm?action=purge&amp;target=crm%20%26%20co")"));
  CHECK(contains(page, R"(<input type="hidden" name="csrf" value="csrf-token-1">)"));
}

TEST_CASE("dead letters: the pager links the pages the view names, escaped, and greys out the others") {
  pages::DeadLetterList view;
  view.matching = 60;
  view.page.letters.push_back(letter(1));

  view.older_url = "/console/dead-letters?older=5&target=a\"b";
  std::string page = pages::deadLetters(signedIn(), view);
  checkPage(page);
  CHECK(contains(page, R"(<a href="/console/dead-letters?older=5&amp;target=a&quot;b" rel="next">Older →</a>)"));
  CHECK(contains(page, R"(<span class="muted">← Newer</span>)"));

  view.newer_url = "/console/dead-letters?newer=9";
  view.older_url.clear();
  page = pages::deadLetters(signedIn(), view);
  CHECK(contains(page, R"(<a href="/console/dead-letters?newer=9" rel="prev">← Newer</a>)"));
  CHECK(contains(page, R"(<span class="muted">Older →</span>)"));

  view.newer_url.clear();
  CHECK_FALSE(contains(pages::deadLetters(signedIn(), view), "pager"));
}

TEST_CASE("filter query: URL-encoded, only what is set, in a fixed order") {
  pages::Filter filter;
  CHECK(filter.empty());
  CHECK(filter.query().empty());
  filter.until = "2026-11-27T10:00";
  filter.target = "a&b=c d";
  CHECK_FALSE(filter.empty());
  CHECK(filter.query() == "target=a%26b%3Dc%20d&until=2026-11-27T10%3A00");
}

TEST_CASE("detail: a dead letter offers its replay; answers, headers and payload escaped") {
  pages::Detail view;
  view.now_ms = kNow;
  auto& d = view.delivery;
  d.id = 107;
  d.batch_id = 207;
  d.target = hostile("target");
  d.state = journal::DeliveryState::Dead;
  d.kind = "general";
  d.received_at = "2026-11-28T09:00:00.000Z";
  d.payload = R"({"Events":[{"Discriminator":"</pre><img src=x>"}]})";
  d.dead_letter = letter(7, d.target);
  journal::AttemptDetail attempt;
  attempt.row.started_at = "2026-11-28T09:10:00.000Z";
  attempt.row.status = 422;
  attempt.row.outcome = "dead";
  attempt.row.error = hostile("error");
  attempt.row.response_excerpt = hostile("excerpt");
  attempt.request_headers = R"({"x-note":"<img src=y>"})";
  d.attempts.push_back(attempt);

  const std::string page = pages::detail(signedIn(), view);
  checkPage(page);
  for (const auto* what : {"target", "error", "excerpt"}) {
    CAPTURE(what);
    CHECK(contains(page, escaped(what)));
  }
  CHECK(contains(page, "&lt;/pre&gt;&lt;img src=x&gt;"));
  CHECK(contains(page, "&lt;img src=y&gt;"));
  CHECK(contains(page, R"(<form method="post" action="/console/replay">)"));
  CHECK(contains(page, R"(<input type="hidden" name="id" value="7">)"));
  CHECK(contains(page, "Replay dead letter 7"));
  CHECK(contains(page, "refused it (HTTP 422)"));  // the status once, not "HTTP 422 · HTTP 422"
  CHECK(contains(page, "Attempt history (1)"));
  CHECK(contains(page, R"(href="/console/deliveries/107/payload")"));
}

TEST_CASE("detail: delivered, waiting and purged deliveries offer no replay") {
  pages::Detail view;
  view.now_ms = kNow;
  view.delivery.id = 5;
  view.delivery.target = "crm";
  view.delivery.updated_at = "2026-11-28T09:59:00.000Z";

  view.delivery.state = journal::DeliveryState::Delivered;
  std::string page = pages::detail(signedIn(), view);
  checkPage(page);
  CHECK(contains(page, "callout ok"));
  CHECK_FALSE(contains(page, "/console/replay"));
  CHECK(contains(page, "No attempt recorded."));

  view.delivery.state = journal::DeliveryState::RetryWait;
  page = pages::detail(signedIn(), view);
  CHECK(contains(page, R"(data-delivery="5" data-state="retry_wait")"));
  CHECK(contains(page, "Waiting to be sent"));
  CHECK_FALSE(contains(page, "/console/replay"));

  view.delivery.state = journal::DeliveryState::Dead;  // dead, its dead letter purged
  page = pages::detail(signedIn(), view);
  CHECK(contains(page, "no longer in the dead letters (purged)"));
  CHECK_FALSE(contains(page, "/console/replay"));
}

TEST_CASE("confirm: the count and what is affected before anything changes; nothing to do without a form") {
  pages::Confirm view;
  view.purge = true;
  view.count = 3;
  view.description = hostile("description");
  view.fields = {{"target", hostile("field")}, {"as_of", "123"}};
  view.back_url = "/console/dead-letters?target=a&reason=b";
  std::string page = pages::confirm(signedIn(), view);
  checkPage(page);
  CHECK(contains(page, "<h1>Purge 3 dead letters?</h1>"));
  CHECK(contains(page, escaped("description")));
  CHECK(contains(page, R"(<form method="post" action="/console/purge">)"));
  CHECK(contains(page, R"(<input type="hidden" name="target" value=")" + escaped("field") + R"(">)"));
  CHECK(contains(page, R"(<input type="hidden" name="as_of" value="123">)"));
  CHECK(contains(page, R"(<input type="hidden" name="csrf" value="csrf-token-1">)"));
  CHECK(contains(page, R"(href="/console/dead-letters?target=a&amp;reason=b">Cancel</a>)"));

  view.purge = false;
  view.count = 1;
  page = pages::confirm(signedIn(), view);
  CHECK(contains(page, "<h1>Replay 1 dead letter?</h1>"));
  CHECK(contains(page, R"(action="/console/replay-matching")"));

  view.count = 0;
  page = pages::confirm(signedIn(), view);
  CHECK(contains(page, "Nothing to do."));
  CHECK_FALSE(contains(page, "<form method=\"post\" action=\"/console/replay-matching\""));
}

TEST_CASE("action: the summary escaped, where the items are now, and how many are shown") {
  pages::ActionPage view;
  view.now_ms = kNow;
  view.result.summary = hostile("summary");
  view.result.at_ms = kNow - 60'000;
  view.result.delivery_ids = {1, 2, 3};
  view.states = {{1, journal::DeliveryState::Delivered}, {2, journal::DeliveryState::RetryWait}};
  view.by_state = {{"delivered", 1}, {"pending", 2}};
  const std::string page = pages::action(signedIn(), view);
  checkPage(page);
  CHECK(contains(page, "<h1>" + escaped("summary") + "</h1>"));
  CHECK(contains(page, R"(data-delivery="2" data-state="retry_wait"><span class="badge state-retry_wait">)"));
  CHECK(contains(page, R"(<span class="badge state-pending">pending</span> <strong>2</strong>)"));
  CHECK(contains(page, R"(<a href="/console/deliveries/1">delivery 1</a>)"));
  CHECK(contains(page, "The first 2 of 3 shown."));
}

TEST_CASE("sign-in: the error and the next address escaped; the key in use named") {
  pages::SignIn view;
  view.nonce = "nonce-1";
  view.next = hostile("next");
  view.error = hostile("error");
  std::string page = pages::signIn(pages::Chrome("Sign in"), view);
  checkPage(page);
  CHECK(contains(page, R"(<p class="notice error" role="alert">)" + escaped("error") + "</p>"));
  CHECK(contains(page, R"(<input type="hidden" name="next" value=")" + escaped("next") + R"(">)"));
  CHECK(contains(page, R"(<input type="hidden" name="nonce" value="nonce-1">)"));
  CHECK(contains(page, "password_hash</code>"));
  CHECK_FALSE(contains(page, "main-nav"));

  view.plain_password = true;
  view.error.clear();
  page = pages::signIn(pages::Chrome("Sign in"), view);
  CHECK(contains(page, "<code>[console] password</code>"));
  CHECK_FALSE(contains(page, "role=\"alert\""));
}

TEST_CASE("not configured: says how to enable the console, no form") {
  const std::string page = pages::notConfigured(pages::Chrome("Console not enabled"));
  checkPage(page);
  CHECK(contains(page, "mews-relay console-password"));
  CHECK_FALSE(contains(page, "<form"));
}
