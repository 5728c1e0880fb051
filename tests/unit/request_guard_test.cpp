// lib/admin: request_guard.h (Host and credential checks) and credential.h
// (the operator's credential file).
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <filesystem>

#include "admin/credential.h"
#include "admin/request_guard.h"
#include "support/test_support.h"

using namespace mews;
using admin::credentialMatches;
using admin::hostAllowed;

TEST_CASE("Host: a loopback listener answers to its loopback names on its port only") {
  CHECK(hostAllowed("127.0.0.1:9090", "127.0.0.1", 9090));
  CHECK(hostAllowed("localhost:9090", "127.0.0.1", 9090));
  CHECK(hostAllowed("LocalHost:9090", "127.0.0.1", 9090));
  CHECK(hostAllowed("[::1]:9090", "127.0.0.1", 9090));
  CHECK(hostAllowed("[::1]:9090", "::1", 9090));
  CHECK(hostAllowed("localhost:9090", "::1", 9090));
  CHECK_FALSE(hostAllowed("127.0.0.1:9091", "127.0.0.1", 9090));  // another port
  CHECK_FALSE(hostAllowed("127.0.0.1", "127.0.0.1", 9090));       // port 80 then
  CHECK(hostAllowed("127.0.0.1", "127.0.0.1", 80));
  // DNS rebinding: the attacker's name, resolved to 127.0.0.1.
  CHECK_FALSE(hostAllowed("rebind.evil.example:9090", "127.0.0.1", 9090));
  CHECK_FALSE(hostAllowed("localhost.evil.example:9090", "127.0.0.1", 9090));
  CHECK_FALSE(hostAllowed("10.0.0.5:9090", "127.0.0.1", 9090));
  // Malformed or missing.
  for (const char* bad : {"", ":9090", "127.0.0.1:", "127.0.0.1:x", "127.0.0.1:99999", "[::1:9090", "::1:9090",
                          "[::1]9090", "127.0.0.1:9090 "})
    CHECK_MESSAGE(!hostAllowed(bad, "127.0.0.1", 9090), bad);
}

TEST_CASE("Host: a listener on one address answers to that address; a wildcard one to any IP literal") {
  CHECK(hostAllowed("10.0.0.5:9090", "10.0.0.5", 9090));
  CHECK_FALSE(hostAllowed("localhost:9090", "10.0.0.5", 9090));
  CHECK_FALSE(hostAllowed("127.0.0.1:9090", "10.0.0.5", 9090));
  CHECK_FALSE(hostAllowed("relay.hotel.example:9090", "10.0.0.5", 9090));
  CHECK(hostAllowed("10.0.0.5:9090", "0.0.0.0", 9090));
  CHECK(hostAllowed("127.0.0.1:9090", "0.0.0.0", 9090));
  CHECK(hostAllowed("localhost:9090", "0.0.0.0", 9090));
  CHECK(hostAllowed("[fe80::1]:9090", "::", 9090));
  CHECK(hostAllowed("127.0.0.1:9090", "::", 9090));
  CHECK_FALSE(hostAllowed("relay.hotel.example:9090", "::", 9090));
  CHECK_FALSE(hostAllowed("relay.hotel.example:9090", "0.0.0.0", 9090));
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
  const std::string path = admin::credentialPath(journal);
  CHECK(path == journal + ".admin");
  test::writeFile(path, "stale");
  std::filesystem::permissions(path, std::filesystem::perms::all);
  std::string first;
  {
    const admin::CredentialFile credential(journal);
    first = credential.value();
    CHECK(first.size() == 64);
    CHECK(first.find_first_not_of("0123456789abcdef") == std::string::npos);
    struct stat info {};
    REQUIRE(::stat(path.c_str(), &info) == 0);
    CHECK((info.st_mode & 07777) == 0640);
    CHECK(admin::readCredential(journal) == first);
  }
  CHECK_FALSE(std::filesystem::exists(path));
  const admin::CredentialFile second(journal);
  CHECK(second.value() != first);

  test::TempDir other;
  try {
    (void)admin::readCredential(other.file("relay.db"));
    FAIL("read a credential that is not there");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()).find(other.file("relay.db.admin")) != std::string::npos);
    CHECK(std::string(e.what()).find("No such file") != std::string::npos);
  }
  test::writeFile(other.file("relay.db.admin"), "short\n");
  CHECK_THROWS_WITH_AS((void)admin::readCredential(other.file("relay.db")),
                       doctest::Contains("is not what a relay writes"), std::runtime_error);
}
