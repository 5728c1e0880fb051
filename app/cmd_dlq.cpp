// `dlq list | show ID | purge`: the dead letters.
#include <fmt/format.h>
#include <iostream>

#include "cli.h"
#include "cli_support.h"
#include "common/clock.h"
#include "common/json.h"
#include "common/text.h"
#include "journal/queue.h"
#include "journal/reports.h"
#include "journal/requests.h"

namespace mews::cli {
namespace {

void letterJson(json::Writer& out, const journal::DeadLetter& l) {
  out.beginObject()
      .field("id", l.id)
      .field("delivery_id", l.delivery_id)
      .field("batch_id", l.batch_id)
      .field("target", l.target)
      .field("event_types", l.event_types)
      .field("attempts", l.attempts)
      .field("last_status", l.last_status)
      .field("last_error", l.last_error)
      .field("reason", l.reason)
      .field("received_at", l.received_at)
      .field("died_at", l.died_at)
      .field("state", journal::stateName(l.state))
      .endObject();
}

// Each verb reads its flags before the config, so a usage error is one whatever the config.
config::Settings operatorSettings(const GlobalOptions& options) {
  return config::loadSettings(options.config_path, config::Secrets::Optional);
}

int list(const GlobalOptions& options, const std::vector<std::string>& args) {
  const Flags flags(args, {"--target", "--since", "--limit"}, {"--json"});
  expectNoArguments(flags.positionals());
  journal::DeadLetterFilter filter;
  filter.target = flags.value("--target");
  if (const auto since = flags.value("--since"))
    filter.since_ms = parseTimeArg("--since", *since, SystemClock::instance().wallMillis());
  filter.limit = 100;
  if (const auto limit = flags.value("--limit")) filter.limit = parseCountArg("--limit", *limit);
  auto reader = openReader(operatorSettings(options));
  const auto letters = journal::listDeadLetters(reader, filter);
  if (flags.has("--json")) {
    json::Writer out;
    out.beginArray();
    for (const auto& letter : letters) letterJson(out, letter);
    std::cout << std::move(out.endArray()).text() << "\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& l : letters)
    rows.push_back({std::to_string(l.id), l.target, l.event_types.empty() ? "-" : l.event_types,
                    std::to_string(l.attempts), l.died_at,
                    l.reason + (l.state == journal::DeliveryState::Dead ? "" : " (replayed)"),
                    l.last_error.value_or("-")});
  printTable({"ID", "TARGET", "EVENT TYPES", "ATTEMPTS", "DIED AT", "REASON", "LAST ERROR"}, rows);
  return kExitOk;
}

int show(const GlobalOptions& options, const std::vector<std::string>& args) {
  const Flags flags(args, {}, {"--json"});
  if (flags.positionals().size() != 1) throw UsageError("dlq show takes one dead letter id");
  const std::int64_t id = parseIdArg(flags.positionals()[0]);
  const config::Settings settings = operatorSettings(options);
  auto reader = openReader(settings);
  const auto detail = journal::showDeadLetter(reader, id);
  if (!detail) {
    std::cerr << fmt::format("error: no dead letter with id {} in {}\n", id, settings.journal.path);
    return kExitFailed;
  }
  if (flags.has("--json")) {
    json::Writer out;
    out.beginObject().key("dead_letter");
    letterJson(out, detail->letter);
    out.field("kind", detail->kind).field("event_seq", detail->event_seq).field("payload", detail->payload);
    // Written by the relay as a JSON object (header values masked).
    out.key("headers_sent").raw(detail->headers_sent.empty() ? "{}" : detail->headers_sent);
    out.key("attempts").beginArray();
    for (const auto& a : detail->attempts)
      out.beginObject()
          .field("started_at", a.started_at)
          .field("duration_ms", a.duration_ms)
          .field("status", a.status)
          .field("error", a.error)
          .field("outcome", a.outcome)
          .field("response_excerpt", a.response_excerpt)
          .endObject();
    std::cout << std::move(out.endArray().endObject()).text() << "\n";
    return kExitOk;
  }
  // Everything below but numbers and times may have come from outside (a
  // target's answer, Mews's event types and payload): escaped for the terminal.
  const auto& l = detail->letter;
  auto line = [](std::string_view text) { return text::terminalLine(text); };
  std::cout << fmt::format(
      "dead letter {}  target {}  delivery {}  batch {}{}\n"
      "reason:      {}{}\n"
      "event types: {}\n"
      "received:    {}\n"
      "died:        {}\n"
      "attempts:    {}\n"
      "last error:  {}\n\n",
      l.id, line(l.target), l.delivery_id, l.batch_id,
      detail->event_seq ? fmt::format(" (event {})", *detail->event_seq) : std::string(), line(l.reason),
      l.state == journal::DeliveryState::Dead ? "" : fmt::format(" (replayed, now {})", journal::stateName(l.state)),
      l.event_types.empty() ? "-" : line(l.event_types), line(l.received_at), line(l.died_at), l.attempts,
      line(l.last_error.value_or("-")));
  std::cout << "headers sent (last attempt):\n  " << (detail->headers_sent.empty() ? "-" : line(detail->headers_sent))
            << "\n\nattempts:\n";
  std::vector<std::vector<std::string>> rows;
  for (const auto& a : detail->attempts)
    rows.push_back({a.started_at, fmt::format("{}ms", a.duration_ms), a.status ? std::to_string(*a.status) : "-",
                    a.outcome, a.error.value_or("-"), a.response_excerpt.substr(0, 60)});
  printTable({"STARTED", "DURATION", "STATUS", "OUTCOME", "ERROR", "RESPONSE"}, rows);
  std::cout << fmt::format("\npayload ({} batch, {} bytes):\n{}\n", line(detail->kind), detail->payload.size(),
                           text::terminalBlock(detail->payload));
  return kExitOk;
}

int purge(const GlobalOptions& options, const std::vector<std::string>& args) {
  const Flags flags(args, {"--older-than", "--from"}, {"--dry-run", "--json"});
  expectNoArguments(flags.positionals());
  const auto from = flags.value("--from");
  if (from && flags.value("--older-than")) throw UsageError("--from and --older-than do not go together");
  journal::PurgeRequest request;
  request.dry_run = flags.has("--dry-run");
  if (from) {
    request.what = journal::PurgeRequest::RemovedTargetWork{*from};
  } else {
    journal::DeadLetterQuery query;
    if (const auto value = flags.value("--older-than"))
      query.until_ms = SystemClock::instance().wallMillis() - parseDurationArg("--older-than", *value);
    request.what = journal::PurgeRequest::DeadLetters{query};
  }
  const config::Settings settings = operatorSettings(options);
  if (const auto refused = journal::refusalByTargets(request, targetNames(settings), "in " + settings.source_file))
    throw std::runtime_error(*refused);
  bool via_relay = false;
  const std::int64_t count = applyRequest(settings, request, via_relay);
  if (flags.has("--json")) {
    std::cout << std::move(json::Writer()
                               .beginObject()
                               .field("purged", count)
                               .field("dry_run", request.dry_run)
                               .field("via_relay", via_relay)
                               .endObject())
                     .text()
              << "\n";
    return kExitOk;
  }
  const std::string what = from ? fmt::format("deliver{} of {}", count == 1 ? "y" : "ies", *from)
                                : fmt::format("dead letter{}", count == 1 ? "" : "s");
  std::cout << fmt::format("{} {} {}{}\n", request.dry_run ? "would purge" : "purged", count, what,
                           via_relay ? " (through the running relay)" : "");
  return kExitOk;
}

int runDlq(const GlobalOptions& options, const std::vector<std::string>& args) {
  if (args.empty()) throw UsageError("dlq needs list, show or purge");
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  const std::string& verb = args[0];
  if (verb != "list" && verb != "show" && verb != "purge") throw UsageError(fmt::format("unknown dlq verb '{}'", verb));
  if (verb == "list") return list(options, rest);
  if (verb == "show") return show(options, rest);
  return purge(options, rest);
}

}  // namespace

Command dlqCommand() {
  return {"dlq", "dead letters: list, show ID, purge",
          "usage: mews-relay [-c FILE] dlq list [--target T] [--since TIME] [--limit N] [--json]\n"
          "       mews-relay [-c FILE] dlq show ID [--json]\n"
          "       mews-relay [-c FILE] dlq purge [--older-than DURATION] [--dry-run] [--json]\n"
          "       mews-relay [-c FILE] dlq purge --from S [--dry-run] [--json]\n\n"
          "list   the dead letters, newest first (default limit 100): id, target, event\n"
          "       types, attempts, died at, reason, last error\n"
          "show   one dead letter whole: payload, headers sent, every attempt\n"
          "purge  deletes dead letters (all, or those that died longer ago than DURATION);\n"
          "       asks nothing, prints how many. --from S deletes instead the waiting and\n"
          "       dead work of S, a target removed from the configuration (see status)\n"
          "TIME is ISO 8601 (2026-11-27T10:00:00Z) or an age (2h, 3d). Safe while the relay\n"
          "runs: purge then goes through the relay's admin listener, presenting the\n"
          "credential the relay wrote to <journal>.admin (its operators can read it).\n"
          "Text from outside (answers, errors, event types, payload) is shown with\n"
          "control characters escaped (\\x1b); --json keeps it exact.\n\n"
          "examples:\n  mews-relay dlq list --target pms --since 1d\n  mews-relay dlq show 42\n"
          "  mews-relay dlq purge --older-than 30d --dry-run\n  mews-relay dlq purge --from old_pms --dry-run\n",
          runDlq};
}

}  // namespace mews::cli
