#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <vector>

#include "common/json_scan.h"

using namespace mews;

namespace {

std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (const int v : values) out += static_cast<char>(v);
  return out;
}

// A UTF-8 reader written the other way round from the scanner's (decode the
// code point, then judge it): whether `text` is a sequence of valid UTF-8
// characters none of which needs escaping in a JSON string.
bool referenceStringContent(const std::string& text) {
  for (std::size_t i = 0; i < text.size();) {
    const auto lead = static_cast<unsigned char>(text[i]);
    std::size_t length = 0;
    unsigned code_point = 0;
    if (lead < 0x80) {
      if (lead < 0x20 || lead == '"' || lead == '\\') return false;
      ++i;
      continue;
    }
    if ((lead & 0xE0) == 0xC0) {
      length = 2;
      code_point = lead & 0x1F;
    } else if ((lead & 0xF0) == 0xE0) {
      length = 3;
      code_point = lead & 0x0F;
    } else if ((lead & 0xF8) == 0xF0) {
      length = 4;
      code_point = lead & 0x07;
    } else {
      return false;
    }
    if (i + length > text.size()) return false;
    for (std::size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) return false;
      code_point = (code_point << 6) | (next & 0x3F);
    }
    const unsigned smallest[] = {0, 0, 0x80, 0x800, 0x10000};
    if (code_point < smallest[length] || code_point > 0x10FFFF || (code_point >= 0xD800 && code_point <= 0xDFFF))
      return false;
    i += length;
  }
  return true;
}

}  // namespace

TEST_CASE("walking an object: names as written, values located by offset") {
  const std::string text = R"( {"a" : [1, {"b":"x"}] ,"c\u0064":true, "e":"\"q\""} )";
  json::Scanner scanner(text);
  REQUIRE(scanner.begin());
  REQUIRE(scanner.enterObject());
  std::vector<std::string> names;
  std::vector<std::string> values;
  std::string_view name;
  while (scanner.nextMember(name)) {
    json::Kind kind{};
    REQUIRE(scanner.peek(kind));
    const std::size_t start = scanner.offset();
    REQUIRE(scanner.skipValue());
    names.emplace_back(name);
    values.push_back(text.substr(start, scanner.offset() - start));
  }
  CHECK_FALSE(scanner.failed());
  CHECK(scanner.end());
  CHECK(names == std::vector<std::string>{"a", R"(c\u0064)", "e"});
  CHECK(values == std::vector<std::string>{R"([1, {"b":"x"}])", "true", R"("\"q\"")"});
  CHECK(json::equals(names[1], "cd"));
}

TEST_CASE("any JSON value is a text; the scanner does not insist on objects") {
  for (const char* text : {"1", "-0.0e-0", "\"x\"", "[]", "null", " true ", "false", "[{}]", "\"\\ud800\""}) {
    CAPTURE(text);
    CHECK(json::isValid(text));
  }
  for (const char* text : {"", " ", "tru", "[1,]", "\"", "{\"a\"}", "1 2", "[1 2]", "{\"a\":1,,}", "-"}) {
    CAPTURE(text);
    CHECK_FALSE(json::isValid(text));
  }
}

TEST_CASE("depth: kMaxDepth nested containers are accepted, one more is a Depth fault") {
  const auto arrays = [](std::size_t n) { return std::string(n, '[') + std::string(n, ']'); };
  CHECK(json::isValid(arrays(json::kMaxDepth)));
  const std::string too_deep = arrays(json::kMaxDepth + 1);
  json::Scanner scanner(too_deep);
  CHECK_FALSE((scanner.begin() && scanner.skipValue() && scanner.end()));
  CHECK(scanner.fault() == json::Fault::Depth);
  CHECK(scanner.faultOffset() == json::kMaxDepth);
  // Depth counts nesting, not containers: many siblings are fine.
  std::string wide = "[";
  for (int i = 0; i < 1000; ++i) wide += std::string(i ? "," : "") + "[[]]";
  CHECK(json::isValid(wide + "]"));
}

TEST_CASE("faults say what, where and what was found, on one line") {
  struct Case {
    std::string text;
    json::Fault fault;
    std::string reason;
  };
  for (const Case& c : std::initializer_list<Case>{
           {"", json::Fault::Empty, "nothing but white space"},
           {"{\"a\":1,}", json::Fault::Syntax, "expected a member name at byte 7, found '}'"},
           {"{\"a\" 1}", json::Fault::Syntax, "expected ':' at byte 5, found '1'"},
           {"{\"a\":1", json::Fault::Syntax, "expected ',' or '}' at byte 6, found the end"},
           {"{", json::Fault::Syntax, "expected a member name or '}' at byte 1, found the end"},
           {"[1 2]", json::Fault::Syntax, "expected ',' or ']' at byte 3, found '2'"},
           {"{} x", json::Fault::Syntax, "more after the JSON value at byte 3, found 'x'"},
           {"[01]", json::Fault::Syntax, "expected ',' or ']' at byte 2, found '1'"},
           {"[1.]", json::Fault::Syntax, "a number needs a digit after '.' at byte 3, found ']'"},
           {"[1e+]", json::Fault::Syntax, "a number needs a digit in its exponent at byte 4, found ']'"},
           {"[-]", json::Fault::Syntax, "a number needs a digit at byte 2, found ']'"},
           {"[\"\\x\"]", json::Fault::Syntax, "invalid escape at byte 2, found '\\'"},
           {"[\"\\u12\"]", json::Fault::Syntax, "\\u needs four hex digits at byte 2, found '\\'"},
           {"[\"abc", json::Fault::Syntax, "a string does not end at byte 1, found '\"'"},
           {"[\"a\tb\"]", json::Fault::ControlCharacter, "control character U+0009 unescaped in a string at byte 3"},
           {"[\"ab\xed\xa0\x80\"]", json::Fault::Utf8, "invalid UTF-8 at byte 4"},
           {"\xc2\xa0[]", json::Fault::Syntax, "expected a value at byte 0, found 0xC2"},
       }) {
    CAPTURE(c.text);
    json::Scanner scanner(c.text);
    CHECK_FALSE((scanner.begin() && scanner.skipValue() && scanner.end()));
    CHECK(scanner.fault() == c.fault);
    CHECK(scanner.reason() == c.reason);
  }
}

TEST_CASE("escapes decode to UTF-8; lone surrogates to U+FFFD") {
  struct Case {
    std::string raw;
    std::string decoded;
  };
  for (const Case& c : std::initializer_list<Case>{
           {R"(Customer\u0041dded)", "CustomerAdded"},
           {R"(\"\\\/\b\f\n\r\t)", "\"\\/\b\f\n\r\t"},
           {R"(\u0000)", std::string(1, '\0')},
           {R"(\u00e9\u00E9)", "\xc3\xa9\xc3\xa9"},
           {R"(\u07ff\u0800\uffff)", "\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf"},
           {R"(\ud83d\ude00)", "\xf0\x9f\x98\x80"},
           {R"(\ud800\udc00)", "\xf0\x90\x80\x80"},
           {R"(\udbff\udfff)", "\xf4\x8f\xbf\xbf"},
           {R"(\ud800)", "\xef\xbf\xbd"},
           {R"(\udfff)", "\xef\xbf\xbd"},
           {R"(\ud800\ud800)", "\xef\xbf\xbd\xef\xbf\xbd"},
           {R"(\udc00\ud800)", "\xef\xbf\xbd\xef\xbf\xbd"},
           {R"(\ud800\u0041)",
            "\xef\xbf\xbd"
            "A"},
           {R"(\ud800\n)", "\xef\xbf\xbd\n"},
           {R"(x\ud800)", "x\xef\xbf\xbd"},
           {"Zo\xc3\xab \xf0\x9f\x98\x80", "Zo\xc3\xab \xf0\x9f\x98\x80"},
           {"", ""},
       }) {
    CAPTURE(c.raw);
    CHECK(json::isValid("\"" + c.raw + "\""));
    CHECK(json::decode(c.raw) == c.decoded);
    CHECK(json::equals(c.raw, c.decoded));
    CHECK_FALSE(json::equals(c.raw, c.decoded + "x"));
    if (!c.decoded.empty()) CHECK_FALSE(json::equals(c.raw, c.decoded.substr(1)));
  }
  CHECK(json::equals(R"(Even\u0074s)", "Events"));
  CHECK_FALSE(json::equals(R"(Even\u0074s)", "Event"));
  CHECK_FALSE(json::equals("Events", "Event"));
}

TEST_CASE("strings: every byte class at every position of the 8-byte fast path") {
  const std::vector<std::pair<std::string, bool>> specials = {
      {"\x1f", false},         {"\t", false},      {std::string(1, '\0'), false},
      {"\x7f", true},          {" ", true},        {"\\n", true},
      {"\\u0041", true},       {"\xc3\xa9", true}, {"\xff", false},
      {"\xed\xa0\x80", false}, {"\\\"", true},     {"\xe2\x82", false}};
  for (std::size_t length = 0; length < 20; ++length) {
    for (std::size_t at = 0; at <= length; ++at) {
      for (const auto& [special, valid] : specials) {
        const std::string content = std::string(at, 'a') + special + std::string(length - at, 'b');
        CAPTURE(content);
        CHECK(json::isValid("[\"" + content + "\"]") == valid);
      }
    }
  }
}

TEST_CASE("UTF-8: the scanner agrees with a reference decoder on every 2- and 3-byte prefix") {
  std::size_t checked = 0;
  for (int b0 = 0x80; b0 <= 0xFF; ++b0) {
    for (int b1 = 0x00; b1 <= 0xFF; ++b1) {
      for (const int b2 : {0x80, 0x9F, 0xA0, 0xBF, 0xC0, 0x41}) {
        for (const int b3 : {0x80, 0xBF, 0x41}) {
          const std::string content = bytes({b0, b1, b2, b3});
          const bool expected = referenceStringContent(content);
          if (json::isValid("\"" + content + "\"") != expected) {
            CAPTURE(b0);
            CAPTURE(b1);
            CAPTURE(b2);
            CAPTURE(b3);
            CHECK(json::isValid("\"" + content + "\"") == expected);
          }
          ++checked;
        }
      }
    }
  }
  CHECK(checked == 128 * 256 * 6 * 3);
}
