#include "support/test_support.h"

#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>
#include <fmt/format.h>

#include <cstdlib>
#include <fstream>
#include <mutex>
#include <random>
#include <set>
#include <sstream>

#include "journal/postgres.h"

namespace mews::test {

TempDir::TempDir() {
  std::random_device random;
  path_ = std::filesystem::temp_directory_path() / fmt::format("mews-relay-test-{:x}", random());
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::string readFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void writeFile(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

std::string sample(const std::string& name) {
  return readFile(std::filesystem::path(MEWS_TEST_DATA_DIR) / name);
}

std::string generalBatch(std::size_t events, const std::string& discriminator) {
  std::string body =
      R"({"EnterpriseId":"851df8c8-90f2-4c4a-8e01-a4fc46b25178","IntegrationId":"c8bee838-7fb1-4f4e-8fac-ac87008b2f90","Events":[)";
  for (std::size_t i = 0; i < events; ++i)
    body += fmt::format(R"({}{{"Discriminator":"{}","Value":{{"Id":"00000000-0000-0000-0000-{:012}"}}}})",
                        i == 0 ? "" : ",", discriminator, i);
  return body + "]}";
}

bool onPostgres() {
  const char* backend = std::getenv("MEWS_TEST_JOURNAL");
  return backend != nullptr && std::string_view(backend) == "postgresql";
}

namespace {

// The test server's URL, or a failure that says how to get one: a PostgreSQL
// run without its server fails, it is never skipped.
std::string testServerUrl() {
  const char* url = std::getenv("MEWS_TEST_PG_URL");
  if (url == nullptr || *url == '\0')
    throw std::runtime_error(
        "MEWS_TEST_JOURNAL=postgresql needs MEWS_TEST_PG_URL (and PGPASSFILE): run the tests with scripts/test, "
        "which starts a throwaway server (scripts/pg-throwaway)");
  return url;
}

}  // namespace

journal::JournalLocation journalAt(const std::string& path) {
  if (!onPostgres()) return {path, {}};
  // One schema per path: t_<16 hex digits of the path's hash>.
  const std::string schema = fmt::format("t_{:016x}", std::hash<std::string>{}(path));
  static std::mutex mutex;
  static std::set<std::string> created;
  const std::string base = testServerUrl();
  {
    const std::lock_guard lock(mutex);
    if (created.insert(schema).second) {
      journal::PgConnection admin(base);
      admin.exec(fmt::format("DROP SCHEMA IF EXISTS {0} CASCADE; CREATE SCHEMA {0}", schema));
    }
  }
  const char separator = base.find('?') == std::string::npos ? '?' : '&';
  return {{}, fmt::format("{}{}options=-csearch_path%3D{}", base, separator, schema)};
}

std::string journalKey(const std::string& path) {
  const auto location = journalAt(path);
  return location.url.empty() ? "path = " + location.path : "url = " + location.url;
}

journal::WriterOptions writerAt(const std::string& path) {
  const auto location = journalAt(path);
  journal::WriterOptions options;
  options.path = location.path;
  options.url = location.url;
  return options;
}

std::string relayConfig(const std::string& journal_path, const std::string& extra) {
  return relayConfigWithTargets(journal_path, "[target.pms]\nurl = http://127.0.0.1:9/mews\n", extra);
}

std::string relayConfigWithTargets(const std::string& journal_path, const std::string& targets,
                                   const std::string& extra) {
  return fmt::format(
      "[server]\nlisten = 127.0.0.1:0\npath = /webhooks/mews\ntokens = {}\nmax_body = 64KiB\n"
      "[admin]\nlisten = 127.0.0.1:0\n"
      "[journal]\n{}\nmin_free = 0B\n"
      "{}{}",
      kToken, journalKey(journal_path), targets, extra);
}

std::string deliveryConfig(const std::string& journal_path, const std::string& targets, int workers,
                           const std::string& extra) {
  return relayConfigWithTargets(journal_path, targets, fmt::format("[delivery]\nworkers = {}\n{}", workers, extra));
}

std::string targetSection(const std::string& name, const std::string& url, const std::string& extra,
                          const std::string& timeout) {
  return fmt::format("[target.{}]\nurl = {}\nbackoff = 10ms..50ms\ntimeout = {}\n{}\n", name, url, timeout, extra);
}

namespace {

// Sends `request` with `body` on a new connection to 127.0.0.1:`port` and reads the whole answer.
HttpResult exchange(std::uint16_t port, Poco::Net::HTTPRequest& request, const std::string& body) {
  Poco::Net::HTTPClientSession session("127.0.0.1", port);
  session.setTimeout(Poco::Timespan(30, 0));
  session.sendRequest(request) << body;
  Poco::Net::HTTPResponse response;
  std::istream& in = session.receiveResponse(response);
  HttpResult result;
  result.status = static_cast<int>(response.getStatus());
  Poco::StreamCopier::copyToString(in, result.body);
  for (const auto& [name, value] : response) result.headers[name] = value;
  return result;
}

}  // namespace

HttpResult httpRequest(std::uint16_t port, const std::string& method, const std::string& uri, const std::string& body,
                       bool chunked) {
  Poco::Net::HTTPRequest request(method, uri, Poco::Net::HTTPMessage::HTTP_1_1);
  request.setContentType("application/json");
  if (chunked)
    request.setChunkedTransferEncoding(true);
  else if (!body.empty() || method == "POST")
    request.setContentLength64(static_cast<Poco::Int64>(body.size()));
  return exchange(port, request, body);
}

HttpResult adminRequest(std::uint16_t port, const std::string& method, const std::string& uri,
                        const std::map<std::string, std::string>& headers, const std::string& body) {
  Poco::Net::HTTPRequest request(method, uri, Poco::Net::HTTPMessage::HTTP_1_1);
  for (const auto& [name, value] : headers) request.set(name, value);
  if (!body.empty() || method == "POST") request.setContentLength64(static_cast<Poco::Int64>(body.size()));
  return exchange(port, request, body);
}

}  // namespace mews::test

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <thread>

#include "config/config.h"
#include "journal/journal.h"
#include "relay/relay.h"

namespace mews::test {

bool waitUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

std::int64_t queryInt(const std::string& journal_path, const std::string& sql) {
  journal::Journal journal(journalAt(journal_path), {0, true});
  return journal.db().queryInt(sql);
}

std::string queryText(const std::string& journal_path, const std::string& sql) {
  journal::Journal journal(journalAt(journal_path), {0, true});
  journal::Statement statement(journal.db(), sql);
  return statement.step() ? statement.columnText(0) : std::string("<no row>");
}

std::string referenceSignature(const std::string& secret_base64, const std::string& id, const std::string& timestamp,
                               const std::string& body) {
  std::string key(secret_base64.size(), '\0');
  const int decoded = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(key.data()),
                                      reinterpret_cast<const unsigned char*>(secret_base64.data()),
                                      static_cast<int>(secret_base64.size()));
  std::size_t padding = 0;
  for (auto it = secret_base64.rbegin(); it != secret_base64.rend() && *it == '='; ++it) ++padding;
  key.resize(static_cast<std::size_t>(decoded) - padding);
  const std::string content = id + "." + timestamp + "." + body;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_size = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(content.data()),
       content.size(), mac, &mac_size);
  std::string encoded(4 * ((mac_size + 2) / 3) + 1, '\0');
  const int length = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(encoded.data()), mac, static_cast<int>(mac_size));
  encoded.resize(static_cast<std::size_t>(length));
  return "v1," + encoded;
}

}  // namespace mews::test

namespace mews::test {

std::unique_ptr<relay::Relay> startRelay(const std::string& ini) {
  return startRelay(ini, SystemClock::instance());
}

std::unique_ptr<relay::Relay> startRelay(const std::string& ini, const Clock& clock) {
  auto relay = std::make_unique<relay::Relay>(config::parseSettings(ini, "test.ini"), clock);
  relay->start();
  return relay;
}

std::uint16_t adminPort(const relay::Relay& relay) {
  const std::string address = relay.adminAddress();
  return static_cast<std::uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)));
}

}  // namespace mews::test
