#include <doctest/doctest.h>

#include <algorithm>
#include <vector>

#include "http/framing.h"

using namespace mews::http;

namespace {

using Fields = std::vector<HeaderField>;

std::string framingError(const Fields& fields, bool http11 = true) {
  const auto framing = decideFraming(fields, http11);
  return framing.ok() ? std::string("<ok>") : framing.error();
}

// Decodes `encoded` fed in pieces of at most `piece` bytes, each no larger
// than the decoder wants; returns the data, or "error: REASON", and how many
// bytes it consumed.
std::pair<std::string, std::size_t> decode(std::string_view encoded, std::size_t piece = 1 << 20) {
  ChunkedDecoder decoder;
  std::string out;
  std::size_t used = 0;
  while (!decoder.done() && used < encoded.size()) {
    const std::uint64_t limit = std::min<std::uint64_t>(piece, encoded.size() - used);
    const auto take = static_cast<std::size_t>(std::min(decoder.wanted(), limit));
    if (!decoder.feed(encoded.substr(used, take), out)) return {"error: " + decoder.error(), used};
    used += take;
  }
  if (!decoder.done()) return {"error: truncated", used};
  return {out, used};
}

}  // namespace

TEST_CASE("one Content-Length, or chunked alone, or neither") {
  auto length = decideFraming(Fields{{"Host", "x"}, {"content-length", " 42 "}}, true);
  REQUIRE(length.ok());
  CHECK(length.value().kind == Framing::Kind::Length);
  CHECK(length.value().length == 42);
  auto chunked = decideFraming(Fields{{"Transfer-Encoding", "Chunked"}}, true);
  REQUIRE(chunked.ok());
  CHECK(chunked.value().kind == Framing::Kind::Chunked);
  auto none = decideFraming(Fields{{"Host", "x"}}, true);
  REQUIRE(none.ok());
  CHECK(none.value().kind == Framing::Kind::None);
  CHECK(decideFraming(Fields{{"Content-Length", "0"}}, false).ok());
  CHECK(decideFraming(Fields{{"Content-Length", "9223372036854775807"}}, true).ok());
}

TEST_CASE("every ambiguous framing is refused") {
  CHECK(framingError({{"Content-Length", "5"}, {"Transfer-Encoding", "chunked"}}) ==
        "both Content-Length and Transfer-Encoding");
  CHECK(framingError({{"Transfer-Encoding", "chunked"}, {"Content-Length", "5"}}) ==
        "both Content-Length and Transfer-Encoding");
  CHECK(framingError({{"Content-Length", "5"}, {"Content-Length", "5"}}) == "more than one Content-Length");
  CHECK(framingError({{"Content-Length", "5"}, {"CONTENT-LENGTH", "6"}}) == "more than one Content-Length");
  for (const char* bad : {"-1", "+5", "5, 5", "1 3", "0x10", "", " ", "5a", "١"})
    CHECK_MESSAGE(framingError({{"Content-Length", bad}}) == "Content-Length is not a number", bad);
  CHECK(framingError({{"Content-Length", "9223372036854775808"}}) == "Content-Length is out of range");
  CHECK(framingError({{"Content-Length", "99999999999999999999999"}}) == "Content-Length is out of range");
  for (const char* bad : {"identity", "gzip", "chunked, chunked", "gzip, chunked", "chunked;q=1", "xchunked", ""})
    CHECK_MESSAGE(framingError({{"Transfer-Encoding", bad}}) == "Transfer-Encoding other than chunked", bad);
  CHECK(framingError({{"Transfer-Encoding", "chunked"}, {"transfer-encoding", "chunked"}}) ==
        "Transfer-Encoding other than chunked");
  CHECK(framingError({{"Transfer-Encoding", "chunked"}}, false) == "Transfer-Encoding in an HTTP/1.0 request");
  // Poco decodes encoded words before the fields reach us; the raw value is refused.
  CHECK(framingError({{"Transfer-Encoding", "=?UTF-8?Q?chunked?="}}) == "Transfer-Encoding other than chunked");
  CHECK(framingError({{"Content-Length", "=?UTF-8?Q?13?="}}) == "Content-Length is not a number");
  CHECK(framingError({{"Content-Length", "\v13"}}) == "Content-Length is not a number");
  CHECK(framingError({{"Transfer-Encoding ", "chunked"}}) == "malformed header field name");
  CHECK(framingError({{"Content Length", "5"}}) == "malformed header field name");
  CHECK(framingError({{"", "5"}}) == "malformed header field name");
}

namespace {

std::string headError(std::string_view head) {
  const auto read = readHead(head);
  if (const auto* error = std::get_if<HeadError>(&read)) return std::to_string(error->status) + " " + error->reason;
  return "<ok>";
}

}  // namespace

TEST_CASE("a request head is read as its bytes say, strictly") {
  const auto read = readHead("POST /a?t=1 HTTP/1.1\r\nHost: x\r\nContent-Length:  13 \r\nX-Empty:\r\n\r\n");
  REQUIRE(std::holds_alternative<RawHead>(read));
  const RawHead& head = std::get<RawHead>(read);
  CHECK(head.method == "POST");
  CHECK(head.target == "/a?t=1");
  CHECK(head.version == "HTTP/1.1");
  REQUIRE(head.fields.size() == 3);
  CHECK(head.fields[1] == HeaderField{"Content-Length", "13"});
  CHECK(head.fields[2] == HeaderField{"X-Empty", ""});
  CHECK(headError("GET / HTTP/1.0\r\n\r\n") == "<ok>");
  CHECK(headError("GET / HTTP/0.9\r\n\r\n") == "505 HTTP version not supported");
  CHECK(headError("GET / HTTP/2.0\r\n\r\n") == "505 HTTP version not supported");
  for (const char* bad : {"http/1.0", "HTTP/1.1x", "HTTP/1", "HTTP/11", "HTTPS/1.1", "", "HTTP/a.b"})
    CHECK_MESSAGE(headError(std::string("GET / ") + bad + "\r\n\r\n") == "400 malformed HTTP version", bad);
  CHECK(headError("GET / HTTP/1.1 \r\n\r\n") == "400 malformed request line");
  CHECK(headError("GET  / HTTP/1.1\r\n\r\n") == "400 malformed request line");
  CHECK(headError("GET /\x01 HTTP/1.1\r\n\r\n") == "400 malformed request line");
  CHECK(headError("GET / HTTP/1.1\r\nContent-Length: \v13\r\n\r\n") == "400 control character in a header field value");
  CHECK(headError("GET / HTTP/1.1\r\nContent-Length: \f13\r\n\r\n") == "400 control character in a header field value");
  CHECK(headError("GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n") == "400 control character in a header field value");
  CHECK(headError("GET / HTTP/1.1\r\nX: a\tb \xc3\xa9\r\n\r\n") == "<ok>");
  CHECK(headError("GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n") == "400 folded header line");
  CHECK(headError("GET / HTTP/1.1\r\nno colon\r\n\r\n") == "400 header line without a colon");
  CHECK(headError("GET / HTTP/1.1\r\nX : a\r\n\r\n") == "400 malformed header field name");
  CHECK(headError("GET / HTTP/1.1\nX: a\r\n\r\n") == "400 bare LF in the request head");
  CHECK(headError("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n") == "400 bare CR in the request head");
  CHECK(headError("GET / HTTP/1.1\r\nX: a\r\n") == "400 request head ended early");
}

TEST_CASE("chunked: sizes, extensions and trailers decode; nothing past the end is taken") {
  CHECK(decode("5\r\nhello\r\n0\r\n\r\n").first == "hello");
  CHECK(decode("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", 3).first == "hello world");
  CHECK(decode("A;name=value\r\n0123456789\r\n0\r\n\r\n").first == "0123456789");
  CHECK(decode("a \r\n0123456789\r\n000\r\nExpires: never\r\n\r\n").first == "0123456789");
  CHECK(decode("0\r\n\r\n").first.empty());
  const std::string next = "POST / HTTP/1.1\r\n";
  const std::string body = "2\r\n{}\r\n0\r\n\r\n";
  const auto [data, used] = decode(body + next);
  CHECK(data == "{}");
  CHECK(used == body.size());  // the next request is left where it is
}

TEST_CASE("chunked: every malformed chunk is an error") {
  CHECK(decode("zz\r\n{}\r\n0\r\n\r\n").first == "error: chunk size is not a hex number");
  CHECK(decode("\r\n").first == "error: chunk size is not a hex number");
  CHECK(decode(" 2\r\n{}\r\n0\r\n\r\n").first == "error: chunk size is not a hex number");
  CHECK(decode("-2\r\n{}\r\n0\r\n\r\n").first == "error: chunk size is not a hex number");
  CHECK(decode("2 2\r\n{}\r\n0\r\n\r\n").first == "error: chunk size is not a hex number");
  CHECK(decode("ffffffffffffffffff\r\n{}\r\n0\r\n\r\n").first == "error: chunk size is too large");
  CHECK(decode("2\n{}\r\n0\r\n\r\n").first == "error: bare LF in a chunk size line");
  CHECK(decode("2\rX{}\r\n0\r\n\r\n").first == "error: CR without LF in a chunk size line");
  CHECK(decode("2\r\n{}XX0\r\n\r\n").first == "error: chunk data longer than its size");
  CHECK(decode("2\r\n{}\rX0\r\n\r\n").first == "error: chunk data not followed by CRLF");
  CHECK(decode("2\r\n{}\r\n0\r\n\n").first == "error: bare LF in the chunked trailer");
  CHECK(decode("2;" + std::string(300, 'x') + "\r\n{}\r\n0\r\n\r\n").first == "error: chunk size line is too long");
  CHECK(decode("0\r\nX: " + std::string(9000, 'x') + "\r\n\r\n").first == "error: chunked trailer is too long");
  CHECK(decode("2\r\n{}\r\n").first == "error: truncated");
  CHECK(decode("2\r\n{").first == "error: truncated");
}

TEST_CASE("chunked: wanted() never reaches past the body") {
  ChunkedDecoder decoder;
  std::string out;
  CHECK(decoder.wanted() == 1);
  for (const char c : std::string_view("10\r\n")) REQUIRE(decoder.feed(std::string_view(&c, 1), out));
  CHECK(decoder.wanted() == 16);
  CHECK(decoder.chunkRemaining() == 16);
  REQUIRE(decoder.feed(std::string(16, 'a'), out));
  CHECK(decoder.wanted() == 1);
  CHECK_FALSE(decoder.feed("x", out));
  CHECK(decoder.wanted() == 0);
  CHECK_FALSE(decoder.feed("\r", out));
}
