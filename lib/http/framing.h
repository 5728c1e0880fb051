// Where a request's body ends (RFC 9112 §6): decided from the raw header
// fields before a byte of the body is read, and the strict decoder for the
// chunked coding. Pure functions over bytes; no I/O.
//
// Request smuggling lives in the gap between two parsers that disagree on where
// a body ends (a proxy in front and this relay, or this relay and the bytes a
// client pipelines after a body). So every ambiguity is refused rather than
// resolved, and the connection is then closed (server.cpp):
//
//   accepted    exactly one Content-Length of 1*DIGIT (spaces around it are
//               trimmed), no Transfer-Encoding; or exactly one
//               Transfer-Encoding whose whole value is "chunked" (any case),
//               no Content-Length, HTTP/1.1.
//   refused     Content-Length together with Transfer-Encoding; two
//               Content-Length fields (even equal ones) or a list in one; a
//               sign, a space inside, hex, empty, or more than 64 bits; a
//               Transfer-Encoding other than exactly "chunked" (identity,
//               gzip, "chunked, chunked", two fields, an RFC 2047 encoded
//               word); Transfer-Encoding in any request but HTTP/1.1; a
//               field name that is not a token (a space before the colon).
//   head        readHead(): a version other than exactly HTTP/1.0 or
//               HTTP/1.1 (505 for another HTTP/d.d, else 400), a control
//               character in a field value (\v or \f before a number), a
//               line without a colon, a folded line, a bare CR or LF.
//   neither     no body (length 0); the ingest path answers 411 (server.cpp).
//
// The chunked decoder accepts exactly RFC 9112 §7.1: hex sizes (at most 15
// digits), optional extensions, CRLF line ends (a bare LF or CR is an error),
// CRLF after each chunk's data, a trailer section of at most 8 KiB. It tells
// its reader how many bytes it may take next, so the reader never consumes a
// byte past the body: what follows is the next request of a keep-alive
// connection.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "common/units.h"

namespace mews::http {

using HeaderField = std::pair<std::string_view, std::string_view>;  // name, value

struct Framing {
  enum class Kind { None, Length, Chunked };
  Kind kind = Kind::None;
  std::uint64_t length = 0;  // Kind::Length only
};

// `http11`: the request line said exactly HTTP/1.1, the only version with
// chunked (RFC 9112 §6.1; HTTP/1.0 has no Transfer-Encoding). The error is a
// one-line reason.
Parsed<Framing> decideFraming(std::span<const HeaderField> fields, bool http11);

// A request head as its bytes say it, before Poco reads it: Poco decodes RFC
// 2047 encoded words in field values, drops a leading \v or \f, accepts any
// version string and lets a line without a colon pass, each a way for a proxy
// in front and this relay to disagree. Views into the bytes given to readHead().
struct RawHead {
  std::string_view method;
  std::string_view target;
  std::string_view version;  // "HTTP/1.0" or "HTTP/1.1"
  std::vector<HeaderField> fields;
};

// Why a head is refused: 400, or 505 for a well-formed version other than 1.0 and 1.1.
struct HeadError {
  int status = 400;
  std::string reason;
};

// Reads `head` (the request line through the empty line that ends the head)
// strictly, RFC 9112 §2-5: "METHOD SP TARGET SP HTTP/d.d" CRLF, then fields
// "token:" OWS value OWS CRLF whose values hold no control character but HTAB,
// no obsolete line folding, CRLF line ends only.
std::variant<RawHead, HeadError> readHead(std::string_view head);

class ChunkedDecoder {
 public:
  // How many bytes feed() may be given next without reading past the end of
  // the body: 1 while in a line, the rest of the chunk in its data, 0 when
  // done or failed.
  [[nodiscard]] std::uint64_t wanted() const;
  // Consumes `bytes` (at most wanted()), appending chunk data to `out`.
  // False on a framing error (error() says which); nothing more may be fed.
  bool feed(std::string_view bytes, std::string& out);
  [[nodiscard]] bool done() const { return state_ == State::Done; }
  [[nodiscard]] bool failed() const { return state_ == State::Failed; }
  [[nodiscard]] const std::string& error() const { return error_; }
  // The size of the chunk whose data comes next (valid in its data).
  [[nodiscard]] std::uint64_t chunkRemaining() const { return remaining_; }

 private:
  enum class State { SizeLine, Data, DataCr, DataLf, TrailerLine, Done, Failed };
  bool fail(std::string reason);
  bool sizeLineByte(char c);
  bool trailerByte(char c);

  State state_ = State::SizeLine;
  std::string line_;  // the size or trailer line read so far, without CRLF
  bool line_cr_ = false;
  std::uint64_t remaining_ = 0;
  std::uint64_t trailer_bytes_ = 0;
  std::string error_;
};

}  // namespace mews::http
