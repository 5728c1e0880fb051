// `replay`: dead letters back to the queue, or journaled batches re-sent to a target.
#include <fmt/format.h>
#include <unistd.h>
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

std::vector<std::int64_t> idsFrom(const std::vector<std::string>& positionals) {
  std::vector<std::int64_t> ids;
  for (const auto& arg : positionals) {
    if (arg != "-") {
      ids.push_back(parseIdArg(arg));
      continue;
    }
    std::string word;
    while (std::cin >> word) ids.push_back(parseIdArg(word));  // `-`: ids from stdin, like postsuper
  }
  return ids;
}

// The request the flags say, checked against the configuration file.
journal::ReplayRequest requestFrom(const Flags& flags, const config::Settings& settings, std::int64_t now) {
  journal::ReplayRequest request;
  request.to = flags.value("--to");
  request.dry_run = flags.has("--dry-run");
  if (const auto from = flags.value("--from")) {
    if (flags.value("--target") || flags.value("--since") || flags.value("--until"))
      throw UsageError("--from takes no --target, --since or --until");
    request.what = journal::ReplayRequest::RemovedTargetWork{*from};
  } else if (!flags.positionals().empty()) {
    if (flags.value("--target") || flags.value("--since") || flags.value("--until"))
      throw UsageError("--target, --since and --until go with --dead or --received-since");
    auto ids = idsFrom(flags.positionals());
    if (ids.empty()) throw UsageError("no ids given");
    request.what = journal::ReplayRequest::DeadLetterIds{std::move(ids)};
  } else if (flags.has("--dead")) {
    journal::DeadLetterQuery query;
    query.target = flags.value("--target");
    if (const auto since = flags.value("--since")) query.since_ms = parseTimeArg("--since", *since, now);
    if (const auto until = flags.value("--until")) query.until_ms = parseTimeArg("--until", *until, now);
    request.what = journal::ReplayRequest::DeadLettersMatching{query, {}};
  } else {
    journal::ReplayRequest::Received window;
    const auto target = flags.value("--target");
    if (!target) throw UsageError("--received-since needs --target T");
    window.target = *target;
    window.since_ms = parseTimeArg("--received-since", *flags.value("--received-since"), now);
    if (const auto until = flags.value("--until")) window.until_ms = parseTimeArg("--until", *until, now);
    request.what = window;
  }
  if (const auto refused = journal::refusalByTargets(request, targetNames(settings), "in " + settings.source_file))
    throw std::runtime_error(*refused);
  return request;
}

int runReplay(const GlobalOptions& options, const std::vector<std::string>& args) {
  const Flags flags(args, {"--target", "--since", "--until", "--received-since", "--to", "--from"},
                    {"--dead", "--dry-run", "--json"});
  const bool dry_run = flags.has("--dry-run");
  const bool by_ids = !flags.positionals().empty();
  const bool received = flags.has("--received-since");
  const auto from = flags.value("--from");
  const auto to = flags.value("--to");
  if (by_ids + flags.has("--dead") + received + from.has_value() != 1)
    throw UsageError("say which: dead letter ids, --dead, --received-since TIME --target T, or --from S --to T");
  if (to && received) throw UsageError("--to goes with dead letter ids, --dead or --from");
  if (from && !to) throw UsageError("--from S needs --to T");
  const config::Settings settings = config::loadSettings(options.config_path, config::Secrets::Optional);
  const journal::ReplayRequest request = requestFrom(flags, settings, SystemClock::instance().wallMillis());

  std::vector<journal::ReplayRequest> steps;
  {
    auto reader = openReader(settings);
    if (const auto* named = std::get_if<journal::ReplayRequest::DeadLetterIds>(&request.what)) {
      // All or nothing across the steps: every id is checked before anything changes.
      const auto unknown = journal::unknownDeadLetters(reader, named->ids);
      if (!unknown.empty())
        throw std::runtime_error(fmt::format("no dead letter with id {} in {}", text::joinList(unknown),
                                             settings.journal.location().display()));
    }
    steps = journal::replaySteps(reader, request);
  }
  const bool progress = !flags.has("--json") && isatty(STDERR_FILENO) && steps.size() > 1;
  bool via_relay = false;
  std::int64_t count = 0;
  const auto letters = [](const journal::ReplayRequest& step) -> std::size_t {
    if (const auto* named = std::get_if<journal::ReplayRequest::DeadLetterIds>(&step.what)) return named->ids.size();
    if (const auto* matching = std::get_if<journal::ReplayRequest::DeadLettersMatching>(&step.what))
      return matching->among.size();
    return 0;
  };
  std::size_t done = 0;
  std::size_t total = 0;
  for (const auto& step : steps) total += letters(step);
  for (const auto& step : steps) {
    count += applyRequest(settings, step, via_relay);
    done += letters(step);
    if (progress) std::cerr << fmt::format("\r{} {}/{}", dry_run ? "checked" : "replayed", done, total);
  }
  if (progress) std::cerr << "\n";
  if (flags.has("--json")) {
    std::cout << std::move(json::Writer()
                               .beginObject()
                               .field("replayed", count)
                               .field("dry_run", dry_run)
                               .field("via_relay", via_relay)
                               .endObject())
                     .text()
              << "\n";
  } else {
    std::cout << fmt::format("{} {} deliver{}{}{}\n", dry_run ? "would replay" : "replayed", count,
                             count == 1 ? "y" : "ies", to ? " to " + *to : std::string(),
                             via_relay    ? " (through the running relay)"
                             : count == 0 ? ""
                             : settings.journal.location().backend() == journal::Backend::Postgres
                                 ? " (a running relay picks them up within a second)"
                                 : " (picked up when the relay next runs)");
  }
  return kExitOk;
}

}  // namespace

Command replayCommand() {
  return {"replay", "requeue dead letters, or re-send received batches to a target",
          "usage: mews-relay [-c FILE] replay ID... [--dry-run] [--json]      ('-' reads ids from stdin)\n"
          "       mews-relay [-c FILE] replay --dead [--target T] [--since TIME] [--until TIME] [--dry-run]\n"
          "       mews-relay [-c FILE] replay --received-since TIME [--until TIME] --target T [--dry-run]\n"
          "       mews-relay [-c FILE] replay (ID... | --dead [...]) --to T [--dry-run]\n"
          "       mews-relay [-c FILE] replay --from S --to T [--dry-run]\n\n"
          "Dead letters go back to the queue with a fresh attempt budget and the same\n"
          "webhook-id; a dead letter leaves `dlq list` once delivered. --received-since\n"
          "re-sends every batch received in the window to T again, delivered ones too\n"
          "(for a target that lost its own data). --to T sends dead letters to another\n"
          "configured target T instead of their own. --from S --to T moves the waiting\n"
          "and dead work of S, a target removed from the configuration (see status),\n"
          "to T. TIME is ISO 8601 or an age (2h, 3d).\n"
          "While the relay runs, the change goes through its admin listener (with the\n"
          "credential the relay wrote to <journal>.admin) and is picked up at once.\n\n"
          "examples:\n  mews-relay replay 17 18\n  mews-relay dlq list --json | jq '.[].id' | mews-relay replay -\n"
          "  mews-relay replay --dead --target pms --since 2h\n"
          "  mews-relay replay --received-since 2026-11-27T08:00:00Z --target crm\n"
          "  mews-relay replay --from old_pms --to pms\n",
          runReplay};
}

}  // namespace mews::cli
