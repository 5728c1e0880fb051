// Helpers shared by the tests: temporary directories, sample bodies, config
// text, and a plain HTTP client over loopback (Poco's, no mocks).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "journal/location.h"
#include "journal/writer.h"

namespace mews::test {

// A fresh directory under the system temp dir, removed with the object.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }
  [[nodiscard]] std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

std::string readFile(const std::filesystem::path& path);
void writeFile(const std::filesystem::path& path, const std::string& text);
std::string sample(const std::string& name);  // tests/data/NAME

// A General webhook body with `events` events, deterministic ids.
std::string generalBatch(std::size_t events, const std::string& discriminator = "ReservationUpdated");

inline constexpr const char* kToken = "test-token-0123456789abcdef";
// The ingest path with that token.
inline const std::string kIngestUri = std::string("/webhooks/mews?token=") + kToken;

// The journal backend under test. The same test binaries run on both: ctest
// runs each journal, delivery, CLI and operations suite once as is (SQLite)
// and once as `<name>.postgresql` with MEWS_TEST_JOURNAL=postgresql, against
// the server scripts/test started (MEWS_TEST_PG_URL, PGPASSFILE). Cases that
// test what only a SQLite file has are in the doctest test suite "sqlite",
// which the PostgreSQL runs exclude by name.
bool onPostgres();
// The test's journal "at `path`" (a file under the test's TempDir): that file,
// or on PostgreSQL a schema of the test database named after the path,
// created when first asked for: so each test case has its own fresh journal.
journal::JournalLocation journalAt(const std::string& path);
// The [journal] line for it: `path = ...` or `url = ...`.
std::string journalKey(const std::string& path);
// Writer options for it (the rest at their defaults).
journal::WriterOptions writerAt(const std::string& path);

// INI text for a relay on 127.0.0.1:0 with its journal at `journal_path`; `extra` is appended.
std::string relayConfig(const std::string& journal_path, const std::string& extra = "");
// The same relay with `targets` (INI text of [target.NAME] sections) instead of
// relayConfig's one unreachable target; `extra` is appended.
std::string relayConfigWithTargets(const std::string& journal_path, const std::string& targets,
                                   const std::string& extra = "");
// relayConfigWithTargets with `workers` delivery threads; `extra` is appended.
std::string deliveryConfig(const std::string& journal_path, const std::string& targets, int workers = 4,
                           const std::string& extra = "");
// A [target.NAME] section for a sink on loopback: retries 10 ms to 50 ms apart,
// `timeout` per attempt, then `extra` (INI lines).
std::string targetSection(const std::string& name, const std::string& url, const std::string& extra = "",
                          const std::string& timeout = "2s");

struct HttpResult {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;
};

// One request on a new connection. `chunked` sends the body with
// Transfer-Encoding: chunked instead of a Content-Length.
HttpResult httpRequest(std::uint16_t port, const std::string& method, const std::string& uri,
                       const std::string& body = "", bool chunked = false);

// One request with exactly these headers (Host included: Poco adds none when it
// is given); `headers` may name Host, Origin, Authorization.
HttpResult adminRequest(std::uint16_t port, const std::string& method, const std::string& uri,
                        const std::map<std::string, std::string>& headers, const std::string& body = "");

}  // namespace mews::test

namespace mews::test {

// Polls `condition` every 20 ms until it holds or `timeout` passes.
bool waitUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

// One integer from the journal through a read-only connection (e.g. a count).
std::int64_t queryInt(const std::string& journal_path, const std::string& sql);
std::string queryText(const std::string& journal_path, const std::string& sql);

// Standard Webhooks signature computed with OpenSSL directly: an implementation
// independent of the relay's (which uses Poco).
std::string referenceSignature(const std::string& secret_base64, const std::string& id, const std::string& timestamp,
                               const std::string& body);

}  // namespace mews::test

namespace mews {
class Clock;
}
namespace mews::relay {
class Relay;
}

namespace mews::test {

// The serving process, in this process, from INI text; started.
std::unique_ptr<relay::Relay> startRelay(const std::string& ini);
// The same on `clock` (a ManualClock: the test moves time), which outlives it.
std::unique_ptr<relay::Relay> startRelay(const std::string& ini, const Clock& clock);
// The port its admin listener bound.
std::uint16_t adminPort(const relay::Relay& relay);

}  // namespace mews::test
