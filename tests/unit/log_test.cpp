// Log lines are read on terminals (journalctl, tail -f): a value from outside
// (a request path or method, an error a target caused) must not carry a byte
// that drives the terminal, in its 7-bit or 8-bit form, nor forge a field.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "common/log.h"
#include "support/test_support.h"

using namespace mews;

namespace {

// What one log::warn call writes to stderr.
std::string logged(const std::string& value) {
  test::TempDir dir;
  const std::string path = dir.file("stderr");
  std::fflush(stderr);
  const int saved = ::dup(STDERR_FILENO);
  REQUIRE(saved >= 0);
  std::FILE* file = std::fopen(path.c_str(), "w");
  REQUIRE(file != nullptr);
  ::dup2(::fileno(file), STDERR_FILENO);
  log::warn("test", "line", {{"value", value}});
  std::fflush(stderr);
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  std::fclose(file);
  return test::readFile(path);
}

std::string valueField(const std::string& line) {
  const auto at = line.find(" value=");
  REQUIRE(at != std::string::npos);
  return line.substr(at + 7, line.size() - at - 8);  // without the newline
}

}  // namespace

TEST_CASE("C0 controls, DEL, C1 controls and bytes that are not UTF-8 are visible escapes") {
  CHECK(valueField(logged("a\x1b[31mb")) == R"("a\x1b[31mb")");
  CHECK(valueField(logged("\x7f")) == R"("\x7f")");
  // U+009B (CSI) and U+0085 (NEL) encoded in UTF-8.
  CHECK(valueField(logged("/x\xc2\x9b"
                          "2J\xc2\x85")) == R"("/x\u009b2J\u0085")");
  CHECK(valueField(logged("\xff\xc0\xaf\xed\xa0\x80")) == R"("\xff\xc0\xaf\xed\xa0\x80")");
  CHECK(valueField(logged("a\"b\\c\nd")) == R"("a\"b\\c\nd")");
}

TEST_CASE("text in UTF-8 stays readable, and plain values unquoted") {
  CHECK(valueField(logged("caf\xc3\xa9 \xe2\x82\xac")) == "\"caf\xc3\xa9 \xe2\x82\xac\"");
  CHECK(valueField(logged("/webhooks/mews")) == "/webhooks/mews");
}
