// lib/admin: request_guard.h (Host and credential checks; the Host rule as the
// admin API and as the console set it) and credential.h (the operator's
// credential file).
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <filesystem>

#include "auth/credential.h"
#include "auth/request_guard.h"
#include "config/config.h"
#include "console/console.h"
#include "support/test_support.h"

using namespace mews;
using auth::credentialMatches;
using auth::hostAllowed;

namespace {

// The admin API's rule (admin_server.cpp): the bound address and port.
auth::HostRule adminRule(const std::string& bound_host, std::uint16_t port = 9090) {
  auth::HostRule rule;
  rule.listen_host = bound_host;
  rule.port = port;
  return rule;
}

// The console's rule, as the console builds it from its settings.
auth::HostRule consoleRule(const std::string& admin_listen) {
  config::Settings settings;
  settings.admin.listen = admin_listen;
  settings.console.host_names = {"relay.hotel.lan"};
  return console::consoleHostRule(settings);
}

struct HostCase {
  const char* header;
  bool allowed;
};

void checkHosts(const auth::HostRule& rule, const std::vector<HostCase>& cases) {
  for (const auto& [header, allowed] : cases) {
    CAPTURE(header);
    CHECK(hostAllowed(header, rule) == allowed);
  }
}

// Refused by every rule: empty, malformed, or no host name.
const std::vector<HostCase> kMalformed = {
    {"", false},
    {":9090", false},
    {"127.0.0.1:", false},
    {"127.0.0.1:x", false},
    {"127.0.0.1:0", false},
    {"127.0.0.1:99999", false},
    {"[::1:9090", false},
    {"::1:9090", false},
    {"[::1]9090", false},
    {"127.0.0.1:9090 ", false},
    {"host:port", false},
    {"a b:80", false},
    {"[]:9090", false},
    // Refused since the console's and the admin API's rules are one (the
    // admin API took these three: an empty port after brackets, what follows a
    // space in an address, an IPv6 zone).
    {"[::1]:", false},
    {"127.0.0.1 x:9090", false},
    {"[fe80::1%eth0]:9090", false},
};

}  // namespace

TEST_CASE("Host, admin API: a loopback listener answers to its loopback names on its port only") {
  checkHosts(adminRule("127.0.0.1"), {
                                         {"127.0.0.1:9090", true},
                                         {"localhost:9090", true},
                                         {"LocalHost:9090", true},
                                         {"[::1]:9090", true},
                                         {"127.0.0.1:9091", false},  // another port
                                         {"127.0.0.1", false},       // port 80 then
                                         // DNS rebinding: the attacker's name, resolved to 127.0.0.1.
                                         {"rebind.evil.example:9090", false},
                                         {"localhost.evil.example:9090", false},
                                         {"10.0.0.5:9090", false},
                                     });
  checkHosts(adminRule("::1"), {{"[::1]:9090", true}, {"localhost:9090", true}, {"127.0.0.1:9090", true}});
  checkHosts(adminRule("127.0.0.1", 80), {{"127.0.0.1", true}, {"localhost", true}});
  checkHosts(adminRule("127.0.0.1"), kMalformed);
}

TEST_CASE("Host, admin API: a listener on one address answers to that address; a wildcard one to any IP literal") {
  checkHosts(adminRule("10.0.0.5"), {
                                        {"10.0.0.5:9090", true},
                                        {"localhost:9090", false},
                                        {"127.0.0.1:9090", false},
                                        {"relay.hotel.example:9090", false},
                                    });
  for (const char* wildcard : {"0.0.0.0", "::"}) {
    CAPTURE(wildcard);
    checkHosts(adminRule(wildcard), {
                                        {"10.0.0.5:9090", true},
                                        {"127.0.0.1:9090", true},
                                        {"localhost:9090", true},
                                        {"[fe80::1]:9090", true},
                                        {"10.0.0.5:9091", false},
                                        {"relay.hotel.example:9090", false},
                                    });
  }
}

TEST_CASE("Host, console: loopback names with any port, address literals, the listen host and host_names") {
  const auto rule = consoleRule("admin.box:9090");
  checkHosts(rule, {
                       {"127.0.0.1:9090", true},
                       {"127.0.0.1", true},
                       {"localhost:18000", true},
                       {"LOCALHOST", true},
                       {"[::1]:9090", true},
                       {"127.8.9.1:1", true},
                       {"10.0.0.5:9090", true},
                       {"relay.hotel.lan:9090", true},
                       {"Relay.Hotel.Lan", true},
                       {"admin.box:9090", true},
                       {"admin.box:1234", true},
                       {"attacker.example", false},
                       {"attacker.example:9090", false},
                       {"localhost.attacker.example", false},
                       {"127.0.0.1.nip.io:9090", false},
                       {"relay.hotel.lan.evil:9090", false},
                   });
  checkHosts(rule, kMalformed);
  // A listen address that names no host (port 0: the tests') adds no name.
  checkHosts(consoleRule("127.0.0.1:0"),
             {{"127.0.0.1:40000", true}, {"relay.hotel.lan", true}, {"admin.box:9090", false}});
}

TEST_CASE("credential: Bearer and exactly the credential") {
  const std::string credential(64, 'a');
  CHECK(credentialMatches("Bearer " + credential, credential));
  CHECK_FALSE(credentialMatches("Bearer " + credential + "a", credential));
  CHECK_FALSE(credentialMatches("Bearer " + credential.substr(1), credential));
  CHECK_FALSE(credentialMatches("Bearer " + std::string(63, 'a') + "b", credential));
  CHECK_FALSE(credentialMatches("bearer " + credential, credential));
  CHECK_FALSE(credentialMatches("Basic " + credential, credential));
  CHECK_FALSE(credentialMatches(credential, credential));
  CHECK_FALSE(credentialMatches("", credential));
  CHECK_FALSE(credentialMatches("Bearer ", ""));  // no credential configured: nobody
}

TEST_CASE("credential file: fresh, 0640, replaces a stale one, read back, removed") {
  test::TempDir dir;
  const std::string journal = dir.file("relay.db");
  const std::string path = auth::credentialPath(journal);
  CHECK(path == journal + ".admin");
  test::writeFile(path, "stale");
  std::filesystem::permissions(path, std::filesystem::perms::all);
  std::string first;
  {
    const auth::CredentialFile credential(journal);
    first = credential.value();
    CHECK(first.size() == 64);
    CHECK(first.find_first_not_of("0123456789abcdef") == std::string::npos);
    struct stat info {};
    REQUIRE(::stat(path.c_str(), &info) == 0);
    CHECK((info.st_mode & 07777) == 0640);
    CHECK(auth::readCredential(journal) == first);
  }
  CHECK_FALSE(std::filesystem::exists(path));
  const auth::CredentialFile second(journal);
  CHECK(second.value() != first);

  test::TempDir other;
  try {
    (void)auth::readCredential(other.file("relay.db"));
    FAIL("read a credential that is not there");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()).find(other.file("relay.db.admin")) != std::string::npos);
    CHECK(std::string(e.what()).find("No such file") != std::string::npos);
  }
  test::writeFile(other.file("relay.db.admin"), "short\n");
  CHECK_THROWS_WITH_AS((void)auth::readCredential(other.file("relay.db")),
                       doctest::Contains("is not what a relay writes"), std::runtime_error);
}
