#include <doctest/doctest.h>

#include "batch/payload.h"
#include "support/test_support.h"

using namespace mews;
using journal::BatchKind;

TEST_CASE("the General webhook sample: five events of five kinds") {
  const auto parsed = batch::parseBatch(test::sample("general.json"));
  REQUIRE(parsed.ok());
  const auto& batch = parsed.value();
  CHECK(batch.kind == BatchKind::General);
  CHECK(batch.enterprise_id == "851df8c8-90f2-4c4a-8e01-a4fc46b25178");
  CHECK(batch.integration_id == "c8bee838-7fb1-4f4e-8fac-ac87008b2f90");
  REQUIRE(batch.events.size() == 5);
  CHECK(batch.events[0].discriminator == "ServiceOrderUpdated");
  CHECK(batch.events[0].entity_id == "bfee2c44-1f84-4326-a862-5289598f6e2d");
  CHECK(batch.events[3].discriminator == "CustomerAdded");
  CHECK(batch.events[4].discriminator == "CustomerUpdated");
  CHECK(batch.events[4].entity_id == "b3ce0fd7-a715-4bfc-969e-ef7a4822963c");
}

TEST_CASE("the Integration webhook sample: one action") {
  const auto parsed = batch::parseBatch(test::sample("integration.json"));
  REQUIRE(parsed.ok());
  const auto& batch = parsed.value();
  CHECK(batch.kind == BatchKind::Integration);
  CHECK(batch.enterprise_id == "8865aa96-f62d-4f9b-a912-ab2100f60f42");
  CHECK(batch.integration_id == "9e5e84e9-974d-4f16-9662-ab2200f27cb1");
  REQUIRE(batch.events.size() == 1);
  CHECK(batch.events[0].discriminator == "IntegrationCreated");
}

TEST_CASE("a 500-event batch keeps every event in order") {
  const auto parsed = batch::parseBatch(test::generalBatch(500));
  REQUIRE(parsed.ok());
  REQUIRE(parsed.value().events.size() == 500);
  CHECK(parsed.value().events[499].entity_id == "00000000-0000-0000-0000-000000000499");
}

TEST_CASE("new discriminators and odd values pass through") {
  const auto parsed = batch::parseBatch(
      R"({"Events":[{"Discriminator":"SomethingNew2030","Value":{"Id":17}},{"Discriminator":"X","Value":null}]})");
  REQUIRE(parsed.ok());
  CHECK(parsed.value().kind == BatchKind::General);
  CHECK(parsed.value().events[0].discriminator == "SomethingNew2030");
  CHECK_FALSE(parsed.value().events[0].entity_id.has_value());
  CHECK_FALSE(parsed.value().enterprise_id.has_value());
}

TEST_CASE("objects of other shapes are unknown, never refused") {
  for (const char* body : {R"({})", R"({"Hello":"world"})", R"({"Events":"not an array"})", R"({"Events":[1,2]})",
                           R"({"Events":[{"Value":{}}]})", R"({"Action":"X"})", R"({"Action":7,"Data":{}})"}) {
    CAPTURE(body);
    const auto parsed = batch::parseBatch(body);
    REQUIRE(parsed.ok());
    CHECK(parsed.value().kind == BatchKind::Unknown);
    CHECK(parsed.value().events.empty());
  }
}

TEST_CASE("anything that is not one JSON object is refused with a reason") {
  struct Case {
    std::string body;
    std::string reason;
  };
  const std::string deep = std::string(300, '[') + std::string(300, ']');
  const std::string deep_object = "{\"a\":" + std::string(300, '[') + std::string(300, ']') + "}";
  for (const Case& c : std::initializer_list<Case>{
           {"", "empty"},
           {"[1,2,3]", "not a JSON object"},
           {"\"text\"", "not a JSON object"},
           {"42", "not a JSON object"},
           {"null", "not a JSON object"},
           {R"({"Events":[{"Discriminator":"A")", "not valid JSON"},
           {R"({"a":1} {"b":2})", "not valid JSON"},
           {R"({"a":1,})", "not valid JSON"},
           {R"({'a':1})", "not valid JSON"},
           {"{\"a\":\"\xff\xfe\"}", "UTF-8"},
           {"{\"a\":\"\xc3\x28\"}", "UTF-8"},
           {deep, "deeper than"},
           {deep_object, "deeper than"},
           {R"({"a":01})", "not valid JSON"},
           {R"({"a":1.})", "not valid JSON"},
           {R"({"a":--1})", "not valid JSON"},
       }) {
    CAPTURE(c.body);
    const auto parsed = batch::parseBatch(c.body);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.error().find(c.reason) != std::string::npos);
    CHECK(parsed.error().find('\n') == std::string::npos);
  }
}

TEST_CASE("huge numbers are valid JSON: accepted, the batch still read") {
  const auto parsed = batch::parseBatch(
      R"({"EnterpriseId":"e","Events":[{"Discriminator":"A","Value":{"Id":"x","Amount":123456789012345678901234567890}}],"Rate":1e999,"Neg":-1E-999})");
  REQUIRE(parsed.ok());
  CHECK(parsed.value().kind == BatchKind::General);
  CHECK(parsed.value().events.size() == 1);
  CHECK(parsed.value().enterprise_id == "e");
  CHECK(batch::parseBatch(R"({"s":"1e999 \"2e999\"","n":9e9999})").ok());
}

TEST_CASE("nesting up to the limit is accepted") {
  const std::size_t depth = batch::kMaxDepth - 1;
  const std::string body = "{\"a\":" + std::string(depth - 1, '[') + std::string(depth - 1, ']') + "}";
  CHECK(batch::parseBatch(body).ok());
}

namespace {

// `value` as the one member of an object: the relay takes objects only.
std::string inObject(const std::string& value) {
  return "{\"v\":" + value + "}";
}

std::string nested(std::size_t levels) {
  // `levels` nested containers in all: the object and levels-1 arrays.
  return "{\"a\":" + std::string(levels - 1, '[') + std::string(levels - 1, ']') + "}";
}

}  // namespace

TEST_CASE("every text RFC 8259 calls JSON and common parsers accept is accepted (y_ cases)") {
  const std::vector<std::string> values = {
      // Strings: any \u escape, lone surrogates high and low, reversed and
      // doubled pairs, escaped NUL, every short escape, hex in either case.
      R"("\ud800")", R"("\udbff")", R"("\udc00")", R"("\udfff")", R"("\ud800x")", R"("x\udc00")", R"("\ude00\ud83d")",
      R"("\ud800\ud800")", R"("\ud800\n")", R"("\ud83d\ude00")", R"("\u0000")", R"("a\u0000b")", R"("\uDEAD\uBEEF")",
      R"("\"\\\/\b\f\n\r\t")", R"("")", R"("\u00e9")",
      // Raw UTF-8 at each sequence length's edges, noncharacters, DEL.
      "\"\xc2\x80\"", "\"\xdf\xbf\"", "\"\xe0\xa0\x80\"", "\"\xed\x9f\xbf\"", "\"\xee\x80\x80\"", "\"\xef\xbf\xbf\"",
      "\"\xef\xbf\xbe\"", "\"\xf0\x90\x80\x80\"", "\"\xf4\x8f\xbf\xbf\"", "\"\x7f\"",
      "\"Zo\xc3\xab \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80\"",
      // Numbers of any magnitude and precision, in every grammatical form.
      "-0", "-0.0", "-0e0", "0e1", "0E-0", "1E+2", "1e2", "1e-400", "1E400", "-1e-999999999999", "0.1e1",
      "123456789012345678901234567890", "18446744073709551616", "-9223372036854775809", "12.30",
      "1.000000000000000000001", "2.5E+38", "1e0001",
      // Other values and containers.
      "true", "false", "null", "[]", "{}", "[[],{}]", R"({"":0})", R"({"a":1,"a":2})", R"([1,"a",null,true,{"b":[]}])",
      // White space of all four kinds around and inside.
      " \t\r\n1 \t\r\n", "[ 1 , 2 ]", "{ \"k\" \t:\r\n\"v\" }"};
  for (const auto& value : values) {
    const std::string body = inObject(value);
    CAPTURE(body);
    const auto parsed = batch::parseBatch(body);
    CHECK(parsed.ok());
    if (!parsed.ok()) CAPTURE(parsed.error());
  }
  const std::vector<std::string> documents = {
      " \t\r\n{ \t\r\n\"a\" \t\r\n: \t\r\n1 \t\r\n} \t\r\n",
      "{}\n",
      "\n{}",
      "\xef\xbb\xbf{}",  // a UTF-8 byte order mark (RFC 8259 8.1 lets a parser ignore it)
      "\xef\xbb\xbf {\"Events\":[]}",
      "{\"\xc3\xa9\":1,\"\\u00e9\":2}",
      nested(batch::kMaxDepth),
  };
  for (const auto& body : documents) {
    CAPTURE(body);
    CHECK(batch::parseBatch(body).ok());
  }
}

TEST_CASE("what is not one JSON text is refused, each class with its reason (n_ cases)") {
  struct Case {
    std::string body;
    std::string reason;
  };
  const std::vector<Case> cases = {
      // Numbers outside the grammar.
      {inObject("01"), "not valid JSON"},
      {inObject("-01"), "not valid JSON"},
      {inObject("1."), "not valid JSON"},
      {inObject(".5"), "not valid JSON"},
      {inObject("+1"), "not valid JSON"},
      {inObject("-"), "not valid JSON"},
      {inObject("- 1"), "not valid JSON"},
      {inObject("1e"), "not valid JSON"},
      {inObject("1e+"), "not valid JSON"},
      {inObject("1.e3"), "not valid JSON"},
      {inObject("1.5.2"), "not valid JSON"},
      {inObject("0x1F"), "not valid JSON"},
      {inObject("NaN"), "not valid JSON"},
      {inObject("-Infinity"), "not valid JSON"},
      {inObject("1_000"), "not valid JSON"},
      // Literals.
      {inObject("tru"), "not valid JSON"},
      {inObject("True"), "not valid JSON"},
      {inObject("nul"), "not valid JSON"},
      {inObject("nulll"), "not valid JSON"},
      {inObject("undefined"), "not valid JSON"},
      // Control characters unescaped in a string.
      {inObject("\"a\tb\""), "control character"},
      {inObject("\"a\nb\""), "control character"},
      {inObject("\"a\rb\""), "control character"},
      {inObject(std::string("\"a\0b\"", 5)), "control character"},
      {inObject("\"\x1f\""), "control character"},
      // Escapes outside the grammar.
      {inObject(R"("\x41")"), "not valid JSON"},
      {inObject(R"("\'")"), "not valid JSON"},
      {inObject(R"("\a")"), "not valid JSON"},
      {inObject(R"("\U0041")"), "not valid JSON"},
      {inObject(R"("\u12")"), "not valid JSON"},
      {inObject(R"("\u12G4")"), "not valid JSON"},
      {inObject(R"("\)"), "not valid JSON"},
      // Invalid UTF-8: stray and truncated sequences, overlong forms,
      // surrogates encoded in UTF-8, code points past U+10FFFF.
      {inObject("\"\xff\""), "UTF-8"},
      {inObject("\"\xfe\""), "UTF-8"},
      {inObject("\"\x80\""), "UTF-8"},
      {inObject("\"\xbf\""), "UTF-8"},
      {inObject("\"\xc3\x28\""), "UTF-8"},
      {inObject("\"\xe6\x97\""), "UTF-8"},
      {inObject("\"\xf0\x9f\x98\""), "UTF-8"},
      {inObject("\"\xc0\xaf\""), "UTF-8"},
      {inObject("\"\xc1\xbf\""), "UTF-8"},
      {inObject("\"\xe0\x80\xaf\""), "UTF-8"},
      {inObject("\"\xe0\x9f\xbf\""), "UTF-8"},
      {inObject("\"\xf0\x80\x80\xaf\""), "UTF-8"},
      {inObject("\"\xf0\x8f\xbf\xbf\""), "UTF-8"},
      {inObject("\"\xed\xa0\x80\""), "UTF-8"},
      {inObject("\"\xed\xbf\xbf\""), "UTF-8"},
      {inObject("\"\xed\xa0\xbd\xed\xb8\x80\""), "UTF-8"},
      {inObject("\"\xf4\x90\x80\x80\""), "UTF-8"},
      {inObject("\"\xf5\x80\x80\x80\""), "UTF-8"},
      {"{\"a\":\"x\xe2\x82", "UTF-8"},
      // Structure: trailing commas, missing separators, other quoting,
      // comments, two documents, trailing garbage, unterminated texts.
      {R"({"a":1,})", "not valid JSON"},
      {R"({"a":[1,]})", "not valid JSON"},
      {R"({"a":[,1]})", "not valid JSON"},
      {R"({,"a":1})", "not valid JSON"},
      {R"({"a":1 "b":2})", "not valid JSON"},
      {R"({"a" 1})", "not valid JSON"},
      {R"({"a"::1})", "not valid JSON"},
      {R"({a:1})", "not valid JSON"},
      {R"({'a':1})", "not valid JSON"},
      {R"({"a":'x'})", "not valid JSON"},
      {R"({"a":1/*c*/})", "not valid JSON"},
      {"{\"a\":1}//c", "not valid JSON"},
      {R"({}{})", "not valid JSON"},
      {R"({} {})", "not valid JSON"},
      {R"({"a":1}x)", "not valid JSON"},
      {std::string("{}\0", 3), "not valid JSON"},
      {R"({"a":1)", "not valid JSON"},
      {R"({"a":)", "not valid JSON"},
      {R"({"a)", "not valid JSON"},
      {"{", "not valid JSON"},
      {"}", "not valid JSON"},
      {R"({"a":[1})", "not valid JSON"},
      {R"({"a":{]})", "not valid JSON"},
      // White space RFC 8259 does not have; a byte order mark that is not
      // UTF-8's or not first.
      {"\f{}", "not valid JSON"},
      {"\v{}", "not valid JSON"},
      {"\xc2\xa0{}", "not valid JSON"},
      {"{\"a\":\xc2\xa0"
       "1}",
       "not valid JSON"},
      {"\xfe\xff{}", "not valid JSON"},
      {"\xef\xbb\xbf\xef\xbb\xbf{}", "not valid JSON"},
      {" \xef\xbb\xbf{}", "not valid JSON"},
      {"\xef\xbb{}", "not valid JSON"},
      // Not an object, nothing at all, too deep.
      {"", "empty"},
      {" \r\n\t", "empty"},
      {"\xef\xbb\xbf", "empty"},
      {"[]", "not a JSON object"},
      {"\"\\ud800\"", "not a JSON object"},
      {"1e999", "not a JSON object"},
      {"[1,]", "not valid JSON"},
      {nested(batch::kMaxDepth + 1), "deeper than 256"},
      {"{\"a\":" + std::string(100000, '['), "deeper than 256"},
  };
  for (const Case& c : cases) {
    const std::string shown = c.body.substr(0, 300);
    CAPTURE(shown);
    const auto parsed = batch::parseBatch(c.body);
    REQUIRE_FALSE(parsed.ok());
    CAPTURE(parsed.error());
    CHECK(parsed.error().find(c.reason) != std::string::npos);
    CHECK(parsed.error().find('\n') == std::string::npos);
  }
}

TEST_CASE("names and values are read with their escapes decoded; the last of a repeated name counts") {
  const auto parsed = batch::parseBatch(
      R"({"Enterprise\u0049d":"e\u002d1","Even\u0074s":[{"Discriminator":"Customer\u0041dded",)"
      R"("Value":{"Id":"\u00e9\ud800\ud83d\ude00"}},{"Discriminator":"X","Discriminator":"Y","Value":{"Id":"a"},"Value":7}]})");
  REQUIRE(parsed.ok());
  const auto& batch = parsed.value();
  CHECK(batch.kind == BatchKind::General);
  CHECK(batch.enterprise_id == "e-1");
  REQUIRE(batch.events.size() == 2);
  CHECK(batch.events[0].discriminator == "CustomerAdded");
  // A lone surrogate has no UTF-8 form: it reads as U+FFFD (the bytes stored and sent keep the escape).
  CHECK(batch.events[0].entity_id == "\xc3\xa9\xef\xbf\xbd\xf0\x9f\x98\x80");
  CHECK(batch.events[1].discriminator == "Y");
  CHECK_FALSE(batch.events[1].entity_id.has_value());
  // As JavaScript, Python, Jackson and .NET read a repeated name: the last one.
  const auto repeated = batch::parseBatch(R"({"Events":[{"Discriminator":"A"}],"Events":"none"})");
  REQUIRE(repeated.ok());
  CHECK(repeated.value().kind == BatchKind::Unknown);
}
