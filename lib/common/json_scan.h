// The relay's one JSON reader: a single-pass validating scanner over bytes
// (RFC 8259), used by ingest to accept a body and by delivery to cut filtered
// and per-event bodies out of the stored one. One reader means one rule: what
// ingest accepted, delivery can always read again.
//
// It never builds a tree and never converts a number: a caller walks the text
// (enterObject/nextMember, enterArray/nextElement), reads the strings it
// needs, skips the rest, and takes byte offsets to slice the original text.
// Whatever is skipped is validated all the same.
//
// Accepted: exactly RFC 8259 JSON text in UTF-8, plus one leading UTF-8 byte
// order mark (RFC 8259 8.1 lets a parser ignore it). In particular numbers of
// any size or precision (grammar only), any \uXXXX escape including lone
// surrogates and \u0000, and repeated member names (all are JSON text, and
// JavaScript, Python, Jackson and .NET read them).
// Refused: invalid UTF-8 anywhere (overlong forms, surrogates encoded in UTF-8,
// code points past U+10FFFF, truncated sequences), control characters
// U+0000..U+001F unescaped in a string, nesting deeper than kMaxDepth
// containers, anything after the value but white space, an empty text.
//
// Failure is a value: the first fault stops the scan, every later call returns
// false, and reason() says what and at which byte, on one line.
//
// Why not simdjson (which the relay once used): it refuses some of what is
// accepted above (huge integers, lone surrogates, the BOM) and gives no byte
// offsets; scripts/bench-json measures both, README "Dependencies" decides.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace mews::json {

namespace detail {
inline bool isWhiteSpace(char c) {
  return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}
inline bool isDigit(char c) {
  return c >= '0' && c <= '9';
}
}  // namespace detail

// Containers (objects and arrays) nested in one another, the outermost counted.
inline constexpr std::size_t kMaxDepth = 256;

enum class Kind : std::uint8_t { Object, Array, String, Number, True, False, Null };

enum class Fault : std::uint8_t { None, Empty, Syntax, Utf8, ControlCharacter, Depth };

class Scanner {
 public:
  explicit Scanner(std::string_view text) : text_(text) {}
  // The scanner and the views it hands out point into the text: keep it alive.
  explicit Scanner(std::string&&) = delete;

  // The start of the text: a UTF-8 byte order mark and white space are
  // skipped; a text with nothing else is Fault::Empty.
  bool begin();
  // The end of the text: only white space may follow the value.
  bool end();

  // The kind of the next value (white space before it is skipped; offset()
  // is then where the value starts). Consumes nothing of the value.
  bool peek(Kind& kind);
  // Consumes one value of any kind, validating all of it.
  bool skipValue();
  // Consumes a string; `raw` is what stands between its quotes, escapes as
  // written (decode() or equals() read it).
  bool string(std::string_view& raw);

  // Consumes '{'. Then nextMember() until it returns false: true with the
  // member's raw name (the value comes next, for the caller to consume);
  // false at the closing '}' (consumed) or on a fault.
  bool enterObject();
  bool nextMember(std::string_view& raw_name);
  // Consumes '['. Then nextElement() until it returns false, consuming one
  // value after each true.
  bool enterArray();
  bool nextElement();

  // Where the scan stands, in bytes from the start of the text.
  [[nodiscard]] std::size_t offset() const { return position_; }
  [[nodiscard]] bool failed() const { return fault_ != Fault::None; }
  [[nodiscard]] Fault fault() const { return fault_; }
  [[nodiscard]] std::size_t faultOffset() const { return fault_at_; }
  // One line, e.g. "expected ',' or '}' at byte 17, found 'x'"; empty without a fault.
  [[nodiscard]] std::string reason() const;

 private:
  [[gnu::cold]] bool fail(Fault fault, const char* what, std::size_t at);
  void skipWhiteSpace();
  bool expectAfterWhiteSpace(char c, const char* what);
  bool scanString();  // at '"': consumes through the closing quote
  bool scanEscape(std::size_t& at);
  bool scanNumber();
  bool scanLiteral(std::string_view word);
  bool open();
  void close();

  std::string_view text_;
  std::size_t position_ = 0;
  std::size_t depth_ = 0;
  // Whether the container being read has yielded an item yet: decides
  // whether a ',' must come before the next one. A container closing always
  // returns to a parent that has (it is that parent's current item).
  bool first_item_ = true;
  Fault fault_ = Fault::None;
  const char* fault_what_ = "";
  std::size_t fault_at_ = 0;
};

// The navigation is inline: it runs once per token on the ingest path.

inline void Scanner::skipWhiteSpace() {
  while (position_ < text_.size() && detail::isWhiteSpace(text_[position_])) ++position_;
}

inline bool Scanner::expectAfterWhiteSpace(char c, const char* what) {
  skipWhiteSpace();
  if (position_ >= text_.size() || text_[position_] != c) return fail(Fault::Syntax, what, position_);
  ++position_;
  return true;
}

inline bool Scanner::peek(Kind& kind) {
  if (failed()) return false;
  skipWhiteSpace();
  if (position_ >= text_.size()) return fail(Fault::Syntax, "expected a value", position_);
  switch (text_[position_]) {
    case '{':
      kind = Kind::Object;
      return true;
    case '[':
      kind = Kind::Array;
      return true;
    case '"':
      kind = Kind::String;
      return true;
    case 't':
      kind = Kind::True;
      return true;
    case 'f':
      kind = Kind::False;
      return true;
    case 'n':
      kind = Kind::Null;
      return true;
    default:
      if (text_[position_] == '-' || detail::isDigit(text_[position_])) {
        kind = Kind::Number;
        return true;
      }
      return fail(Fault::Syntax, "expected a value", position_);
  }
}

inline bool Scanner::string(std::string_view& raw) {
  if (failed()) return false;
  skipWhiteSpace();
  if (position_ >= text_.size() || text_[position_] != '"') return fail(Fault::Syntax, "expected a string", position_);
  const std::size_t start = position_ + 1;
  if (!scanString()) return false;
  raw = text_.substr(start, position_ - 1 - start);
  return true;
}

inline bool Scanner::open() {
  if (++depth_ > kMaxDepth) return fail(Fault::Depth, "too deep", position_);
  ++position_;
  first_item_ = true;
  return true;
}

inline void Scanner::close() {
  ++position_;
  --depth_;
  first_item_ = false;
}

inline bool Scanner::enterObject() {
  if (failed()) return false;
  skipWhiteSpace();
  if (position_ >= text_.size() || text_[position_] != '{') return fail(Fault::Syntax, "expected '{'", position_);
  return open();
}

inline bool Scanner::nextMember(std::string_view& raw_name) {
  if (failed()) return false;
  skipWhiteSpace();
  const char* const expected = first_item_ ? "expected a member name or '}'" : "expected ',' or '}'";
  if (position_ >= text_.size()) return fail(Fault::Syntax, expected, position_);
  if (text_[position_] == '}') {
    close();
    return false;
  }
  if (!first_item_) {
    if (text_[position_] != ',') return fail(Fault::Syntax, expected, position_);
    ++position_;
    skipWhiteSpace();
    if (position_ >= text_.size() || text_[position_] != '"')
      return fail(Fault::Syntax, "expected a member name", position_);
  } else if (text_[position_] != '"') {
    return fail(Fault::Syntax, expected, position_);
  }
  first_item_ = false;
  if (!string(raw_name)) return false;
  return expectAfterWhiteSpace(':', "expected ':'");
}

inline bool Scanner::enterArray() {
  if (failed()) return false;
  skipWhiteSpace();
  if (position_ >= text_.size() || text_[position_] != '[') return fail(Fault::Syntax, "expected '['", position_);
  return open();
}

inline bool Scanner::nextElement() {
  if (failed()) return false;
  skipWhiteSpace();
  if (position_ >= text_.size())
    return fail(Fault::Syntax, first_item_ ? "expected a value or ']'" : "expected ',' or ']'", position_);
  if (text_[position_] == ']') {
    close();
    return false;
  }
  if (first_item_) {
    first_item_ = false;
    return true;
  }
  if (text_[position_] != ',') return fail(Fault::Syntax, "expected ',' or ']'", position_);
  ++position_;
  return true;
}

// A JSON string's raw content (as scanned: valid) decoded to UTF-8. An escaped
// lone surrogate has no UTF-8 form and becomes U+FFFD; the bytes the relay
// stores and forwards keep the escape, this decoded text only serves to
// compare and show names and ids.
std::string decode(std::string_view raw);
void decodeInto(std::string_view raw, std::string& out);
// Whether a string's raw content decodes to `text`; allocates nothing.
bool equals(std::string_view raw, std::string_view text);

// Whether `text` is one JSON text of any kind (for tests and fuzz invariants).
bool isValid(std::string_view text);

}  // namespace mews::json
