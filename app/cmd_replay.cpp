// `replay`: dead letters back to the queue, or journaled batches re-sent to a target.
#include <fmt/format.h>
#include <unistd.h>
#include <iostream>

#include "cli.h"
#include "cli_support.h"
#include "common/clock.h"
#include "common/json.h"
#include "common/text.h"
#include "journal/moves.h"
#include "journal/reports.h"
#include "journal/queue.h"

namespace mews::cli {
namespace {

using journal::kReplayStep;

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

int runReplay(const GlobalOptions& options, const std::vector<std::string>& args) {
  const Flags flags(args, {"--target", "--since", "--until", "--received-since", "--to", "--from"},
                    {"--dead", "--dry-run", "--json"});
  const bool dry_run = flags.has("--dry-run");
  const bool by_ids = !flags.positionals().empty();
  const bool dead = flags.has("--dead");
  const bool received = flags.has("--received-since");
  const auto from = flags.value("--from");
  const auto to = flags.value("--to");
  if (by_ids + dead + received + from.has_value() != 1)
    throw UsageError("say which: dead letter ids, --dead, --received-since TIME --target T, or --from S --to T");
  if (to && received) throw UsageError("--to goes with dead letter ids, --dead or --from");
  if (from && !to) throw UsageError("--from S needs --to T");
  const config::Settings settings = config::loadSettings(options.config_path, config::Secrets::Optional);
  if (to && !isConfigured(settings, *to))
    throw std::runtime_error(fmt::format("no target '{}' in {}", *to, settings.source_file));
  const std::int64_t now = SystemClock::instance().wallMillis();
  const std::string suffix = dry_run ? "&dry_run=1" : "";
  const std::string to_suffix = to ? "&to=" + *to : "";

  bool via_relay = false;
  std::int64_t count = 0;
  if (from) {
    if (flags.value("--target") || flags.value("--since") || flags.value("--until"))
      throw UsageError("--from takes no --target, --since or --until");
    if (isConfigured(settings, *from))
      throw std::runtime_error(
          fmt::format("target '{}' is in {}: its work is its own; remove the target and reload before moving its work",
                      *from, settings.source_file));
    count = applyChange(settings,
                        {[from = *from, to = *to, now, dry_run](journal::Journal& journal) {
                           return journal::retargetWork(journal, from, to, now, dry_run);
                         },
                         fmt::format("/admin/replay?from={}&to={}{}", *from, *to, suffix)},
                        via_relay);
  } else if (by_ids || dead) {
    std::vector<std::int64_t> ids;
    if (by_ids) {
      if (flags.value("--target") || flags.value("--since") || flags.value("--until"))
        throw UsageError("--target, --since and --until go with --dead or --received-since");
      ids = idsFrom(flags.positionals());
      if (ids.empty()) throw UsageError("no ids given");
    }
    {
      auto reader = openReader(settings);
      if (by_ids) {
        // All or nothing: every id is checked before anything changes.
        const auto unknown = journal::unknownDeadLetters(reader, ids);
        if (!unknown.empty())
          throw std::runtime_error(fmt::format("no dead letter with id {} in {}", text::joinList(unknown),
                                               settings.journal.location().display()));
      } else {
        journal::DeadLetterFilter filter;
        filter.target = flags.value("--target");
        if (const auto since = flags.value("--since")) filter.since_ms = parseTimeArg("--since", *since, now);
        if (const auto until = flags.value("--until")) filter.until_ms = parseTimeArg("--until", *until, now);
        for (const auto& letter : journal::listDeadLetters(reader, filter))
          if (letter.state == journal::DeliveryState::Dead) ids.push_back(letter.id);
      }
    }
    // In steps, so that a replay of thousands neither holds the writer long nor
    // stays silent on a terminal.
    const bool progress = !flags.has("--json") && isatty(STDERR_FILENO) && ids.size() > kReplayStep;
    for (std::size_t start = 0; start < ids.size(); start += kReplayStep) {
      const std::vector<std::int64_t> step(
          ids.begin() + static_cast<std::ptrdiff_t>(start),
          ids.begin() + static_cast<std::ptrdiff_t>(std::min(ids.size(), start + kReplayStep)));
      count += applyChange(settings,
                           {[step, now, dry_run, to](journal::Journal& journal) {
                              if (to) return journal::retargetDeadLetters(journal, step, *to, now, dry_run);
                              return journal::replayDeadLetters(journal, step, now, dry_run);
                            },
                            "/admin/replay?ids=" + text::joinList(step) + to_suffix + suffix},
                           via_relay);
      if (progress)
        std::cerr << fmt::format("\r{} {}/{}", dry_run ? "checked" : "replayed", start + step.size(), ids.size());
    }
    if (progress) std::cerr << "\n";
  } else {
    const auto target = flags.value("--target");
    if (!target) throw UsageError("--received-since needs --target T");
    if (!isConfigured(settings, *target))
      throw std::runtime_error(fmt::format("no target '{}' in {}", *target, settings.source_file));
    const std::int64_t since = parseTimeArg("--received-since", *flags.value("--received-since"), now);
    std::optional<std::int64_t> until;
    if (const auto value = flags.value("--until")) until = parseTimeArg("--until", *value, now);
    count = applyChange(settings,
                        {[target = *target, since, until, now, dry_run](journal::Journal& journal) {
                           return journal::replayReceived(journal, target, since, until, now, dry_run);
                         },
                         fmt::format("/admin/replay?received_since_ms={}&target={}", since, *target) +
                             (until ? fmt::format("&until_ms={}", *until) : "") + suffix},
                        via_relay);
  }
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
