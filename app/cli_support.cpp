#include "cli_support.h"

#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/StreamCopier.h>

#include <fmt/format.h>
#include <algorithm>
#include <charconv>
#include <filesystem>
#include <iostream>
#include <limits>
#include <memory>
#include <regex>

#include "auth/credential.h"
#include "cli.h"
#include "common/clock.h"
#include "common/form.h"
#include "common/json_scan.h"
#include "common/text.h"
#include "common/units.h"
#include "journal/lock.h"

namespace mews::cli {

Flags::Flags(const std::vector<std::string>& args, const std::vector<std::string>& with_value,
             const std::vector<std::string>& switches) {
  auto known = [](const std::vector<std::string>& names, const std::string& name) {
    return std::find(names.begin(), names.end(), name) != names.end();
  };
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg.size() < 2 || arg[0] != '-' || arg == "-") {
      positionals_.push_back(arg);
      continue;
    }
    const auto eq = arg.find('=');
    const std::string name = arg.substr(0, eq);
    if (known(switches, name) && eq == std::string::npos) {
      switches_.push_back(name);
    } else if (known(with_value, name)) {
      if (eq != std::string::npos)
        values_.emplace_back(name, arg.substr(eq + 1));
      else if (i + 1 < args.size())
        values_.emplace_back(name, args[++i]);
      else
        throw UsageError(fmt::format("{} needs a value", name));
    } else {
      throw UsageError(fmt::format("unknown option '{}'", arg));
    }
  }
}

std::optional<std::string> Flags::value(const std::string& name) const {
  for (const auto& [key, value] : values_)
    if (key == name) return value;
  return std::nullopt;
}

bool Flags::has(const std::string& name) const {
  return std::find(switches_.begin(), switches_.end(), name) != switches_.end() || value(name).has_value();
}

std::int64_t parseTimeArg(const std::string& flag, const std::string& text, std::int64_t now_ms) {
  if (const auto iso = parseIsoMillis(text)) return *iso;
  const auto age = parseDuration(text);
  if (age.ok()) return now_ms - age.value().count();
  throw UsageError(fmt::format("{} '{}' is neither ISO 8601 (2026-11-27T10:00:00Z) nor an age (2h, 3d)", flag, text));
}

std::int64_t parseDurationArg(const std::string& flag, const std::string& text) {
  const auto parsed = parseDuration(text);
  if (!parsed.ok()) throw UsageError(fmt::format("{}: {}", flag, parsed.error()));
  return parsed.value().count();
}

std::int64_t parseIdArg(const std::string& text) {
  std::int64_t id = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (ec != std::errc{} || end != text.data() + text.size() || id <= 0)
    throw UsageError(fmt::format("'{}' is not a dead letter id", text));
  return id;
}

int parseCountArg(const std::string& flag, const std::string& text) {
  int count = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), count);
  if (ec != std::errc{} || end != text.data() + text.size() || count <= 0)
    throw UsageError(
        fmt::format("{} '{}' is not a whole number from 1 to {}", flag, text, std::numeric_limits<int>::max()));
  return count;
}

void printTable(const std::vector<std::string>& headers, const std::vector<std::vector<std::string>>& raw_rows) {
  std::vector<std::vector<std::string>> rows;
  rows.reserve(raw_rows.size());
  for (const auto& raw : raw_rows) {
    auto& row = rows.emplace_back();
    for (const auto& cell : raw) row.push_back(text::terminalLine(cell));
  }
  std::vector<std::size_t> widths(headers.size());
  for (std::size_t c = 0; c < headers.size(); ++c) widths[c] = headers[c].size();
  for (const auto& row : rows)
    for (std::size_t c = 0; c < row.size() && c < widths.size(); ++c) widths[c] = std::max(widths[c], row[c].size());
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (std::size_t c = 0; c < cells.size(); ++c) {
      out += cells[c];
      if (c + 1 < cells.size()) out += std::string(widths[c] - cells[c].size() + 2, ' ');
    }
    std::cout << out << "\n";
  };
  line(headers);
  for (const auto& row : rows) line(row);
}

std::string ageText(std::int64_t millis) {
  const std::int64_t seconds = std::max<std::int64_t>(0, millis / 1000);
  if (seconds < 120) return fmt::format("{}s", seconds);
  if (seconds < 7200) return fmt::format("{}m", seconds / 60);
  if (seconds < 172800) return fmt::format("{}h", seconds / 3600);
  return fmt::format("{}d", seconds / 86400);
}

bool isConfigured(const config::Settings& settings, const std::string& name) {
  return std::any_of(settings.targets.begin(), settings.targets.end(),
                     [&](const config::TargetSettings& target) { return target.name == name; });
}

std::vector<std::string> targetNames(const config::Settings& settings) {
  std::vector<std::string> names;
  for (const auto& target : settings.targets) names.push_back(target.name);
  return names;
}

journal::Journal openReader(const config::Settings& settings) {
  if (settings.journal.location().backend() == journal::Backend::Postgres)
    return journal::Journal(settings.journal.location(), {0, true});
  if (!std::filesystem::exists(settings.journal.path))
    throw std::runtime_error(fmt::format("journal {} does not exist (has the relay run yet?)", settings.journal.path));
  return journal::Journal(settings.journal.path, {0, true});
}

namespace {

// The relay's answer: {"count": N}, or {"error": "..."} with a status other than 200.
std::int64_t countFromAnswer(int status, const std::string& body) {
  const auto unexpected = [&] {
    return std::runtime_error(fmt::format("unexpected answer from the relay (HTTP {}): {}", status, body));
  };
  std::optional<std::string> error;
  std::optional<std::int64_t> count;
  json::Scanner scanner(body);
  if (!scanner.begin() || !scanner.enterObject()) throw unexpected();
  std::string_view name;
  while (scanner.nextMember(name)) {
    json::Kind kind{};
    if (!scanner.peek(kind)) break;
    const std::size_t value_at = scanner.offset();
    if (json::equals(name, "error") && kind == json::Kind::String) {
      std::string_view raw;
      if (scanner.string(raw)) error = json::decode(raw);
    } else if (json::equals(name, "count") && kind == json::Kind::Number && scanner.skipValue()) {
      const std::string_view digits = std::string_view(body).substr(value_at, scanner.offset() - value_at);
      std::int64_t value = 0;
      const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
      if (ec == std::errc{} && end == digits.data() + digits.size()) count = value;
    } else {
      scanner.skipValue();
    }
  }
  if (scanner.failed() || !scanner.end()) throw unexpected();
  if (status != Poco::Net::HTTPResponse::HTTP_OK) throw std::runtime_error(error.value_or(body));
  if (!count) throw unexpected();
  return *count;
}

std::int64_t viaAdmin(const std::string& journal_path, const std::string& admin_path) {
  const std::string published = journal::JournalLock::readPublished(journal_path);
  std::smatch match;
  if (!std::regex_search(published, match, std::regex(R"(admin=(\S+))")))
    throw std::runtime_error(fmt::format("a relay holds {}.lock but published no admin address", journal_path));
  // Only the relay's operators can read it (admin/credential.h); others stop here.
  const std::string credential = auth::readCredential(journal_path);
  const Poco::Net::SocketAddress address(match[1].str());
  // With [admin] tls_certificate the listener speaks only HTTPS. The address
  // comes from the lock file on this box, so the certificate is not checked.
  const bool tls = published.find("admin_scheme=https") != std::string::npos;
  std::unique_ptr<Poco::Net::HTTPClientSession> session_ptr;
  if (tls)
    session_ptr = std::make_unique<Poco::Net::HTTPSClientSession>(
        address.host().toString(), address.port(),
        new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, "", Poco::Net::Context::VERIFY_NONE));
  else
    session_ptr = std::make_unique<Poco::Net::HTTPClientSession>(address);
  Poco::Net::HTTPClientSession& session = *session_ptr;
  session.setTimeout(Poco::Timespan(60, 0));
  Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_POST, admin_path, Poco::Net::HTTPMessage::HTTP_1_1);
  request.setContentLength(0);
  request.set("Authorization", "Bearer " + credential);
  std::string body;
  Poco::Net::HTTPResponse response;
  try {
    session.sendRequest(request);
    Poco::StreamCopier::copyToString(session.receiveResponse(response), body);
  } catch (const Poco::Exception& e) {
    throw std::runtime_error(
        fmt::format("the running relay's admin listener {} did not answer: {}", address.toString(), e.displayText()));
  }
  return countFromAnswer(static_cast<int>(response.getStatus()), body);
}

// One transaction of this process's own connection.
template <class Apply>
std::int64_t applyDirectly(const journal::JournalLocation& location, Apply apply) {
  journal::Journal journal(location, {});
  journal::Transaction transaction(journal.db());
  const std::int64_t count = apply(journal);
  transaction.commit();
  return count;
}

// Directly when this process may write the journal, else through the relay.
template <class Apply>
std::int64_t applyChange(const config::Settings& settings, std::string_view admin_path, const form::Pairs& request,
                         Apply apply, bool& via_relay) {
  // PostgreSQL serializes writers itself, and every change is a guarded
  // UPDATE or DELETE (journal/queue.h): the CLI writes beside a running relay,
  // which sees the change at its next pass.
  if (settings.journal.location().backend() == journal::Backend::Postgres) {
    via_relay = false;
    return applyDirectly(settings.journal.location(), apply);
  }
  if (!std::filesystem::exists(settings.journal.path))
    throw std::runtime_error(fmt::format("journal {} does not exist (has the relay run yet?)", settings.journal.path));
  journal::JournalLock lock(settings.journal.path);
  via_relay = !lock.held();
  if (via_relay) return viaAdmin(settings.journal.path, std::string(admin_path) + "?" + form::encode(request));
  // No relay runs: this process is the journal's only writer while it holds the lock.
  return applyDirectly(settings.journal.location(), apply);
}

}  // namespace

std::int64_t applyRequest(const config::Settings& settings, const journal::ReplayRequest& request, bool& via_relay) {
  const std::int64_t now = SystemClock::instance().wallMillis();
  return applyChange(
      settings, journal::kReplayPath, journal::encode(request),
      [&](journal::Journal& journal) {
        const auto outcome = journal::apply(journal, request, now);
        if (!outcome.unknown.empty())
          throw std::runtime_error(fmt::format("no dead letter with id {} in {}", text::joinList(outcome.unknown),
                                               settings.journal.location().display()));
        return outcome.count;
      },
      via_relay);
}

std::int64_t applyRequest(const config::Settings& settings, const journal::PurgeRequest& request, bool& via_relay) {
  const std::int64_t now = SystemClock::instance().wallMillis();
  return applyChange(
      settings, journal::kPurgePath, journal::encode(request),
      [&](journal::Journal& journal) { return journal::apply(journal, request, now); }, via_relay);
}

}  // namespace mews::cli
