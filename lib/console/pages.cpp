#include "console/pages.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "batch/payload.h"
#include "common/clock.h"
#include "common/form.h"
#include "common/text.h"
#include "console/chart.h"
#include "console/web.h"
#include "journal/queue.h"

namespace mews::console::pages {
namespace {

using web::escape;

constexpr std::string_view kReasons[] = {"rejected", "max_attempts", "max_age"};

std::string reasonText(std::string_view reason) {
  if (reason == "rejected") return "refused by the target";
  if (reason == "max_attempts") return "attempts used up";
  if (reason == "max_age") return "too old (max_age)";
  return std::string(reason);
}

// A state (or an attempt's outcome) as a badge: the text is the journal's
// word, the class its colour.
std::string stateBadge(std::string_view state) {
  return fmt::format(R"(<span class="badge state-{}">{}</span>)", escape(state), escape(state));
}

std::string stateBadge(journal::DeliveryState state) {
  return stateBadge(journal::stateName(state));
}

std::string circuitBadge(std::string_view circuit) {
  const std::string_view text = circuit == "half_open" ? "half-open" : circuit;
  return fmt::format(R"(<span class="badge circuit-{}">{}</span>)", escape(circuit), escape(text));
}

// "2026-11-27 10:01:31 UTC" in a <time> element; `now_ms` adds "(3 min ago)".
std::string timeText(std::string_view iso, std::int64_t now_ms = 0) {
  if (iso.empty()) return "-";
  const auto ms = parseIsoMillis(iso);
  std::string shown(iso.substr(0, std::min<std::size_t>(19, iso.size())));
  std::replace(shown.begin(), shown.end(), 'T', ' ');
  std::string out = fmt::format(R"(<time datetime="{}">{} UTC</time>)", escape(iso), escape(shown));
  if (now_ms > 0 && ms) out += fmt::format(R"( <span class="muted">({} ago)</span>)", web::ageText(now_ms - *ms));
  return out;
}

// The same in two lines for a table cell: the time, then how long ago.
std::string timeCell(std::string_view iso, std::int64_t now_ms) {
  if (iso.empty()) return "-";
  const auto ms = parseIsoMillis(iso);
  std::string shown(iso.substr(0, std::min<std::size_t>(19, iso.size())));
  std::replace(shown.begin(), shown.end(), 'T', ' ');
  std::string out = fmt::format(R"(<time class="nowrap" datetime="{}">{}</time>)", escape(iso), escape(shown));
  if (ms) out += fmt::format(R"(<br><span class="muted small">{} ago</span>)", web::ageText(now_ms - *ms));
  return out;
}

// At most `limit` bytes of `text`, cut at a UTF-8 boundary, with an ellipsis.
std::string shortened(std::string_view text, std::size_t limit) {
  if (text.size() <= limit) return std::string(text);
  std::size_t cut = limit;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return std::string(text.substr(0, cut)) + "…";
}

// "HTTP 422" once, not "HTTP 422 · HTTP 422": the error repeats the status when
// the status was the only thing wrong.
std::string answerText(const std::optional<std::int64_t>& status, const std::optional<std::string>& error) {
  const std::string status_text = status ? fmt::format("HTTP {}", *status) : std::string();
  if (!error || error->empty() || *error == status_text) return status_text.empty() ? "-" : status_text;
  return status_text.empty() ? escape(*error) : status_text + " · " + escape(*error);
}

std::string optionalText(const std::optional<std::string>& text) {
  return text && !text->empty() ? escape(*text) : "-";
}

std::string statusText(const std::optional<std::int64_t>& status) {
  return status ? std::to_string(*status) : "-";
}

std::string hidden(std::string_view name, std::string_view value) {
  return fmt::format(R"(<input type="hidden" name="{}" value="{}">)", escape(name), escape(value));
}

std::string eventChips(const std::string& comma_separated) {
  if (comma_separated.empty()) return "-";
  std::string out;
  std::size_t start = 0;
  while (start <= comma_separated.size()) {
    const auto comma = comma_separated.find(',', start);
    const auto type = comma_separated.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!type.empty()) out += fmt::format(R"(<span class="chip">{}</span> )", escape(type));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

}  // namespace

std::string Filter::query() const {
  std::string out;
  for (const auto& [name, value] : {std::pair{"target", &target}, std::pair{"reason", &reason},
                                    std::pair{"since", &since}, std::pair{"until", &until}})
    if (!value->empty()) out += fmt::format("{}{}={}", out.empty() ? "" : "&", name, form::urlEncode(*value));
  return out;
}

namespace {

std::string layout(const Chrome& chrome, const std::string& body) {
  std::string head = fmt::format(
      "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
      "<meta name=\"color-scheme\" content=\"light dark\">"
      "<title>{} · mews-relay console</title>"
      "<link rel=\"stylesheet\" href=\"/console/static/console.css\">"
      "<link rel=\"icon\" href=\"/console/static/favicon.svg\" type=\"image/svg+xml\">"
      "<script src=\"/console/static/console.js\" defer></script>",
      escape(chrome.title));
  if (chrome.refresh_seconds > 0) {
    const std::string refresh = fmt::format(R"(<meta http-equiv="refresh" content="{}">)", chrome.refresh_seconds);
    head += chrome.refresh_without_script ? "<noscript>" + refresh + "</noscript>" : refresh;
  }
  head +=
      "</head><body><a class=\"skip\" href=\"#main\">Skip to content</a><header class=\"top\">"
      "<a class=\"brand\" href=\"/console/\">mews-relay <span>console</span></a>";
  if (!chrome.csrf.empty()) {
    const auto item = [&](std::string_view key, std::string_view href, const std::string& label) {
      return fmt::format(R"(<a href="{}"{}>{}</a>)", href, chrome.active == key ? R"( aria-current="page")" : "",
                         label);
    };
    std::string dead_label = "Dead letters";
    if (chrome.dead)
      dead_label += fmt::format(R"( <span class="count{}">{}</span>)", *chrome.dead > 0 ? " alert" : "", *chrome.dead);
    head += "<nav class=\"main-nav\" aria-label=\"Console\">" + item("overview", "/console/", "Overview") +
            item("dead-letters", "/console/dead-letters", dead_label) + "</nav>";
    head += "<form class=\"sign-out\" method=\"post\" action=\"/console/sign-out\">" + hidden("csrf", chrome.csrf) +
            "<button type=\"submit\" class=\"link\">Sign out</button></form>";
  }
  head += "</header><main id=\"main\">";
  if (!chrome.notice.empty()) head += fmt::format(R"(<p class="notice" role="status">{}</p>)", escape(chrome.notice));
  return head + body + "</main><footer>mews-relay " MEWS_RELAY_VERSION " · times in UTC</footer></body></html>\n";
}

}  // namespace

std::string overview(const Chrome& chrome, const Overview& view) {
  std::string body = "<h1>Overview</h1>";
  std::int64_t dead = 0;
  for (const auto& row : view.targets) dead += row.queue.dead;
  if (dead > 0)
    body += fmt::format(
        R"(<div class="callout bad"><p><strong>{} dead letter{}</strong> could not be delivered and wait for you.</p>)"
        R"(<p><a class="button primary" href="/console/dead-letters">Review dead letters</a></p></div>)",
        dead, dead == 1 ? "" : "s");
  body += fmt::format(R"(<p class="muted">As of {}; this page reloads every {} s.</p>)",
                      timeText(formatIsoMillis(view.now_ms)), chrome.refresh_seconds);

  body +=
      "<section aria-labelledby=\"targets\"><h2 id=\"targets\">Targets</h2><div class=\"table-wrap\">"
      "<table class=\"targets cards\"><thead><tr><th scope=\"col\">Target</th><th scope=\"col\">Circuit</th>"
      "<th scope=\"col\" class=\"num\">Pending</th><th scope=\"col\" class=\"num\">In flight</th>"
      "<th scope=\"col\" class=\"num\">Delivered 24 h</th><th scope=\"col\" class=\"num\">Dead letters</th>"
      "<th scope=\"col\">Oldest pending</th><th scope=\"col\">Last error</th>" +
      std::string(view.relays.empty() ? "" : "<th scope=\"col\">Dispatched by</th>") + "</tr></thead><tbody>";
  for (const auto& row : view.targets) {
    const auto& q = row.queue;
    const auto oldest = q.oldest_pending_at ? parseIsoMillis(*q.oldest_pending_at) : std::nullopt;
    std::string last_error = "-";
    if (q.last_error) {
      last_error = escape(*q.last_error);
      if (q.last_error_at)
        last_error += "<br><span class=\"muted small\">" + timeText(*q.last_error_at, view.now_ms) + "</span>";
    }
    const std::string target_link = "/console/dead-letters?target=" + form::urlEncode(q.target);
    std::string dispatched_by;  // several relays: which one sends to it
    if (!view.relays.empty()) {
      const auto owner = view.dispatched_by.find(q.target);
      dispatched_by = fmt::format("<td data-label=\"Dispatched by\">{}</td>",
                                  owner == view.dispatched_by.end() ? "-" : escape(owner->second));
    }
    body += fmt::format(
        "<tr><th scope=\"row\"><a href=\"#chart-{}\">{}</a></th><td data-label=\"Circuit\">{}</td>"
        "<td class=\"num\" data-label=\"Pending\">{}</td><td class=\"num\" data-label=\"In flight\">{}</td>"
        "<td class=\"num\" data-label=\"Delivered 24 h\">{}</td><td class=\"num\" data-label=\"Dead letters\">{}</td>"
        "<td data-label=\"Oldest pending\">{}</td><td data-label=\"Last error\">{}</td>{}</tr>",
        escape(form::urlEncode(q.target)), escape(q.target), circuitBadge(row.circuit), q.pending, q.in_flight,
        row.delivered_24h,
        q.dead > 0 ? fmt::format(R"(<a class="alert" href="{}">{}</a>)", escape(target_link), q.dead) : "0",
        oldest ? web::ageText(view.now_ms - *oldest) : "-", last_error, dispatched_by);
  }
  body += "</tbody></table></div>";
  const bool any_open = std::any_of(view.targets.begin(), view.targets.end(),
                                    [](const TargetRow& row) { return row.circuit != "closed"; });
  if (any_open)
    body +=
        "<p class=\"muted\">A circuit is <strong>open</strong> when its target kept failing: its queue waits, "
        "in order and spending no attempts, while the relay probes the target (<strong>half-open</strong>: a "
        "probe is out). It drains by itself when the target answers again; nothing to do unless it stays down "
        "past its max_age.</p>";
  body += "</section>";

  body += fmt::format(
      "<section aria-labelledby=\"activity\"><h2 id=\"activity\">Deliveries and failures, last {} h</h2>"
      "<p class=\"muted\">One bar per {} (sent above the line, failed attempts below; each half on its own "
      "scale). As of {}. Show ",
      view.chart_hours, web::ageText(view.bucket_ms), timeText(formatIsoMillis(view.activity_as_of_ms)));
  for (const int hours : {1, 6, 24})
    body += hours == view.chart_hours ? fmt::format("<strong>{} h</strong> ", hours)
                                      : fmt::format(R"(<a href="/console/?hours={}#activity">{} h</a> )", hours, hours);
  body += "</p><div class=\"charts\">";
  for (const auto& row : view.targets) {
    std::int64_t delivered = 0;
    std::int64_t failed = 0;
    for (const auto& bucket : row.chart) {
      delivered += bucket.delivered;
      failed += bucket.failed;
    }
    body += fmt::format(
        R"(<figure id="chart-{}"><figcaption><strong>{}</strong> {} sent, {} failed attempts</figcaption>{}</figure>)",
        escape(form::urlEncode(row.queue.target)), escape(row.queue.target), delivered, failed,
        activityChart(row.queue.target, row.chart, view.chart_start_ms, view.bucket_ms));
  }
  body += "</div></section>";

  if (!view.relays.empty()) {
    body +=
        "<section aria-labelledby=\"relays\"><h2 id=\"relays\">Relays on this journal</h2><div class=\"table-wrap\">"
        "<table class=\"compact\"><thead><tr><th scope=\"col\">Relay</th><th scope=\"col\">State</th>"
        "<th scope=\"col\">Heartbeat</th><th scope=\"col\">Version</th><th scope=\"col\">Host</th>"
        "<th scope=\"col\" class=\"num\">Acknowledged, last hour</th><th scope=\"col\">Dispatches</th>"
        "<th scope=\"col\">Targets fingerprint</th></tr></thead><tbody>";
    for (const auto& relay : view.relays) {
      const auto state = journal::relayState(relay);
      std::string dispatches;
      for (const auto& [target, owner] : view.dispatched_by)
        if (owner == relay.relay.name) dispatches += (dispatches.empty() ? "" : ", ") + escape(target);
      body += fmt::format(
          "<tr><th scope=\"row\">{}</th><td>{}</td><td>{} ago</td><td>{}</td><td>{}</td><td class=\"num\">{}</td>"
          "<td>{}</td><td><code>{}</code></td></tr>",
          escape(relay.relay.name),
          state == journal::RelayState::Silent ? R"(<span class="badge circuit-open">silent</span>)"
                                               : std::string(journal::relayStateName(state)),
          web::ageText(static_cast<std::int64_t>(relay.heartbeat_age_s * 1000)), escape(relay.relay.version),
          escape(relay.relay.host), relay.relay.accepted_hour, dispatches.empty() ? "-" : dispatches,
          escape(relay.relay.fingerprint));
    }
    body += "</tbody></table></div></section>";
  }

  const auto& j = view.journal;
  const bool below = j.free_bytes && *j.free_bytes < j.min_free;
  body +=
      "<div class=\"columns\"><section aria-labelledby=\"journal\"><h2 id=\"journal\">Journal</h2><dl class=\"facts\">";
  body += fmt::format("<dt>File</dt><dd><code>{}</code></dd><dt>Size</dt><dd>{}{}</dd>", escape(j.path),
                      web::sizeText(j.bytes),
                      j.max_size ? fmt::format(" of at most {}", web::sizeText(j.max_size)) : std::string());
  body += fmt::format("<dt>Free disk</dt><dd>{}{}</dd><dt>Watermark</dt><dd>{} (below it ingest answers 503)</dd>",
                      j.free_bytes ? web::sizeText(*j.free_bytes) : "unknown",
                      below ? R"( <span class="badge circuit-open">below the watermark: ingest refused</span>)" : "",
                      web::sizeText(j.min_free));
  body += "</dl></section>";

  const auto& in = view.ingest;
  body += "<section aria-labelledby=\"ingest\"><h2 id=\"ingest\">Ingest</h2><dl class=\"facts\">";
  body +=
      fmt::format("<dt>Last hour</dt><dd>{} batch{} received</dd>", in.batches_hour, in.batches_hour == 1 ? "" : "es");
  std::string rows;
  for (std::size_t i = 0; i < in.rejected_since_start.size(); ++i) {
    const auto& [reason, total] = in.rejected_since_start[i];
    if (total == 0) continue;
    const std::uint64_t hour = i < in.rejected_hour.size() ? in.rejected_hour[i].second : 0;
    rows += fmt::format(R"(<tr><th scope="row">{}</th><td class="num">{}</td><td class="num">{}</td></tr>)",
                        escape(reason), hour, total);
  }
  if (rows.empty()) {
    body += "<dt>Rejected</dt><dd>none since the relay started</dd></dl>";
  } else {
    body +=
        "</dl><div class=\"table-wrap fit\"><table class=\"compact\"><caption>Requests rejected, by reason"
        "</caption><thead><tr><th scope=\"col\">Reason</th><th scope=\"col\" class=\"num\">Last hour</th>"
        "<th scope=\"col\" class=\"num\">Since start</th></tr></thead><tbody>" +
        rows + "</tbody></table></div>";
  }
  body +=
      fmt::format("<p class=\"muted\">The relay has been up for {}.</p></section></div>", web::ageText(in.uptime_ms));
  return layout(chrome, body);
}

std::string deadLetters(const Chrome& chrome, const DeadLetterList& view) {
  const Filter& f = view.filter;
  std::string body =
      "<h1>Dead letters</h1><p class=\"lead\">Deliveries a target refused, or that ran out of attempts or time. "
      "Open one to see what the target answered; once the cause is fixed, <strong>replay</strong> it: it is "
      "sent again with the same <code>webhook-id</code> and leaves this list once delivered.</p>";

  body +=
      "<form class=\"filters\" method=\"get\" action=\"/console/dead-letters\"><div class=\"field\">"
      "<label for=\"f-target\">Target</label><select id=\"f-target\" name=\"target\"><option value=\"\">all</option>";
  std::vector<std::string> targets = view.targets;
  if (!f.target.empty() && std::find(targets.begin(), targets.end(), f.target) == targets.end())
    targets.push_back(f.target);
  for (const auto& target : targets)
    body += fmt::format(R"(<option value="{}"{}>{}</option>)", escape(target), target == f.target ? " selected" : "",
                        escape(target));
  body +=
      "</select></div><div class=\"field\"><label for=\"f-reason\">Reason</label>"
      "<select id=\"f-reason\" name=\"reason\"><option value=\"\">any</option>";
  for (const auto reason : kReasons)
    body += fmt::format(R"(<option value="{}"{}>{}</option>)", reason, reason == f.reason ? " selected" : "",
                        escape(reasonText(reason)));
  body += fmt::format(
      "</select></div><div class=\"field\"><label for=\"f-since\">Died since</label>"
      "<input id=\"f-since\" name=\"since\" value=\"{}\" placeholder=\"e.g. 2h\" "
      "aria-describedby=\"f-help\"></div><div class=\"field\"><label for=\"f-until\">Died before</label>"
      "<input id=\"f-until\" name=\"until\" value=\"{}\" placeholder=\"now\" aria-describedby=\"f-help\"></div>"
      "<div class=\"field buttons\"><button type=\"submit\">Filter</button>{}</div>"
      "<p id=\"f-help\" class=\"help\">Times: an age (<code>30m</code>, <code>2h</code>, <code>3d</code>) or an "
      "ISO 8601 date or time in UTC (<code>2026-11-27</code>, <code>2026-11-27T10:00</code>).</p></form>",
      escape(f.since), escape(f.until),
      f.empty() ? "" : R"( <a class="button secondary" href="/console/dead-letters">Clear</a>)");
  if (!view.filter_errors.empty()) {
    body +=
        R"(<div class="notice error" role="alert"><p>Nothing is listed: the filter has values it cannot read.</p><ul>)";
    for (const auto& error : view.filter_errors) body += "<li>" + escape(error) + "</li>";
    body += "</ul></div>";
    return layout(chrome, body);
  }

  const std::string query = f.query();
  body += fmt::format(R"(<div class="summary"><p><strong>{}</strong> dead letter{} {}.</p>)", view.matching,
                      view.matching == 1 ? "" : "s", f.empty() ? "in all" : "match this filter");
  if (view.matching > 0)
    body +=
        fmt::format(R"(<p class="bulk"><a class="button" href="/console/confirm?action=replay{}{}">Replay all {}…</a> )"
                    R"(<a class="button danger" href="/console/confirm?action=purge{}{}">Purge all {}…</a></p>)",
                    query.empty() ? "" : "&amp;", escape(query), view.matching, query.empty() ? "" : "&amp;",
                    escape(query), view.matching);
  body += "</div>";

  if (view.page.letters.empty()) {
    body += view.matching == 0 && f.empty()
                ? "<p class=\"empty\">No dead letters: everything that failed has been delivered or purged.</p>"
                : "<p class=\"empty\">Nothing on this page.</p>";
    return layout(chrome, body);
  }
  body += "<form method=\"post\" action=\"/console/replay\" id=\"selection\">" + hidden("csrf", chrome.csrf);
  body +=
      "<div class=\"toolbar\"><button type=\"submit\" class=\"primary\" data-selection-button>Replay selected"
      "</button> <span class=\"muted\">Tick the rows to send again, or open one to see its attempts.</span></div>";
  body +=
      "<div class=\"table-wrap\"><table class=\"letters cards\"><thead><tr><th scope=\"col\" class=\"pick\">"
      "<input type=\"checkbox\" data-select-all aria-label=\"Select every dead letter on this page\" hidden></th>"
      "<th scope=\"col\">Dead letter</th><th scope=\"col\">Target</th><th scope=\"col\">Event types</th>"
      "<th scope=\"col\">Died</th><th scope=\"col\">Reason</th><th scope=\"col\">Target's answer</th>"
      "<th scope=\"col\" class=\"num\">Attempts</th><th scope=\"col\">State</th></tr></thead><tbody>";
  for (const auto& l : view.page.letters) {
    const bool dead = l.state == journal::DeliveryState::Dead;
    const std::string open = fmt::format("/console/dead-letters/{}", l.id);
    const auto answer = view.answers.find(l.delivery_id);
    std::string answer_text = answerText(l.last_status, l.last_error);
    if (answer != view.answers.end() && !answer->second.empty())
      answer_text += fmt::format(R"(<br><code class="excerpt">{}</code>)", escape(shortened(answer->second, 80)));
    body += fmt::format(
        "<tr><td class=\"pick\"><input type=\"checkbox\" name=\"id\" value=\"{}\" aria-label=\"Select dead letter "
        "{}\"{}></td><td><a href=\"{}\">#{} <span class=\"open\">Open</span></a></td><td data-label=\"Target\">{}</td>"
        "<td data-label=\"Events\">{}</td><td data-label=\"Died\">{}</td><td data-label=\"Reason\">{}</td>"
        "<td data-label=\"Answer\">{}</td><td class=\"num\" data-label=\"Attempts\">{}</td>"
        "<td data-label=\"State\">{}</td></tr>",
        l.id, l.id, dead ? "" : " disabled", open, l.id, escape(l.target), eventChips(l.event_types),
        timeCell(l.died_at, view.now_ms), escape(reasonText(l.reason)), answer_text, l.attempts,
        stateBadge(l.state) + (dead ? "" : R"( <span class="muted">replayed</span>)"));
  }
  body += "</tbody></table></div></form>";
  if (view.newer_url.empty() && view.older_url.empty()) return layout(chrome, body);
  body += "<nav class=\"pager\" aria-label=\"Pages\">";
  body += view.newer_url.empty() ? "<span class=\"muted\">← Newer</span>"
                                 : fmt::format(R"(<a href="{}" rel="prev">← Newer</a>)", escape(view.newer_url));
  body += view.older_url.empty() ? "<span class=\"muted\">Older →</span>"
                                 : fmt::format(R"(<a href="{}" rel="next">Older →</a>)", escape(view.older_url));
  body += "</nav>";
  return layout(chrome, body);
}

std::string detail(const Chrome& chrome, const Detail& view) {
  const auto& d = view.delivery;
  const auto& letter = d.dead_letter;
  std::string body =
      "<nav class=\"crumbs\" aria-label=\"Breadcrumb\"><a href=\"/console/dead-letters\">Dead letters"
      "</a> › ";
  body += letter ? fmt::format("dead letter {}", letter->id) : fmt::format("delivery {}", d.id);
  body += "</nav>";
  body += fmt::format(R"(<h1>{} <span class="target">to {}</span> {}</h1>)",
                      letter ? fmt::format("Dead letter {}", letter->id) : fmt::format("Delivery {}", d.id),
                      escape(d.target), stateBadge(d.state));

  // What to do, first.
  const std::string live = fmt::format(R"(data-delivery="{}" data-state="{}")", d.id, journal::stateName(d.state));
  if (d.state == journal::DeliveryState::Dead && letter) {
    body += fmt::format(
        "<div class=\"callout bad\"><p><strong>{}</strong> {}. When the cause is fixed, replay it: it is sent again "
        "with the same <code>webhook-id</code> and a fresh attempt budget.</p>"
        "<form method=\"post\" action=\"/console/replay\">{}{}<button type=\"submit\" class=\"primary\">"
        "Replay dead letter {}</button></form></div>",
        escape(d.target),
        letter->reason == "rejected"
            ? fmt::format("refused it ({})", answerText(letter->last_status, letter->last_error))
            : fmt::format("could not take it: {} ({})", escape(reasonText(letter->reason)),
                          answerText(letter->last_status, letter->last_error)),
        hidden("csrf", chrome.csrf), hidden("id", std::to_string(letter->id)), letter->id);
  } else if (d.state == journal::DeliveryState::Delivered) {
    body += fmt::format(R"(<div class="callout ok"><p>Delivered {}.</p></div>)", timeText(d.updated_at, view.now_ms));
  } else {
    body += fmt::format(
        R"(<div class="callout"><p>State: <span class="live" {}>{}</span>. {}</p></div>)", live, stateBadge(d.state),
        d.state == journal::DeliveryState::Dead ? "Dead, and no longer in the dead letters (purged)."
                                                : "Waiting to be sent; this page shows the outcome when it arrives.");
  }

  body += "<dl class=\"facts wide\">";
  body += fmt::format("<dt>Target</dt><dd>{}</dd>", escape(d.target));
  if (letter) {
    body += fmt::format("<dt>Reason</dt><dd>{}</dd>", escape(reasonText(letter->reason)));
    body += fmt::format("<dt>Event types</dt><dd>{}</dd>", eventChips(letter->event_types));
    body += fmt::format("<dt>Died</dt><dd>{}</dd>", timeText(letter->died_at, view.now_ms));
    body += fmt::format("<dt>Last answer</dt><dd>{}{}</dd>", answerText(letter->last_status, letter->last_error),
                        d.attempts.empty() || d.attempts.back().row.response_excerpt.empty()
                            ? std::string()
                            : fmt::format(R"( <code class="excerpt">{}</code>)",
                                          escape(shortened(d.attempts.back().row.response_excerpt, 200))));
  } else {
    body += fmt::format("<dt>Event types</dt><dd>{}</dd>",
                        eventChips(text::joinList(batch::eventTypes(d.payload, d.event_seq))));
  }
  body += fmt::format("<dt>Received</dt><dd>{}</dd>", timeText(d.received_at, view.now_ms));
  body += fmt::format("<dt>Attempts spent</dt><dd>{}</dd>", d.attempts_spent);
  body += fmt::format("<dt>Journal ids</dt><dd>delivery {}, batch {}{}</dd>", d.id, d.batch_id,
                      d.event_seq ? fmt::format(", event {}", *d.event_seq) : std::string());
  body += "</dl>";

  body += fmt::format("<section aria-labelledby=\"attempts\"><h2 id=\"attempts\">Attempt history ({})</h2>",
                      d.attempts.size());
  if (d.attempts.empty()) {
    body += "<p class=\"empty\">No attempt recorded.</p>";
  } else {
    body +=
        "<div class=\"table-wrap\"><table class=\"attempts cards\"><thead><tr><th scope=\"col\">#</th>"
        "<th scope=\"col\">Started</th><th scope=\"col\" class=\"num\">Duration</th><th scope=\"col\">Status</th>"
        "<th scope=\"col\">Outcome</th><th scope=\"col\">Error</th><th scope=\"col\">Response</th>"
        "<th scope=\"col\">Headers sent</th></tr></thead><tbody>";
    for (std::size_t i = 0; i < d.attempts.size(); ++i) {
      const auto& a = d.attempts[i];
      body += fmt::format(
          "<tr><td data-label=\"Attempt\">{}</td><td data-label=\"Started\">{}</td>"
          "<td class=\"num\" data-label=\"Duration\">{} ms</td><td data-label=\"Status\">{}</td>"
          "<td data-label=\"Outcome\">{}</td><td data-label=\"Error\">{}</td>"
          "<td data-label=\"Response\"><pre class=\"excerpt\">{}</pre></td><td data-label=\"Headers\"><details>"
          "<summary>show</summary><pre class=\"headers\">{}</pre></details></td></tr>",
          i + 1, timeText(a.row.started_at), a.row.duration_ms, statusText(a.row.status),
          stateBadge(a.row.outcome == "probe_failed" ? "probe failed" : a.row.outcome), optionalText(a.row.error),
          a.row.response_excerpt.empty() ? "-" : escape(a.row.response_excerpt),
          escape(web::prettyJson(a.request_headers)));
    }
    body +=
        "</tbody></table></div><p class=\"muted\">Configured header values are masked in what the journal "
        "keeps.</p>";
  }
  body += "</section>";

  body += fmt::format(
      "<section aria-labelledby=\"payload\"><h2 id=\"payload\">Payload</h2><p>{} batch {}, {} bytes as received. "
      "<a class=\"button secondary\" href=\"/console/deliveries/{}/payload\" download>Download the exact bytes</a>"
      "</p><pre class=\"payload\" tabindex=\"0\">{}</pre></section>",
      escape(d.kind), d.batch_id, d.payload.size(), d.id, escape(web::prettyJson(d.payload)));
  if (letter)
    body += fmt::format(
        R"(<p class="muted">From a shell: <code>mews-relay dlq show {}</code>, <code>mews-relay replay {}</code>.</p>)",
        letter->id, letter->id);
  return layout(chrome, body);
}

std::string confirm(const Chrome& chrome, const Confirm& view) {
  std::string body = fmt::format("<h1>{} {} dead letter{}?</h1>", view.purge ? "Purge" : "Replay", view.count,
                                 view.count == 1 ? "" : "s");
  body += fmt::format("<p class=\"lead\">{} dead letter{} {}.</p>", view.count, view.count == 1 ? "" : "s",
                      escape(view.description));
  body += view.purge ? "<div class=\"callout bad\"><p>Purging deletes them and their batches for good: they cannot "
                       "be replayed afterwards. Dead letters that arrive after this page was shown are kept.</p></div>"
                     : "<div class=\"callout\"><p>Each is sent again with the same <code>webhook-id</code> and a "
                       "fresh attempt budget, oldest first. Dead letters that arrive after this page was shown are "
                       "not included.</p></div>";
  if (view.count == 0) {
    body += fmt::format(R"(<p>Nothing to do. <a href="{}">Back</a></p>)", escape(view.back_url));
    return layout(chrome, body);
  }
  body += fmt::format(R"(<form method="post" action="/console/{}">)", view.purge ? "purge" : "replay-matching");
  body += hidden("csrf", chrome.csrf);
  for (const auto& [name, value] : view.fields) body += hidden(name, value);
  body += fmt::format(R"(<p><button type="submit" class="{}">{} {} dead letter{}</button> )",
                      view.purge ? "danger" : "primary", view.purge ? "Purge" : "Replay", view.count,
                      view.count == 1 ? "" : "s");
  body += fmt::format(R"(<a class="button secondary" href="{}">Cancel</a></p></form>)", escape(view.back_url));
  return layout(chrome, body);
}

std::string action(const Chrome& chrome, const ActionPage& view) {
  const auto& r = view.result;
  std::string body = fmt::format("<h1>{}</h1>", escape(r.summary));
  body += fmt::format("<p class=\"lead\">Done {} through the relay's journal writer.</p>",
                      timeText(formatIsoMillis(r.at_ms), view.now_ms));
  if (!r.delivery_ids.empty()) {
    body += "<section aria-labelledby=\"now\"><h2 id=\"now\">Where they are now</h2><p class=\"states\">";
    for (const auto& [state, count] : view.by_state)
      body += fmt::format("{} <strong>{}</strong> ", stateBadge(state), count);
    body += fmt::format(
        "</p>{}<p class=\"muted\">Replayed items go out at once unless the target's circuit is open. "
        "This page follows them until each is delivered or dead again.</p>",
        r.truncated ? fmt::format("<p class=\"muted\">States of the first {} items.</p>", r.delivery_ids.size()) : "");
    body +=
        "<div class=\"table-wrap fit\"><table class=\"compact\"><thead><tr><th scope=\"col\">Delivery</th>"
        "<th scope=\"col\">State</th></tr></thead><tbody>";
    for (const auto& [id, state] : view.states)
      body += fmt::format(
          R"(<tr><td><a href="/console/deliveries/{}">delivery {}</a></td><td class="live" data-delivery="{}" data-state="{}">{}</td></tr>)",
          id, id, id, journal::stateName(state), stateBadge(state));
    body += "</tbody></table></div>";
    if (view.states.size() < r.delivery_ids.size())
      body +=
          fmt::format("<p class=\"muted\">The first {} of {} shown.</p>", view.states.size(), r.delivery_ids.size());
    body += "</section>";
  }
  body += R"(<p><a class="button secondary" href="/console/dead-letters">Back to the dead letters</a> )"
          R"(<a class="button secondary" href="">Refresh</a></p>)";
  return layout(chrome, body);
}

std::string signIn(const Chrome& chrome, const SignIn& view) {
  std::string body = "<div class=\"narrow\"><h1>Sign in</h1><p class=\"lead\">The operator console of this relay.</p>";
  if (!view.error.empty()) body += fmt::format(R"(<p class="notice error" role="alert">{}</p>)", escape(view.error));
  body += "<form method=\"post\" action=\"/console/sign-in\" class=\"stack\">" + hidden("nonce", view.nonce) +
          hidden("next", view.next) +
          "<label for=\"password\">Password</label>"
          "<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required "
          "autofocus><button type=\"submit\" class=\"primary\">Sign in</button></form>";
  // Name the key in use: an operator looking for password_hash where password is set finds nothing.
  body += view.plain_password
              ? "<p class=\"muted\">The password is set in the relay's configuration (<code>[console] password</code>, "
                "usually from an environment variable of the service). It is not the webhook token.</p></div>"
              : "<p class=\"muted\">The password is set in the relay's configuration (<code>[console] "
                "password_hash</code>, made with <code>mews-relay console-password</code>). It is not the webhook "
                "token.</p></div>";
  return layout(chrome, body);
}

std::string notConfigured(const Chrome& chrome) {
  return layout(
      chrome,
      "<div class=\"narrow\"><h1>The console is not enabled</h1><p class=\"lead\">No operator credential is "
      "configured, so the console stays closed.</p><p>To enable it, make a password hash on the relay's box and put "
      "it in the configuration, then restart the relay:</p><pre>mews-relay console-password\n"
      "# type the password twice; it prints a line such as\n# pbkdf2-sha256$600000$…\n\n"
      "# in mews-relay.ini:\n[console]\npassword_hash = pbkdf2-sha256$600000$…</pre>"
      "<p>Or set <code>password = ${system.env.MEWS_RELAY_CONSOLE_PASSWORD}</code> and provide the variable in the "
      "service's environment. See the README's “Console” section.</p></div>");
}

std::string message(const Chrome& chrome, const std::string& heading, const std::string& text) {
  return layout(chrome,
                fmt::format(R"(<div class="narrow"><h1>{}</h1><p>{}</p><p><a href="/console/">Overview</a></p></div>)",
                            escape(heading), escape(text)));
}

}  // namespace mews::console::pages
