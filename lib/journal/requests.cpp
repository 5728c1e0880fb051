#include "journal/requests.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <set>

#include "common/text.h"

namespace mews::journal {
namespace {

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

void put(form::Pairs& out, const char* key, const std::optional<std::string>& value) {
  if (value) out.emplace_back(key, *value);
}
void put(form::Pairs& out, const char* key, const std::optional<std::int64_t>& value) {
  if (value) out.emplace_back(key, std::to_string(*value));
}

void putQuery(form::Pairs& out, const DeadLetterQuery& query) {
  put(out, "target", query.target);
  put(out, "reason", query.reason);
  put(out, "since_ms", query.since_ms);
  put(out, "until_ms", query.until_ms);
}

// The pairs of one request, each key once (but `id`), and which keys were used.
class Reader {
 public:
  explicit Reader(const form::Pairs& pairs) {
    std::set<std::string> seen;
    for (const auto& [key, value] : pairs) {
      if (key == "id") {
        ids_.push_back(number(key, value));
        continue;
      }
      if (!seen.insert(key).second) throw RequestError(fmt::format("{} is given twice", key));
      values_.emplace_back(key, value);
    }
  }

  [[nodiscard]] bool has(std::string_view key) const { return find(key) != nullptr; }
  std::optional<std::string> text(std::string_view key) {
    const auto* value = find(key);
    if (!value) return std::nullopt;
    if (value->empty()) throw RequestError(fmt::format("{} is empty", key));
    used_.insert(std::string(key));
    return *value;
  }
  std::optional<std::int64_t> millis(std::string_view key) {
    const auto value = text(key);
    if (!value) return std::nullopt;
    const std::int64_t ms = number(key, *value);
    if (ms < 0) throw RequestError(fmt::format("{}: '{}' is not a time in milliseconds", key, *value));
    return ms;
  }
  bool flag(std::string_view key) {
    const auto* value = find(key);
    if (!value) return false;
    if (*value != "1") throw RequestError(fmt::format("{} takes 1", key));
    used_.insert(std::string(key));
    return true;
  }
  std::vector<std::int64_t> ids() {
    used_ids_ = true;
    return ids_;
  }
  DeadLetterQuery query() {
    DeadLetterQuery query;
    query.target = text("target");
    query.reason = text("reason");
    if (query.reason &&
        std::find(std::begin(kDeathReasons), std::end(kDeathReasons), *query.reason) == std::end(kDeathReasons))
      throw RequestError(fmt::format("reason: '{}' is not rejected, max_attempts or max_age", *query.reason));
    query.since_ms = millis("since_ms");
    query.until_ms = millis("until_ms");
    return query;
  }
  // Every key was read by the kind decoded: the rest do not go with it.
  void done(std::string_view kind) const {
    if (!ids_.empty() && !used_ids_) throw RequestError(fmt::format("id does not go with {}", kind));
    for (const auto& [key, value] : values_)
      if (!used_.count(key)) throw RequestError(fmt::format("{} does not go with {}", key, kind));
  }

 private:
  static std::int64_t number(std::string_view key, const std::string& value) {
    std::int64_t out = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), out);
    if (value.empty() || ec != std::errc{} || end != value.data() + value.size())
      throw RequestError(fmt::format("{}: '{}' is not a number", key, text::terminalLine(value)));
    return out;
  }
  [[nodiscard]] const std::string* find(std::string_view key) const {
    for (const auto& [name, value] : values_)
      if (name == key) return &value;
    return nullptr;
  }

  form::Pairs values_;
  std::vector<std::int64_t> ids_;
  std::set<std::string> used_;
  bool used_ids_ = false;
};

// Exactly one of the kinds' keys must be present.
void expectOneKind(const std::vector<bool>& present, std::string_view kinds) {
  if (std::count(present.begin(), present.end(), true) != 1) throw RequestError(fmt::format("say one of {}", kinds));
}

std::optional<std::string> notConfigured(const std::string& target, const std::vector<std::string>& configured,
                                         const std::string& where) {
  if (std::find(configured.begin(), configured.end(), target) != configured.end()) return std::nullopt;
  return fmt::format("no target '{}' {}", target, where);
}

std::optional<std::string> stillConfigured(const std::string& from, const std::vector<std::string>& configured,
                                           const std::string& where) {
  if (std::find(configured.begin(), configured.end(), from) == configured.end()) return std::nullopt;
  return fmt::format("target '{}' is {}: its work is its own; remove it and reload first", from, where);
}

}  // namespace

form::Pairs encode(const ReplayRequest& request) {
  form::Pairs out;
  std::visit(Overloaded{
                 [&](const ReplayRequest::DeadLetterIds& ids) {
                   for (const auto id : ids.ids) out.emplace_back("id", std::to_string(id));
                 },
                 [&](const ReplayRequest::DeadLettersMatching& matching) {
                   out.emplace_back("dead", "1");
                   putQuery(out, matching.query);
                   for (const auto id : matching.among) out.emplace_back("id", std::to_string(id));
                 },
                 [&](const ReplayRequest::Received& received) {
                   out.emplace_back("received_since_ms", std::to_string(received.since_ms));
                   put(out, "until_ms", received.until_ms);
                   out.emplace_back("target", received.target);
                 },
                 [&](const ReplayRequest::RemovedTargetWork& work) { out.emplace_back("from", work.from); },
             },
             request.what);
  put(out, "to", request.to);
  if (request.dry_run) out.emplace_back("dry_run", "1");
  return out;
}

form::Pairs encode(const PurgeRequest& request) {
  form::Pairs out;
  std::visit(Overloaded{
                 [&](const PurgeRequest::DeadLetters& letters) { putQuery(out, letters.query); },
                 [&](const PurgeRequest::RemovedTargetWork& work) { out.emplace_back("from", work.from); },
             },
             request.what);
  if (request.dry_run) out.emplace_back("dry_run", "1");
  return out;
}

ReplayRequest decodeReplay(const form::Pairs& pairs) {
  Reader in(pairs);
  ReplayRequest request;
  const bool dead = in.flag("dead");
  const bool by_ids = !dead && !in.ids().empty();
  const bool received = in.has("received_since_ms");
  const bool from = in.has("from");
  expectOneKind({by_ids, dead, received, from}, "id, dead=1, received_since_ms or from");
  request.to = in.text("to");
  request.dry_run = in.flag("dry_run");
  std::string_view kind;
  if (by_ids) {
    request.what = ReplayRequest::DeadLetterIds{in.ids()};
    kind = "id";
  } else if (dead) {
    request.what = ReplayRequest::DeadLettersMatching{in.query(), in.ids()};
    kind = "dead=1";
  } else if (received) {
    if (request.to) throw RequestError("to goes with id, dead=1 or from, not with received_since_ms");
    ReplayRequest::Received window;
    window.since_ms = *in.millis("received_since_ms");
    window.until_ms = in.millis("until_ms");
    const auto target = in.text("target");
    if (!target) throw RequestError("received_since_ms needs target");
    window.target = *target;
    request.what = window;
    kind = "received_since_ms";
  } else {
    if (!request.to) throw RequestError("from needs to");
    request.what = ReplayRequest::RemovedTargetWork{*in.text("from")};
    kind = "from";
  }
  in.done(kind);
  return request;
}

PurgeRequest decodePurge(const form::Pairs& pairs) {
  Reader in(pairs);
  PurgeRequest request;
  request.dry_run = in.flag("dry_run");
  if (const auto from = in.text("from")) {
    request.what = PurgeRequest::RemovedTargetWork{*from};
    in.done("from");
    return request;
  }
  request.what = PurgeRequest::DeadLetters{in.query()};
  in.done("a purge of dead letters");
  return request;
}

std::optional<std::string> refusalByTargets(const ReplayRequest& request, const std::vector<std::string>& configured,
                                            const std::string& where) {
  if (request.to)
    if (auto refused = notConfigured(*request.to, configured, where)) return refused;
  if (const auto* received = std::get_if<ReplayRequest::Received>(&request.what))
    return notConfigured(received->target, configured, where);
  if (const auto* work = std::get_if<ReplayRequest::RemovedTargetWork>(&request.what))
    return stillConfigured(work->from, configured, where);
  return std::nullopt;
}

std::optional<std::string> refusalByTargets(const PurgeRequest& request, const std::vector<std::string>& configured,
                                            const std::string& where) {
  if (const auto* work = std::get_if<PurgeRequest::RemovedTargetWork>(&request.what))
    return stillConfigured(work->from, configured, where);
  return std::nullopt;
}

std::vector<ReplayRequest> replaySteps(Journal& reader, const ReplayRequest& request) {
  const auto* named = std::get_if<ReplayRequest::DeadLetterIds>(&request.what);
  const auto* matching = std::get_if<ReplayRequest::DeadLettersMatching>(&request.what);
  if (!named && !matching) return {request};
  const std::vector<std::int64_t> ids =
      named ? named->ids : (matching->among.empty() ? deadLetterIdsMatching(reader, matching->query) : matching->among);
  std::vector<ReplayRequest> steps;
  for (std::size_t start = 0; start < ids.size(); start += kReplayStep) {
    const std::vector<std::int64_t> step_ids(
        ids.begin() + static_cast<std::ptrdiff_t>(start),
        ids.begin() + static_cast<std::ptrdiff_t>(std::min(ids.size(), start + kReplayStep)));
    ReplayRequest step = request;
    if (named)
      step.what = ReplayRequest::DeadLetterIds{step_ids};
    else
      step.what = ReplayRequest::DeadLettersMatching{matching->query, step_ids};
    steps.push_back(std::move(step));
  }
  return steps;
}

ReplayOutcome apply(Journal& journal, const ReplayRequest& request, std::int64_t now_ms) {
  const bool dry_run = request.dry_run;
  const auto letters = [&](const std::vector<std::int64_t>& ids) {
    return request.to ? retargetDeadLetters(journal, ids, *request.to, now_ms, dry_run)
                      : replayDeadLetters(journal, ids, now_ms, dry_run);
  };
  ReplayOutcome outcome;
  std::visit(
      Overloaded{
          [&](const ReplayRequest::DeadLetterIds& named) {
            outcome.unknown = unknownDeadLetters(journal, named.ids);
            if (outcome.unknown.empty()) outcome.count = letters(named.ids);
          },
          [&](const ReplayRequest::DeadLettersMatching& matching) {
            outcome.count =
                letters(matching.among.empty() ? deadLetterIdsMatching(journal, matching.query) : matching.among);
          },
          [&](const ReplayRequest::Received& window) {
            outcome.count = replayReceived(journal, window.target, window.since_ms, window.until_ms, now_ms, dry_run);
          },
          [&](const ReplayRequest::RemovedTargetWork& work) {
            if (!request.to) throw RequestError("from needs to");
            outcome.count = retargetWork(journal, work.from, *request.to, now_ms, dry_run);
          },
      },
      request.what);
  return outcome;
}

std::int64_t apply(Journal& journal, const PurgeRequest& request, std::int64_t now_ms) {
  if (const auto* work = std::get_if<PurgeRequest::RemovedTargetWork>(&request.what))
    return purgeTargetWork(journal, work->from, request.dry_run);
  const auto& query = std::get<PurgeRequest::DeadLetters>(request.what).query;
  return purgeDeadMatching(journal, query, query.until_ms.value_or(now_ms + 1) - 1, request.dry_run);
}

}  // namespace mews::journal
