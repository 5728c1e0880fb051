// The relay's configuration: one INI file read through Poco's configuration
// classes, every key declared once in the table in config.cpp (section, name,
// type and bounds, default, one-line doc). That table drives validation, the
// defaults, `check-config` output and the documentation of the sample file.
//
// Failure: loadSettings() throws ConfigError listing every problem found, each
// as "FILE: [section] key: reason". Nothing starts on a bad config.
// Secrets (tokens, signing secrets, header values) are kept in Settings for
// use, but effectiveSettings() only ever shows them masked.
// Files: the config file (at most 4MiB) and each ${file:PATH} value (at most
// 64KiB) must be regular files; they are opened without blocking and refused
// unread when larger, since a reload reads them while the relay serves (a FIFO
// would hang it; `serve` reloads on a thread of its own, so SIGTERM is handled
// even then, app/cmd_serve.cpp). An error names the
// key and the path, never a file's content; every error line is escaped for a
// terminal (a section name from the file may hold an ESC).
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "common/log.h"
#include "common/units.h"
#include "journal/location.h"

namespace mews::config {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ServerSettings {
  std::string listen;
  std::string path;
  std::vector<std::string> tokens;
  std::uint64_t max_body = 0;
  int max_connections = 0;
  Millis request_timeout{};         // head and body must arrive within this
  std::uint64_t min_body_rate = 0;  // bytes/s a body must average after its first second; 0: off
  std::string tls_certificate;      // PEM; set together with tls_private_key, or neither
  std::string tls_private_key;
  Millis resend_window{};  // a byte-identical resend of a batch committed after a 503 is recognised within this; 0: off
};

struct AdminSettings {
  std::string listen;
  std::string tls_certificate;  // PEM; set together with tls_private_key, or neither
  std::string tls_private_key;
  Millis unready_before_stop{};  // /readyz says "stopping" this long before the listeners close
};

// The operator console on the admin listener (lib/console). Enabled when a
// credential is set: password_hash (from `mews-relay console-password`) or
// password (a secret from the environment); never both.
struct ConsoleSettings {
  std::string password_hash;
  std::string password;
  Millis session_lifetime{};
  std::vector<std::string> host_names;  // Host names accepted besides loopback and the listen address

  [[nodiscard]] bool enabled() const { return !password_hash.empty() || !password.empty(); }
};

struct JournalSettings {
  std::string path;  // the SQLite journal, unless url is set
  std::string url;   // a PostgreSQL journal: libpq's connection string
  [[nodiscard]] journal::JournalLocation location() const { return {path, url}; }
  Millis retention{};
  std::uint64_t min_free = 0;
  std::uint64_t max_size = 0;  // 0: no cap beyond the disk
};

struct RelaySettings {
  std::string name;  // among several relays on one PostgreSQL journal (relay/cluster.h)
};

struct DeliverySettings {
  int workers = 0;
};

struct LogSettings {
  log::Level level = log::Level::Info;  // `serve --log-level` overrides it
};

enum class DeliveryMode { Batch, Event };

// Which 307/308 redirects a target's deliveries follow.
enum class RedirectPolicy {
  SameOrigin,  // same scheme, host and port only (the default)
  Any,         // any http(s) URL, never https -> http; configured headers are not sent to another origin
  None,        // none: a redirect is a dead letter
};

struct TargetSettings {
  std::string name;
  std::string url;
  DeliveryMode mode = DeliveryMode::Batch;
  std::vector<std::string> events;        // empty: every event ("*")
  std::vector<std::string> enterprises;   // EnterpriseIds, lowercased; empty: every property ("*")
  std::vector<std::string> integrations;  // IntegrationIds, lowercased; empty: every integration ("*")
  Millis timeout{};
  int max_attempts = 0;
  Millis backoff_min{};
  Millis backoff_max{};
  Millis max_age{};
  int concurrency = 0;
  std::string secret;
  std::vector<std::pair<std::string, std::string>> headers;
  RedirectPolicy redirects = RedirectPolicy::SameOrigin;

  // A reload compares a target's old and new settings.
  bool operator==(const TargetSettings&) const = default;

  [[nodiscard]] bool acceptsAllEvents() const { return events.empty(); }
  // True when the target's filter lets `discriminator` (or an Action) through.
  [[nodiscard]] bool accepts(std::string_view discriminator) const;
  // True when the target wants batches of this property and integration. A
  // filtered target never gets a batch that does not name the id it filters on.
  [[nodiscard]] bool acceptsProperty(const std::optional<std::string>& enterprise_id,
                                     const std::optional<std::string>& integration_id) const;
};

// One line of `check-config`: the effective value, secrets already masked.
struct EffectiveSetting {
  std::string section;
  std::string key;
  std::string value;
  bool restart_only = false;  // a reload (SIGHUP) cannot change it; see restartOnly()
};

struct Settings {
  std::string source_file;
  ServerSettings server;
  AdminSettings admin;
  ConsoleSettings console;
  JournalSettings journal;
  RelaySettings relay;
  DeliverySettings delivery;
  LogSettings log;
  std::vector<TargetSettings> targets;
  std::vector<EffectiveSetting> effective;
};

// Required: `serve` and `check-config`, which need every secret. Optional: the
// operator's commands (status, dlq, replay, migrate), which use none, may run
// without the environment variables that hold them.
enum class Secrets { Required, Optional };

// Keys a running relay cannot change on reload (listeners, their limits, TLS,
// the console's sign-in, the journal, the worker pool): a changed value waits
// for a restart. Marked in the key table's rows (kRestart in config.cpp).
// Everything else, [target.*] included, applies at the reload.
[[nodiscard]] bool restartOnly(std::string_view section, std::string_view key);

// Reads and validates `path`. Throws ConfigError.
Settings loadSettings(const std::string& path, Secrets secrets = Secrets::Required);

// The same, from INI text (tests, and the fuzzer); `name` stands for the file in messages.
Settings parseSettings(const std::string& ini_text, const std::string& name, Secrets secrets = Secrets::Required);

// One entry of the key table, as `check-config --keys` prints it; a test checks
// that every entry is documented in examples/mews-relay.ini and the README.
struct KeyDoc {
  std::string section;  // "target.NAME" for the keys of every [target.NAME]
  std::string name;
  std::string type;
  std::string default_value;  // empty: none (see required)
  bool required = false;
  bool restart = false;  // a reload keeps the running value (restartOnly())
  std::string doc;
};
std::vector<KeyDoc> keyTable();

}  // namespace mews::config
