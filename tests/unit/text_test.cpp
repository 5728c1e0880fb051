// lib/common: text.h (case folding, comma lists, hex digits, UTF-8, terminal escapes), url.h (maskUrl)
// and json.h (the one JSON writer).
#include <doctest/doctest.h>

#include "common/json.h"
#include "common/text.h"
#include "common/url.h"

using namespace mews;
using Strings = std::vector<std::string>;

TEST_CASE("lower folds ASCII letters only") {
  CHECK(text::lower("LocalHost:9090 [Target.PMS]") == "localhost:9090 [target.pms]");
  CHECK(text::lower("\xC3\x89") == "\xC3\x89");  // UTF-8 bytes pass unchanged
}

TEST_CASE("comma lists: split trims and drops empty items, join is its inverse") {
  CHECK(text::splitList("a, b,,c ") == Strings{"a", "b", "c"});
  CHECK(text::splitList("").empty());
  CHECK(text::splitList(" , ").empty());
  CHECK(text::joinList(Strings{"a", "b"}) == "a,b");
  CHECK(text::joinList(std::vector<std::int64_t>{1, 22, 333}) == "1,22,333");
  CHECK(text::joinList(Strings{}).empty());
  CHECK(text::splitList(text::joinList(Strings{"x", "y"})) == Strings{"x", "y"});
}

TEST_CASE("hexValue: both cases of every hex digit, -1 for every other byte") {
  const std::string_view digits = "0123456789abcdef";
  const std::string_view upper = "0123456789ABCDEF";
  for (int c = 0; c < 256; ++c) {
    const char byte = static_cast<char>(c);
    const auto lower_at = digits.find(byte);
    const auto upper_at = upper.find(byte);
    const int expected = lower_at != std::string_view::npos   ? static_cast<int>(lower_at)
                         : upper_at != std::string_view::npos ? static_cast<int>(upper_at)
                                                              : -1;
    CHECK_MESSAGE(text::hexValue(byte) == expected, "byte ", c);
  }
}

TEST_CASE("UTF-8: well-formed sequences decode, anything else is one bad byte") {
  auto decode = [](std::string_view text) {
    std::vector<long> out;  // -1 for a bad byte
    for (std::size_t pos = 0; pos < text.size();) {
      const auto c = text::nextCodePoint(text, pos);
      out.push_back(c ? static_cast<long>(*c) : -1);
    }
    return out;
  };
  CHECK(decode("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80") == std::vector<long>{'a', 0xe9, 0x20ac, 0x1f600});
  CHECK(decode("\xc0\xaf") == std::vector<long>{-1, -1});                  // overlong '/'
  CHECK(decode("\xed\xa0\x80") == std::vector<long>{-1, -1, -1});          // a surrogate
  CHECK(decode("\xf4\x90\x80\x80") == std::vector<long>{-1, -1, -1, -1});  // above U+10FFFF
  CHECK(decode("\xe2\x82") == std::vector<long>{-1, -1});                  // cut short
  CHECK(decode("\x80z") == std::vector<long>{-1, 'z'});                    // stray continuation
}

TEST_CASE("terminal text: controls, DEL, C1 and bad bytes become visible escapes") {
  CHECK(text::terminalLine("\x1b[2J\x1b]0;pwned\x07") == R"(\x1b[2J\x1b]0;pwned\x07)");
  CHECK(text::terminalLine("a\x7f"
                           "b") == R"(a\x7fb)");
  CHECK(text::terminalLine("\xc2\x9b"
                           "31m") == R"(\u009b31m)");
  CHECK(text::terminalLine("bad \xff\xfe") == R"(bad \xff\xfe)");
  CHECK(text::terminalLine("two\nlines\tand\r") == R"(two\nlines\tand\r)");
  CHECK(text::terminalBlock("two\nlines\tand\r\x1b") == "two\nlines\tand\\r\\x1b");
  // Printable text passes as it is, accents, emoji and backslashes included.
  const std::string plain = "Café 😀 {\"a\":\"b\\n\"} ~";
  CHECK(text::terminalLine(plain) == plain);
  CHECK(text::terminalBlock(plain) == plain);
}

TEST_CASE("maskUrl: query values and a user's password, nothing else") {
  CHECK(maskUrl("https://pms.example/hook?code=KEY&x=1") == "https://pms.example/hook?code=***&x=***");
  CHECK(maskUrl("https://user:pw@host/") == "https://user:***@host/");
  CHECK(maskUrl("https://user@host:8443/p") == "https://user@host:8443/p");
  CHECK(maskUrl("http://u:p:q@h/a?flag&k=v#frag?x=1") == "http://u:***@h/a?***&k=***#frag?x=1");
  CHECK(maskUrl("https://hooks.example/in?BareQuerySecret") == "https://hooks.example/in?***");
  CHECK(maskUrl("http://127.0.0.1:9000/mews") == "http://127.0.0.1:9000/mews");
  CHECK(maskUrl("http://h/p#only?fragment=1") == "http://h/p#only?fragment=1");
  CHECK(maskUrl("http://h/?") == "http://h/?");
  CHECK(maskUrl("http://h/?a=") == "http://h/?a=***");
  CHECK(maskUrl("/relative?k=v") == "/relative?k=***");
  // An '@' in the path is not user information.
  CHECK(maskUrl("http://h/a@b:c?k=v") == "http://h/a@b:c?k=***");
  // Text around a URL (an exception's message) keeps its words.
  CHECK(maskUrl("bad URI: http://x/y?code=KEY") == "bad URI: http://x/y?code=***");
}

TEST_CASE("json::quote: valid JSON whatever the input, and safe on a terminal") {
  CHECK(json::quote("a\"b\\c\nd") == R"("a\"b\\c\nd")");
  CHECK(json::quote("\x1b[2J\x07") == R"("\u001b[2J\u0007")");
  CHECK(json::quote("\x7f\xc2\x9b") == R"("\u007f\u009b")");
  CHECK(json::quote("bad \xff") == R"("bad \ufffd")");
  CHECK(json::quote("Café 😀") == "\"Café 😀\"");
}

TEST_CASE("json::Writer: commas, keys, nulls and nesting in order") {
  json::Writer out;
  out.beginObject()
      .field("id", std::int64_t{3})
      .field("name", "pms")
      .field("ok", true)
      .field("none", std::optional<std::string>())
      .field("some", std::optional<std::int64_t>(7))
      .field("ids", std::vector<std::int64_t>{1, 2})
      .key("empty")
      .beginArray()
      .endArray()
      .key("nested")
      .beginArray()
      .beginObject()
      .field("a", 1)
      .endObject()
      .beginObject()
      .endObject()
      .endArray()
      .key("raw")
      .raw(R"({"x":1})")
      .endObject();
  CHECK(
      out.text() ==
      R"({"id":3,"name":"pms","ok":true,"none":null,"some":7,"ids":[1,2],"empty":[],"nested":[{"a":1},{}],"raw":{"x":1}})");
  CHECK(json::Writer().beginArray().value("a").value(std::uint64_t{18446744073709551615ULL}).endArray().text() ==
        R"(["a",18446744073709551615])");
}
