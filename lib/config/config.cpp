#include "config/config.h"

#include <Poco/AutoPtr.h>
#include <Poco/Base64Decoder.h>
#include <Poco/Exception.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/URI.h>
#include <Poco/Util/IniFileConfiguration.h>
#include <Poco/Util/LayeredConfiguration.h>
#include <Poco/Util/SystemConfiguration.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "auth/password.h"
#include "common/text.h"
#include "common/url.h"
#include "journal/postgres.h"

namespace mews::config {
namespace {

// Thrown by a key's apply function; the loader adds file, section and key.
struct ValueError {
  std::string reason;
};

constexpr std::uint64_t kMaxFileValue = 64 * 1024;         // ${file:PATH}: a token or secret is small
constexpr std::uint64_t kMaxConfigFile = 4 * 1024 * 1024;  // the INI file itself

// What a small file holds, or why it was not read (the path named, never the content).
struct FileText {
  std::string text;
  std::string error;
};

// Reads a file the loader needs: the config file, a ${file:PATH} value, a TLS
// file's readability. A reload runs on the thread that waits for signals
// (app/cmd_serve.cpp), so nothing here may block or grow without bound: a
// FIFO without a writer would leave SIGTERM unanswered, /dev/zero would never
// end. The file is opened without blocking, must be a regular file, and is
// refused unread when fstat says it is larger than `limit`; at most limit + 1
// bytes are read, so a file that grows meanwhile is refused too.
// `what` ("config file ", or nothing) goes before the path in errors.
FileText readSmallFile(const std::string& path, std::uint64_t limit, std::string_view what = {}) {
  const auto not_regular = [&](const struct stat& info) {
    const char* kind = S_ISDIR(info.st_mode)    ? "a directory"
                       : S_ISFIFO(info.st_mode) ? "a FIFO"
                       : S_ISSOCK(info.st_mode) ? "a socket"
                                                : "a device";
    return FileText{{}, fmt::format("{}{} is {}, not a regular file", what, path, kind)};
  };
  // Looked at before it is opened (opening a device can act on it), and again
  // after (it may have been replaced in between).
  struct stat info {};
  if (::stat(path.c_str(), &info) == 0 && !S_ISREG(info.st_mode)) return not_regular(info);
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return {{}, fmt::format("cannot read {}{}: {}", what, path, std::strerror(errno))};
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  if (::fstat(fd, &info) != 0) return {{}, fmt::format("cannot read {}{}: {}", what, path, std::strerror(errno))};
  if (!S_ISREG(info.st_mode)) return not_regular(info);
  const auto too_large = [&] {
    return FileText{{}, fmt::format("{}{} is larger than {} (the most read from it)", what, path, formatSize(limit))};
  };
  if (static_cast<std::uint64_t>(info.st_size) > limit) return too_large();
  std::string text(static_cast<std::size_t>(limit) + 1, '\0');
  std::size_t got = 0;
  while (got < text.size()) {
    const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return {{}, fmt::format("cannot read {}{}: {}", what, path, std::strerror(errno))};
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  if (got > limit) return too_large();
  text.resize(got);
  return {std::move(text), {}};
}

// A reason for refusing a value read from a file, without the file's content:
// the reasons quote what they refuse ("'x' is not a whole number"), and a file
// holds secrets. Each quoted piece (the whole, a list item, a word) becomes
// "…"; if a run of 4+ letters or digits of the content is still there, the
// reason is not shown at all.
std::string withoutContent(std::string reason, std::string_view content) {
  std::vector<std::string> pieces{std::string(content)};
  for (auto& item : text::splitList(content)) pieces.push_back(std::move(item));
  std::istringstream words{std::string(content)};
  for (std::string word; words >> word;) pieces.push_back(word);
  std::sort(pieces.begin(), pieces.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
  const auto word_char = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
  for (const auto& piece : pieces) {
    if (piece.empty()) continue;
    for (auto at = reason.find(piece); at != std::string::npos; at = reason.find(piece, at + 1)) {
      const bool starts = at == 0 || !word_char(reason[at - 1]) || !word_char(piece.front());
      const bool ends =
          at + piece.size() == reason.size() || !word_char(reason[at + piece.size()]) || !word_char(piece.back());
      if (starts && ends) reason.replace(at, piece.size(), "\u2026");
    }
  }
  for (std::size_t i = 0; i < content.size();) {
    std::size_t end = i;
    while (end < content.size() && word_char(content[end])) ++end;
    if (end - i >= 4 && reason.find(content.substr(i, end - i)) != std::string::npos)
      return "(the reason is not shown: it would show the file's content)";
    i = end == i ? i + 1 : end;
  }
  return reason;
}

std::string_view trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t\r\n");
  return text.substr(first, last - first + 1);
}

// Poco's INI reader keeps everything after '=' as the value; operators put
// comments after values (`workers = 8 ; why`). A ';' or '#'
// preceded by white space starts a comment; one inside a value (`a;b`) does not.
std::string_view stripInlineComment(std::string_view value) {
  for (std::size_t i = 1; i < value.size(); ++i)
    if ((value[i] == ';' || value[i] == '#') && (value[i - 1] == ' ' || value[i - 1] == '\t'))
      return trim(value.substr(0, i));
  if (!value.empty() && (value[0] == ';' || value[0] == '#')) return {};
  return trim(value);
}

Millis durationIn(std::string_view text, Millis min, Millis max) {
  const auto parsed = parseDuration(text);
  if (!parsed.ok()) throw ValueError{parsed.error()};
  if (parsed.value() < min || parsed.value() > max)
    throw ValueError{fmt::format("{} is outside {}..{}", text, formatDuration(min), formatDuration(max))};
  return parsed.value();
}

std::uint64_t sizeIn(std::string_view text, std::uint64_t min, std::uint64_t max) {
  const auto parsed = parseSize(text);
  if (!parsed.ok()) throw ValueError{parsed.error()};
  if (parsed.value() < min || parsed.value() > max)
    throw ValueError{fmt::format("{} is outside {}..{}", text, formatSize(min), formatSize(max))};
  return parsed.value();
}

int countIn(std::string_view text, int min, int max) {
  int value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size())
    throw ValueError{fmt::format("'{}' is not a whole number", text)};
  if (value < min || value > max) throw ValueError{fmt::format("{} is outside {}..{}", value, min, max)};
  return value;
}

std::string listenAddress(std::string_view text) {
  try {
    // Poco reads a leading '/' as a UNIX socket path; the listeners are TCP.
    const Poco::Net::SocketAddress address{std::string(text)};
    if (address.family() == Poco::Net::SocketAddress::UNIX_LOCAL)
      throw ValueError{fmt::format("'{}' is not HOST:PORT (a TCP address, not a socket path)", text)};
  } catch (const Poco::Exception& e) {
    throw ValueError{fmt::format("'{}' is not HOST:PORT ({})", text, e.displayText())};
  }
  return std::string(text);
}

bool isIdentifier(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '_' || c == '-' || c == '.';
  });
}

// `*`, or a list of Mews ids (GUIDs), kept lowercased: Mews writes them in
// lowercase, and an operator's copy in capitals must still match.
std::vector<std::string> idFilter(std::string_view text) {
  if (text == "*") return {};
  auto ids = text::splitList(text);
  if (ids.empty()) throw ValueError{"use * or list at least one id"};
  for (auto& id : ids) {
    if (id == "*") throw ValueError{"* stands alone; it cannot be part of a list"};
    if (!isIdentifier(id)) throw ValueError{fmt::format("'{}' is not an id (letters, digits, '-', '_', '.')", id)};
    id = text::lower(id);
  }
  return ids;
}

// Standard Webhooks secrets: "whsec_" + base64 of 24 to 64 random bytes.
void checkSigningSecret(std::string_view text) {
  constexpr std::string_view kPrefix = "whsec_";
  if (text.substr(0, kPrefix.size()) != kPrefix)
    throw ValueError{"must start with whsec_ followed by base64 (Standard Webhooks)"};
  std::istringstream encoded{std::string(text.substr(kPrefix.size()))};
  Poco::Base64Decoder decoder(encoded);
  std::string bytes;
  try {
    bytes.assign(std::istreambuf_iterator<char>(decoder), {});
  } catch (const Poco::Exception&) {
    throw ValueError{"is not valid base64 after whsec_"};
  }
  if (bytes.size() < 24 || bytes.size() > 64)
    throw ValueError{fmt::format("decodes to {} bytes; use 24 to 64 random bytes", bytes.size())};
}

// Headers the relay sets itself; a target may not override them.
const std::set<std::string> kReservedHeaders{"content-type",      "content-length",    "host",
                                             "transfer-encoding", "user-agent",        "webhook-id",
                                             "webhook-timestamp", "webhook-signature", "connection"};

using Apply = std::function<void(Settings&, TargetSettings*, std::string_view)>;

// What a key is besides its value, named in its row (kPlain: none of these).
enum KeyFlag : unsigned {
  kPlain = 0,
  kRequired = 1U << 0,  // no default: the file must set it
  kSecret = 1U << 1,    // masked wherever it is shown; optional for the operator's commands
  kRestart = 1U << 2,   // a reload (SIGHUP) keeps the running value: listeners, their limits,
                        // TLS, the console's sign-in, the journal, the worker pool
};
constexpr unsigned operator|(KeyFlag a, KeyFlag b) {
  return static_cast<unsigned>(a) | static_cast<unsigned>(b);
}

struct KeySpec {
  std::string_view section;  // "target" stands for every [target.NAME]
  std::string_view name;
  std::string_view type;
  std::string_view default_value;
  unsigned flags;  // KeyFlag
  std::string_view doc;
  Apply apply;

  [[nodiscard]] bool required() const { return (flags & kRequired) != 0; }
  [[nodiscard]] bool secret() const { return (flags & kSecret) != 0; }
  [[nodiscard]] bool restart() const { return (flags & kRestart) != 0; }
};

constexpr Millis kMs{1};
constexpr Millis kSecond{1000};
constexpr Millis kHour{3'600'000};
constexpr Millis kDay{86'400'000};

// Every key, once. Order is the order of `check-config` and of the sample file.
const std::vector<KeySpec>& keySpecs() {
  static const std::vector<KeySpec> specs{
      {"server", "listen", "HOST:PORT", "0.0.0.0:8080", kRestart, "the public listener Mews posts to",
       [](Settings& s, TargetSettings*, std::string_view v) { s.server.listen = listenAddress(v); }},
      {"server", "path", "path", "/webhooks/mews", kPlain,
       "the one path that accepts posts; General and Integration webhooks may share it",
       [](Settings& s, TargetSettings*, std::string_view v) {
         if (v.empty() || v[0] != '/' || v.find_first_of("?# ") != v.npos)
           throw ValueError{"must start with / and contain no '?', '#' or space"};
         s.server.path = v;
       }},
      {"server", "tokens", "list of secrets", "", kRequired | kSecret,
       "comma-separated shared secrets; a post must carry one as ?token= (several allow rotation)",
       [](Settings& s, TargetSettings*, std::string_view v) {
         auto tokens = text::splitList(v);
         if (tokens.empty()) throw ValueError{"at least one token is required"};
         for (const auto& token : tokens) {
           if (token.size() < 16) throw ValueError{"each token needs at least 16 characters"};
           if (token.find_first_of("&=#%+ ") != std::string::npos)
             throw ValueError{"a token may not contain & = # % + or space (it travels in a URL)"};
         }
         s.server.tokens = std::move(tokens);
       }},
      {"server", "max_body", "size 1KiB..64MiB", "1MiB", kPlain, "larger bodies get 413 before they are read",
       [](Settings& s, TargetSettings*, std::string_view v) { s.server.max_body = sizeIn(v, 1024, 64ULL << 20); }},
      {"server", "max_connections", "count 4..4096", "256", kRestart,
       "open connections served at once (one thread each); more wait in a short queue",
       [](Settings& s, TargetSettings*, std::string_view v) { s.server.max_connections = countIn(v, 4, 4096); }},
      {"server", "request_timeout", "duration 1s..120s", "10s", kRestart,
       "a request (head and body) must arrive within this; slower clients get 408 and are closed",
       [](Settings& s, TargetSettings*, std::string_view v) {
         s.server.request_timeout = durationIn(v, kSecond, 120 * kSecond);
       }},
      {"server", "min_body_rate", "size 0B..1GiB (per second)", "1KiB", kRestart,
       "after its first second a body must average this many bytes per second, or 408 (0B: off)",
       [](Settings& s, TargetSettings*, std::string_view v) { s.server.min_body_rate = sizeIn(v, 0, 1ULL << 30); }},
      {"server", "tls_certificate", "file (PEM)", "", kRestart,
       "serve HTTPS only, TLS 1.2 at least, with this certificate chain (set tls_private_key too)",
       [](Settings& s, TargetSettings*, std::string_view v) { s.server.tls_certificate = v; }},
      {"server", "tls_private_key", "file (PEM)", "", kRestart, "the private key of tls_certificate",
       [](Settings& s, TargetSettings*, std::string_view v) { s.server.tls_private_key = v; }},
      {"server", "resend_window", "duration 0s..1d", "1h", kRestart,
       "a byte-identical post for the same IntegrationId of a batch committed after the relay answered 503 is"
       " answered 202 with that batch's id within this (0s: off); nothing else is deduplicated",
       [](Settings& s, TargetSettings*, std::string_view v) {
         s.server.resend_window = durationIn(v, Millis{0}, kDay);
       }},
      {"admin", "listen", "HOST:PORT", "127.0.0.1:9090", kRestart,
       "health, metrics and the CLI's requests; keep it on loopback, never the public port",
       [](Settings& s, TargetSettings*, std::string_view v) { s.admin.listen = listenAddress(v); }},
      {"admin", "tls_certificate", "file (PEM)", "", kRestart,
       "serve the admin listener (console, health, metrics, the CLI's requests) over HTTPS only, with this chain",
       [](Settings& s, TargetSettings*, std::string_view v) { s.admin.tls_certificate = v; }},
      {"admin", "tls_private_key", "file (PEM)", "", kRestart, "the private key of the admin tls_certificate",
       [](Settings& s, TargetSettings*, std::string_view v) { s.admin.tls_private_key = v; }},
      {"admin", "unready_before_stop", "duration 0s..60s", "0s", kRestart,
       "at a stop, /readyz answers 503 this long before the listeners close, so that a load balancer takes the relay "
       "out first",
       [](Settings& s, TargetSettings*, std::string_view v) {
         s.admin.unready_before_stop = durationIn(v, Millis{0}, 60 * kSecond);
       }},
      {"console", "password_hash", "pbkdf2-sha256$...", "", kSecret | kRestart,
       "the console operator's password hash, from `mews-relay console-password`; enables the console",
       [](Settings& s, TargetSettings*, std::string_view v) {
         std::string error;
         if (!v.empty() && !auth::parsePasswordHash(v, error)) throw ValueError{error};
         s.console.password_hash = v;
       }},
      {"console", "password", "secret", "", kSecret | kRestart,
       "instead of password_hash: the password itself, from the environment (${system.env.NAME}); 12+ characters",
       [](Settings& s, TargetSettings*, std::string_view v) {
         if (!v.empty() && v.size() < auth::kMinPasswordLength)
           throw ValueError{fmt::format("needs at least {} characters", auth::kMinPasswordLength)};
         s.console.password = v;
       }},
      {"console", "session_lifetime", "duration 5m..30d", "8h", kRestart,
       "a console sign-in lasts this long (signing out ends it sooner)",
       [](Settings& s, TargetSettings*, std::string_view v) {
         s.console.session_lifetime = durationIn(v, 5 * 60 * kSecond, 30 * kDay);
       }},
      {"console", "host_names", "list of names", "", kRestart,
       "names the console may be reached by (Host header) besides loopback and the admin listen address",
       [](Settings& s, TargetSettings*, std::string_view v) {
         auto names = text::splitList(v);
         for (const auto& name : names)
           if (!isIdentifier(name)) throw ValueError{fmt::format("'{}' is not a host name", name)};
         s.console.host_names = std::move(names);
       }},
      {"journal", "path", "file", "data/relay.db", kRestart,
       "the SQLite journal (relative paths are from the working directory); or set url",
       [](Settings& s, TargetSettings*, std::string_view v) {
         if (v.empty()) throw ValueError{"must not be empty"};
         s.journal.path = v;
       }},
      {"journal", "url", "postgresql://USER@HOST:PORT/DB", "", kRestart,
       "a PostgreSQL database as the journal instead of path: a libpq connection string (URI or key=value,"
       " several hosts allowed); the password from PGPASSWORD or a passfile, never printed",
       [](Settings& s, TargetSettings*, std::string_view v) {
         if (!v.empty())
           if (const std::string problem = journal::conninfoProblem(std::string(v)); !problem.empty())
             throw ValueError{problem};
         s.journal.url = v;
       }},
      {"journal", "retention", "duration 1h..365d", "7d", kPlain,
       "delivered work older than this is pruned; dead letters stay until purged",
       [](Settings& s, TargetSettings*, std::string_view v) {
         s.journal.retention = durationIn(v, kHour, 365 * kDay);
       }},
      {"journal", "min_free", "size 0B..1024GiB", "1GiB", kRestart,
       "below this much free disk where the SQLite journal lives, answer 503 instead of writing",
       [](Settings& s, TargetSettings*, std::string_view v) { s.journal.min_free = sizeIn(v, 0, 1024ULL << 30); }},
      {"journal", "max_size", "size 0B..1024GiB", "0B", kRestart,
       "a cap on the SQLite journal file (0B: none); at the cap, answer 503 instead of writing",
       [](Settings& s, TargetSettings*, std::string_view v) {
         s.journal.max_size = sizeIn(v, 0, 1024ULL << 30);
         if (s.journal.max_size != 0 && s.journal.max_size < (1ULL << 20))
           throw ValueError{"must be 0B or at least 1MiB"};
       }},
      {"relay", "name", "name", "", kRestart,
       "this relay's name among several on one PostgreSQL journal (status, leases); empty: the host name",
       [](Settings& s, TargetSettings*, std::string_view v) {
         std::string name(v);
         if (name.empty()) {
           char host[256] = {};
           if (gethostname(host, sizeof host - 1) == 0) name = host;
         }
         if (!isIdentifier(name) || name.size() > 63)
           throw ValueError{fmt::format("'{}' is not a name (letters, digits, '.', '_', '-'; at most 63)", name)};
         s.relay.name = std::move(name);
       }},
      {"delivery", "workers", "count 1..256", "8", kRestart, "threads delivering to targets, shared by all targets",
       [](Settings& s, TargetSettings*, std::string_view v) { s.delivery.workers = countIn(v, 1, 256); }},
      {"log", "level", "debug | info | warn | error", "info", kPlain,
       "the least severe log lines written; serve --log-level overrides it",
       [](Settings& s, TargetSettings*, std::string_view v) {
         const auto level = log::parseLevel(v);
         if (!level) throw ValueError{fmt::format("'{}' is not debug, info, warn or error", v)};
         s.log.level = *level;
       }},
      {"target", "url", "http(s) URL", "", kRequired, "where deliveries are POSTed",
       [](Settings&, TargetSettings* t, std::string_view v) {
         try {
           const Poco::URI uri{std::string(v)};
           if (uri.getScheme() != "http" && uri.getScheme() != "https")
             throw ValueError{"must be an http:// or https:// URL"};
           if (uri.getHost().empty()) throw ValueError{"has no host"};
           if (!uri.getUserInfo().empty()) throw ValueError{"must not carry user:password; use header.Authorization"};
         } catch (const Poco::Exception& e) {
           throw ValueError{fmt::format("is not a URL ({})", maskUrl(e.displayText()))};
         }
         t->url = v;
       }},
      {"target", "mode", "batch|event", "batch", kPlain,
       "batch: the batch as received (filtered); event: one request per event",
       [](Settings&, TargetSettings* t, std::string_view v) {
         if (v == "batch")
           t->mode = DeliveryMode::Batch;
         else if (v == "event")
           t->mode = DeliveryMode::Event;
         else
           throw ValueError{fmt::format("'{}' is not batch or event", v)};
       }},
      {"target", "events", "* or list", "*", kPlain, "* or a comma-separated list of discriminators / actions",
       [](Settings&, TargetSettings* t, std::string_view v) {
         if (v == "*") {
           t->events.clear();
           return;
         }
         auto events = text::splitList(v);
         if (events.empty()) throw ValueError{"use * or list at least one event type"};
         for (const auto& event : events)
           if (!isIdentifier(event)) throw ValueError{fmt::format("'{}' is not an event type name", event)};
         t->events = std::move(events);
       }},
      {"target", "enterprises", "* or list of ids", "*", kPlain,
       "* or a comma-separated list of EnterpriseIds (properties) whose batches this target wants",
       [](Settings&, TargetSettings* t, std::string_view v) { t->enterprises = idFilter(v); }},
      {"target", "integrations", "* or list of ids", "*", kPlain,
       "* or a comma-separated list of IntegrationIds whose batches this target wants",
       [](Settings&, TargetSettings* t, std::string_view v) { t->integrations = idFilter(v); }},
      {"target", "timeout", "duration 100ms..5m", "10s", kPlain, "connect plus whole-request limit for one attempt",
       [](Settings&, TargetSettings* t, std::string_view v) { t->timeout = durationIn(v, 100 * kMs, 300 * kSecond); }},
      {"target", "max_attempts", "count 1..1000", "20", kPlain,
       "attempts (not counting those skipped by an open circuit) before the dead letters",
       [](Settings&, TargetSettings* t, std::string_view v) { t->max_attempts = countIn(v, 1, 1000); }},
      {"target", "backoff", "MIN..MAX durations", "1s..1h", kPlain,
       "exponential backoff with full jitter between these bounds",
       [](Settings&, TargetSettings* t, std::string_view v) {
         const auto dots = v.find("..");
         if (dots == v.npos) throw ValueError{"must be MIN..MAX, e.g. 1s..1h"};
         t->backoff_min = durationIn(v.substr(0, dots), 10 * kMs, kDay);
         t->backoff_max = durationIn(v.substr(dots + 2), 10 * kMs, kDay);
         if (t->backoff_min > t->backoff_max) throw ValueError{"MIN is larger than MAX"};
       }},
      {"target", "max_age", "duration 1m..365d", "3d", kPlain,
       "undelivered work older than this goes to the dead letters",
       [](Settings&, TargetSettings* t, std::string_view v) { t->max_age = durationIn(v, 60 * kSecond, 365 * kDay); }},
      {"target", "concurrency", "count 1..256", "4", kPlain, "deliveries in flight to this target at once",
       [](Settings&, TargetSettings* t, std::string_view v) { t->concurrency = countIn(v, 1, 256); }},
      {"target", "redirects", "same-origin | any | none", "same-origin", kPlain,
       "which 307/308 redirects are followed; any never downgrades https and drops header.* on another origin",
       [](Settings&, TargetSettings* t, std::string_view v) {
         if (v == "same-origin")
           t->redirects = RedirectPolicy::SameOrigin;
         else if (v == "any")
           t->redirects = RedirectPolicy::Any;
         else if (v == "none")
           t->redirects = RedirectPolicy::None;
         else
           throw ValueError{"must be same-origin, any or none"};
       }},
      {"target", "secret", "whsec_...", "", kSecret, "when set, deliveries are signed per the Standard Webhooks spec",
       [](Settings&, TargetSettings* t, std::string_view v) {
         if (!v.empty()) checkSigningSecret(v);
         t->secret = v;
       }},
  };
  return specs;
}

const KeySpec* findSpec(std::string_view section, std::string_view name) {
  for (const auto& spec : keySpecs())
    if (spec.section == section && spec.name == name) return &spec;
  return nullptr;
}

std::string maskedValue(const KeySpec& spec, std::string_view value) {
  if (spec.section == "journal" && spec.name == "url") return journal::maskConninfo(std::string(value));
  if (spec.name == "url") return maskUrl(value);  // a key in its query, a password in its user information
  if (!spec.secret()) return std::string(value);
  if (value.empty()) return "(not set)";
  if (spec.name == "tokens") return fmt::format("({} set, masked)", text::splitList(value).size());
  return "(set, masked)";
}

class Loader {
 public:
  Loader(Poco::Util::AbstractConfiguration& ini, std::string file, Secrets secrets)
      : ini_(ini), file_(std::move(file)), secrets_(secrets) {}

  Settings load() {
    settings_.source_file = file_;
    applyDefaults("server", nullptr);
    applyDefaults("admin", nullptr);
    applyDefaults("console", nullptr);
    applyDefaults("journal", nullptr);
    applyDefaults("relay", nullptr);
    applyDefaults("delivery", nullptr);
    applyDefaults("log", nullptr);

    Poco::Util::AbstractConfiguration::Keys sections;
    ini_.keys("", sections);
    for (const auto& section : sections) {
      const std::string name = text::lower(section);
      if (name == "target") {
        loadTargets(section);
      } else if (name == "server" || name == "admin" || name == "console" || name == "journal" || name == "delivery" ||
                 name == "relay" || name == "log") {
        loadSection(section, name, nullptr);
      } else if (name != "system" && name != "application") {
        fail(section, "", "unknown section");
      }
    }
    checkRequired("server", nullptr, "server");
    if (settings_.targets.empty())
      fail("target.NAME", "", "no target configured; add a [target.NAME] section with a url");
    checkAcrossSections();
    if (!errors_.empty()) throw ConfigError(fmt::format("{}", fmt::join(errors_, "\n")));
    return std::move(settings_);
  }

 private:
  // Section names, keys and values come from the file: an ESC in a target's
  // name must not reach the operator's terminal (check-config) raw.
  void fail(std::string_view section, std::string_view key, std::string_view reason) {
    if (key.empty())
      errors_.push_back(text::terminalLine(fmt::format("{}: [{}]: {}", file_, section, reason)));
    else
      errors_.push_back(text::terminalLine(fmt::format("{}: [{}] {}: {}", file_, section, key, reason)));
  }

  // `from_file`: the ${file:PATH} the value was read from; its content is never quoted back.
  void applyOne(const KeySpec& spec, std::string_view section_label, TargetSettings* target, std::string_view value,
                const std::string& from_file = {}) {
    try {
      spec.apply(settings_, target, value);
      given_[std::string(section_label) + "." + std::string(spec.name)] = std::string(value);
    } catch (const ValueError& e) {
      if (from_file.empty())
        fail(section_label, spec.name, e.reason);
      else
        fail(section_label, spec.name,
             fmt::format("the value in {} is refused: {}", from_file, withoutContent(e.reason, value)));
    }
  }

  void applyDefaults(std::string_view section, TargetSettings* target) {
    const std::string label = target ? "target." + target->name : std::string(section);
    for (const auto& spec : keySpecs())
      if (spec.section == section && !spec.required()) applyOne(spec, label, target, spec.default_value);
  }

  // A key's value, and the file it came from (${file:PATH}), if one.
  struct Value {
    std::string text;
    std::string file;
  };

  // Expands ${system.env.NAME} through the layered configuration and strips comments.
  std::optional<Value> valueOf(const std::string& full_key, std::string_view label, std::string_view key, bool secret) {
    std::string raw;
    try {
      raw = ini_.getString(full_key);
    } catch (const Poco::Exception& e) {
      fail(label, key, e.displayText());
      return std::nullopt;
    }
    std::string value(stripInlineComment(raw));
    if (const auto open = value.find("${"); open != std::string::npos) {
      const auto close = value.find('}', open);
      const std::string ref = value.substr(open + 2, close == value.npos ? value.npos : close - open - 2);
      constexpr std::string_view kFile = "file:";
      if (ref.rfind(kFile, 0) == 0 && open == 0 && close == value.size() - 1) {
        if (secret && secrets_ == Secrets::Optional) {
          given_[std::string(label) + "." + std::string(key)] = "";
          return std::nullopt;
        }
        const std::string path = ref.substr(kFile.size());
        if (auto content = fileValue(path, label, key)) return Value{std::move(*content), path};
        return std::nullopt;
      }
      constexpr std::string_view kEnv = "system.env.";
      if (ref.rfind(kEnv, 0) == 0 && secret && secrets_ == Secrets::Optional) {
        // An operator's command does not need the secrets the serving process
        // reads from its environment: the key counts as given, unset.
        given_[std::string(label) + "." + std::string(key)] = "";
        return std::nullopt;
      }
      if (ref.rfind(kEnv, 0) == 0)
        fail(label, key, fmt::format("environment variable {} is not set", ref.substr(kEnv.size())));
      else
        fail(label, key,
             fmt::format(
                 "cannot expand ${{{}}}; only ${{system.env.NAME}} and a whole value ${{file:PATH}} are supported",
                 ref));
      return std::nullopt;
    }
    return Value{std::move(value), {}};
  }

  // ${file:PATH}: the value is the file's content, one line (a trailing
  // newline dropped). Read at every load, so a reload picks up a rotated secret;
  // a regular file of at most kMaxFileValue (readSmallFile: it cannot block).
  std::optional<std::string> fileValue(const std::string& path, std::string_view label, std::string_view key) {
    FileText file = readSmallFile(path, kMaxFileValue);
    if (!file.error.empty()) {
      fail(label, key, file.error);
      return std::nullopt;
    }
    std::string content = std::move(file.text);
    while (!content.empty() && (content.back() == '\n' || content.back() == '\r')) content.pop_back();
    if (content.find_first_of("\r\n") != std::string::npos) {
      fail(label, key, fmt::format("{} must hold one line", path));
      return std::nullopt;
    }
    return std::string(trim(content));
  }

  void loadSection(const std::string& section, std::string_view canonical, TargetSettings* target) {
    const std::string label = target ? "target." + target->name : std::string(canonical);
    Poco::Util::AbstractConfiguration::Keys keys;
    ini_.keys(section, keys);
    for (const auto& key : keys) {
      const std::string full_key = section + "." + key;
      if (target && text::lower(key) == "header") {
        loadHeaders(full_key, label, *target);
        continue;
      }
      const KeySpec* spec = findSpec(canonical, text::lower(key));
      if (spec == nullptr) {
        fail(label, key, "unknown key");
        continue;
      }
      if (const auto value = valueOf(full_key, label, key, spec->secret())) {
        applyOne(*spec, label, target, value->text, value->file);
        written_.insert(label + "." + std::string(spec->name));
      }
    }
    checkRequired(canonical, target, label);
  }

  void loadHeaders(const std::string& prefix, std::string_view label, TargetSettings& target) {
    Poco::Util::AbstractConfiguration::Keys names;
    ini_.keys(prefix, names);
    for (const auto& name : names) {
      const std::string key = "header." + name;
      if (!isIdentifier(name)) {
        fail(label, key, "is not a valid header name");
        continue;
      }
      if (kReservedHeaders.count(text::lower(name)) != 0) {
        fail(label, key, "is set by the relay itself and cannot be overridden");
        continue;
      }
      const auto value = valueOf(prefix + "." + name, label, key, /*secret=*/true);
      if (!value) continue;
      if (value->text.find_first_of("\r\n") != std::string::npos) {
        fail(label, key, "must be one line");
        continue;
      }
      target.headers.emplace_back(name, value->text);
      given_[std::string(label) + "." + key] = value->text;
    }
  }

  void loadTargets(const std::string& section) {
    Poco::Util::AbstractConfiguration::Keys names;
    ini_.keys(section, names);
    for (const auto& name : names) {
      Poco::Util::AbstractConfiguration::Keys keys;
      ini_.keys(section + "." + name, keys);
      if (keys.empty()) {
        fail("target", name, "a target needs its own section, e.g. [target.pms] with url = ...");
        continue;
      }
      if (!isIdentifier(name)) {
        fail("target." + name, "", "a target name may hold letters, digits, '_', '-' and '.'");
        continue;
      }
      TargetSettings target;
      target.name = name;
      applyDefaults("target", &target);
      loadSection(section + "." + name, "target", &target);
      settings_.targets.push_back(std::move(target));
    }
  }

  void checkRequired(std::string_view section, TargetSettings* target, std::string_view label) {
    (void)target;
    for (const auto& spec : keySpecs())
      if (spec.section == section && spec.required() &&
          given_.count(std::string(label) + "." + std::string(spec.name)) == 0 && !hasError(label, spec.name))
        fail(label, spec.name, "is required");
  }

  bool hasError(std::string_view label, std::string_view key) const {
    const std::string needle = fmt::format("[{}] {}:", label, key);
    return std::any_of(errors_.begin(), errors_.end(),
                       [&](const std::string& e) { return e.find(needle) != std::string::npos; });
  }

  void checkAcrossSections() {
    if (!settings_.journal.url.empty() && written_.count("journal.path") != 0)
      fail("journal", "url", "set path (SQLite) or url (PostgreSQL), not both");
    if (!settings_.server.listen.empty() && !settings_.admin.listen.empty()) {
      const Poco::Net::SocketAddress pub{settings_.server.listen};
      const Poco::Net::SocketAddress admin{settings_.admin.listen};
      if (pub.port() != 0 && pub.port() == admin.port())
        fail("admin", "listen", "must not share the public listener's port");
    }
    checkTlsPair("server", settings_.server.tls_certificate, settings_.server.tls_private_key);
    checkTlsPair("admin", settings_.admin.tls_certificate, settings_.admin.tls_private_key);
    const ConsoleSettings& console = settings_.console;
    if (!console.password_hash.empty() && !console.password.empty())
      fail("console", "password", "set password_hash or password, not both");
    for (const auto& token : settings_.server.tokens)
      if (!console.password.empty() && console.password == token)
        fail("console", "password", "must not be a webhook token: the console has its own credential");
  }

  void checkTlsPair(std::string_view section, const std::string& certificate, const std::string& key) {
    if (certificate.empty() != key.empty()) {
      const bool certificate_missing = certificate.empty();
      fail(section, certificate_missing ? "tls_certificate" : "tls_private_key",
           fmt::format("must be set too when {} is set (both or neither)",
                       certificate_missing ? "tls_private_key" : "tls_certificate"));
    } else if (secrets_ == Secrets::Required) {
      // Only the serving process needs to read them (an operator's `status`
      // may run as a user who cannot read the key).
      for (const auto& [name, file] : {std::pair{"tls_certificate", certificate}, std::pair{"tls_private_key", key}})
        if (!file.empty())
          if (const FileText read = readSmallFile(file, kMaxConfigFile); !read.error.empty())
            fail(section, name, read.error);
    }
  }

  Poco::Util::AbstractConfiguration& ini_;
  std::string file_;
  Secrets secrets_;
  Settings settings_;
  std::map<std::string, std::string> given_;  // "label.key" -> effective raw value
  std::set<std::string> written_;             // "label.key" set in the file (not a default)
  std::vector<std::string> errors_;

 public:
  [[nodiscard]] const std::map<std::string, std::string>& given() const { return given_; }
};

void fillEffective(Settings& settings, const std::map<std::string, std::string>& given) {
  auto lookup = [&](const std::string& label, std::string_view key) {
    const auto it = given.find(label + "." + std::string(key));
    return it == given.end() ? std::string() : it->second;
  };
  for (const auto& spec : keySpecs()) {
    if (spec.section == "target") continue;
    const std::string section(spec.section);
    // A PostgreSQL journal has no file: its path and the file's disk limits do not apply.
    const bool file_only =
        section == "journal" && (spec.name == "path" || spec.name == "min_free" || spec.name == "max_size");
    const std::string value = file_only && !settings.journal.url.empty()
                                  ? std::string("(not used with url)")
                                  : maskedValue(spec, lookup(section, spec.name));
    settings.effective.push_back({section, std::string(spec.name), value, spec.restart()});
  }
  for (const auto& target : settings.targets) {
    const std::string label = "target." + target.name;
    for (const auto& spec : keySpecs())
      if (spec.section == "target")
        settings.effective.push_back({label, std::string(spec.name), maskedValue(spec, lookup(label, spec.name))});
    for (const auto& [name, value] : target.headers)
      settings.effective.push_back({label, "header." + name, "(set, masked)"});
  }
}

Settings loadFrom(Poco::AutoPtr<Poco::Util::IniFileConfiguration> ini, const std::string& name, Secrets secrets) {
  // ${system.env.NAME} resolves through the layered configuration; the ini layer
  // is the only one whose keys are enumerated and validated.
  Poco::AutoPtr<Poco::Util::LayeredConfiguration> layered(new Poco::Util::LayeredConfiguration);
  layered->add(ini, 0);
  layered->add(new Poco::Util::SystemConfiguration, 100);
  Loader loader(*layered, name, secrets);
  Settings settings = loader.load();
  fillEffective(settings, loader.given());
  return settings;
}

}  // namespace

bool TargetSettings::accepts(std::string_view discriminator) const {
  return events.empty() || std::find(events.begin(), events.end(), discriminator) != events.end();
}

bool restartOnly(std::string_view section, std::string_view key) {
  const auto& specs = keySpecs();
  return std::any_of(specs.begin(), specs.end(), [&](const KeySpec& spec) {
    return spec.section == section && spec.name == key && spec.restart();
  });
}

bool TargetSettings::acceptsProperty(const std::optional<std::string>& enterprise_id,
                                     const std::optional<std::string>& integration_id) const {
  auto listed = [](const std::vector<std::string>& filter, const std::optional<std::string>& id) {
    return filter.empty() || (id && std::find(filter.begin(), filter.end(), text::lower(*id)) != filter.end());
  };
  return listed(enterprises, enterprise_id) && listed(integrations, integration_id);
}

Settings parseSettings(const std::string& ini_text, const std::string& name, Secrets secrets) {
  std::istringstream stream(ini_text);
  Poco::AutoPtr<Poco::Util::IniFileConfiguration> ini;
  try {
    ini = new Poco::Util::IniFileConfiguration(stream);
  } catch (const Poco::Exception& e) {
    throw ConfigError(fmt::format("{}: {}", name, e.displayText()));
  }
  return loadFrom(ini, name, secrets);
}

Settings loadSettings(const std::string& path, Secrets secrets) {
  // The same reader as ${file:PATH}: a reload must not block on a FIFO here either.
  FileText file = readSmallFile(path, kMaxConfigFile, "config file ");
  if (!file.error.empty()) throw ConfigError(text::terminalLine(file.error));
  return parseSettings(file.text, path, secrets);
}

std::vector<KeyDoc> keyTable() {
  std::vector<KeyDoc> docs;
  for (const auto& spec : keySpecs())
    docs.push_back({spec.section == "target" ? "target.NAME" : std::string(spec.section), std::string(spec.name),
                    std::string(spec.type), std::string(spec.default_value), spec.required(), spec.restart(),
                    std::string(spec.doc)});
  // Read by loadHeaders(), not through the table: any name, one key each.
  docs.push_back({"target.NAME", "header.NAME", "text", "", false, false,
                  "an extra header sent with every delivery to this target (value masked by check-config)"});
  return docs;
}

}  // namespace mews::config
