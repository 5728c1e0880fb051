#include "common/json_scan.h"

#include <fmt/format.h>

#include <array>
#include <cstring>

#include "common/text.h"

namespace mews::json {
namespace {

using detail::isDigit;
using text::hexValue;

// Whether any of the 8 bytes in `word` ends a plain run inside a string: a
// quote, a backslash, a control character or a non-ASCII byte. Exact for
// "any" (the classic SWAR zero-byte and less-than tests), which is all the
// fast path needs: it then finds the byte one at a time.
bool hasStringSpecial(std::uint64_t word) {
  constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
  constexpr std::uint64_t kHighs = 0x8080808080808080ULL;
  const auto has_zero = [&](std::uint64_t x) { return (x - kOnes) & ~x & kHighs; };
  const std::uint64_t quote = has_zero(word ^ (kOnes * '"'));
  const std::uint64_t backslash = has_zero(word ^ (kOnes * '\\'));
  const std::uint64_t control = (word - kOnes * 0x20) & ~word & kHighs;
  return ((quote | backslash | control | word) & kHighs) != 0;
}

// The bytes a string may hold as they are: printable ASCII but the quote and
// the backslash.
constexpr std::array<bool, 256> kPlainStringByte = [] {
  std::array<bool, 256> plain{};
  for (int c = 0x20; c < 0x80; ++c) plain[static_cast<std::size_t>(c)] = c != '"' && c != '\\';
  return plain;
}();

// Length of the valid UTF-8 sequence of a non-ASCII lead byte at `p` (RFC
// 3629 section 4), or 0: no overlong forms, no surrogates, nothing past
// U+10FFFF, no truncation.
std::size_t utf8SequenceLength(const unsigned char* p, std::size_t available) {
  const unsigned char lead = p[0];
  std::size_t length = 0;
  unsigned char low = 0x80;
  unsigned char high = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;   // below: overlong
    if (lead == 0xED) high = 0x9F;  // above: U+D800..U+DFFF
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;   // below: overlong
    if (lead == 0xF4) high = 0x8F;  // above: past U+10FFFF
  } else {
    return 0;  // a continuation byte, C0/C1 (overlong), F5..FF
  }
  if (available < length || p[1] < low || p[1] > high) return 0;
  for (std::size_t i = 2; i < length; ++i)
    if ((p[i] & 0xC0) != 0x80) return 0;
  return length;
}

unsigned hex4(std::string_view raw, std::size_t at) {
  unsigned value = 0;
  for (std::size_t i = 0; i < 4; ++i) value = value * 16 + static_cast<unsigned>(hexValue(raw[at + i]));
  return value;
}

// Appends the UTF-8 form of `code_point` (a scalar value) to a small buffer.
std::size_t encodeUtf8(unsigned code_point, char* out) {
  if (code_point < 0x80) {
    out[0] = static_cast<char>(code_point);
    return 1;
  }
  if (code_point < 0x800) {
    out[0] = static_cast<char>(0xC0 | (code_point >> 6));
    out[1] = static_cast<char>(0x80 | (code_point & 0x3F));
    return 2;
  }
  if (code_point < 0x10000) {
    out[0] = static_cast<char>(0xE0 | (code_point >> 12));
    out[1] = static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
    out[2] = static_cast<char>(0x80 | (code_point & 0x3F));
    return 3;
  }
  out[0] = static_cast<char>(0xF0 | (code_point >> 18));
  out[1] = static_cast<char>(0x80 | ((code_point >> 12) & 0x3F));
  out[2] = static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
  out[3] = static_cast<char>(0x80 | (code_point & 0x3F));
  return 4;
}

// Feeds the decoded text of a scanned (valid) string's raw content to
// `piece`, in order, as string_views; stops early when `piece` returns false.
template <typename Piece>
bool decodePieces(std::string_view raw, Piece&& piece) {
  std::size_t i = 0;
  while (i < raw.size()) {
    const std::size_t backslash = raw.find('\\', i);
    if (backslash == std::string_view::npos) return piece(raw.substr(i));
    if (backslash > i && !piece(raw.substr(i, backslash - i))) return false;
    const char escaped = raw[backslash + 1];
    i = backslash + 2;
    char buffer[4];
    std::size_t length = 1;
    switch (escaped) {
      case 'b':
        buffer[0] = '\b';
        break;
      case 'f':
        buffer[0] = '\f';
        break;
      case 'n':
        buffer[0] = '\n';
        break;
      case 'r':
        buffer[0] = '\r';
        break;
      case 't':
        buffer[0] = '\t';
        break;
      case 'u': {
        unsigned code_point = hex4(raw, i);
        i += 4;
        if (code_point >= 0xD800 && code_point <= 0xDBFF && i + 6 <= raw.size() && raw[i] == '\\' &&
            raw[i + 1] == 'u') {
          const unsigned low = hex4(raw, i + 2);
          if (low >= 0xDC00 && low <= 0xDFFF) {
            code_point = 0x10000 + ((code_point - 0xD800) << 10) + (low - 0xDC00);
            i += 6;
          }
        }
        if (code_point >= 0xD800 && code_point <= 0xDFFF) code_point = 0xFFFD;  // a lone surrogate
        length = encodeUtf8(code_point, buffer);
        break;
      }
      default:  // '"', '\\', '/'
        buffer[0] = escaped;
    }
    if (!piece(std::string_view(buffer, length))) return false;
  }
  return true;
}

}  // namespace

bool Scanner::fail(Fault fault, const char* what, std::size_t at) {
  if (fault_ == Fault::None) {
    fault_ = fault;
    fault_what_ = what;
    fault_at_ = at;
  }
  return false;
}

std::string Scanner::reason() const {
  switch (fault_) {
    case Fault::None:
      return {};
    case Fault::Empty:
      return "nothing but white space";
    case Fault::Utf8:
      return fmt::format("invalid UTF-8 at byte {}", fault_at_);
    case Fault::Depth:
      return fmt::format("more than {} nested containers at byte {}", kMaxDepth, fault_at_);
    case Fault::ControlCharacter:
      return fmt::format("control character U+{:04X} unescaped in a string at byte {}",
                         static_cast<unsigned char>(text_[fault_at_]), fault_at_);
    case Fault::Syntax:
      break;
  }
  if (fault_at_ >= text_.size()) return fmt::format("{} at byte {}, found the end", fault_what_, fault_at_);
  const auto byte = static_cast<unsigned char>(text_[fault_at_]);
  if (byte > 0x20 && byte < 0x7F)
    return fmt::format("{} at byte {}, found '{}'", fault_what_, fault_at_, static_cast<char>(byte));
  return fmt::format("{} at byte {}, found 0x{:02X}", fault_what_, fault_at_, byte);
}

bool Scanner::begin() {
  if (failed()) return false;
  if (text_.substr(0, 3) == "\xEF\xBB\xBF") position_ = 3;
  skipWhiteSpace();
  if (position_ >= text_.size()) return fail(Fault::Empty, "nothing but white space", position_);
  return true;
}

bool Scanner::end() {
  if (failed()) return false;
  skipWhiteSpace();
  if (position_ != text_.size()) return fail(Fault::Syntax, "more after the JSON value", position_);
  return true;
}

bool Scanner::skipValue() {
  Kind kind{};
  if (!peek(kind)) return false;
  std::string_view ignored;
  switch (kind) {
    case Kind::Object:
      if (!enterObject()) return false;
      while (nextMember(ignored))
        if (!skipValue()) return false;
      return !failed();
    case Kind::Array:
      if (!enterArray()) return false;
      while (nextElement())
        if (!skipValue()) return false;
      return !failed();
    case Kind::String:
      return scanString();
    case Kind::Number:
      return scanNumber();
    case Kind::True:
      return scanLiteral("true");
    case Kind::False:
      return scanLiteral("false");
    case Kind::Null:
      return scanLiteral("null");
  }
  return false;
}

bool Scanner::scanString() {
  const char* const data = text_.data();
  const std::size_t size = text_.size();
  std::size_t at = position_ + 1;  // past the opening quote
  for (;;) {
    while (size - at >= 8) {
      std::uint64_t word;
      std::memcpy(&word, data + at, sizeof word);
      if (hasStringSpecial(word)) break;
      at += 8;
    }
    while (at < size && kPlainStringByte[static_cast<unsigned char>(data[at])]) ++at;
    if (at >= size) return fail(Fault::Syntax, "a string does not end", position_);
    const auto byte = static_cast<unsigned char>(data[at]);
    if (byte == '"') {
      position_ = at + 1;
      return true;
    }
    if (byte == '\\') {
      if (!scanEscape(at)) return false;
    } else if (byte < 0x20) {
      return fail(Fault::ControlCharacter, "", at);
    } else {
      const std::size_t length = utf8SequenceLength(reinterpret_cast<const unsigned char*>(data + at), size - at);
      if (length == 0) return fail(Fault::Utf8, "invalid UTF-8", at);
      at += length;
    }
  }
}

// At a backslash inside a string: one of \" \\ \/ \b \f \n \r \t \uXXXX. Any
// \uXXXX is JSON, a lone surrogate too (RFC 8259 section 8.2).
bool Scanner::scanEscape(std::size_t& at) {
  if (at + 1 >= text_.size()) return fail(Fault::Syntax, "a string does not end", position_);
  switch (text_[at + 1]) {
    case '"':
    case '\\':
    case '/':
    case 'b':
    case 'f':
    case 'n':
    case 'r':
    case 't':
      at += 2;
      return true;
    case 'u':
      for (std::size_t i = 2; i < 6; ++i)
        if (at + i >= text_.size() || hexValue(text_[at + i]) < 0)
          return fail(Fault::Syntax, "\\u needs four hex digits", at);
      at += 6;
      return true;
    default:
      return fail(Fault::Syntax, "invalid escape", at);
  }
}

// -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? — the grammar only:
// the value is never computed, so no size or precision is refused.
bool Scanner::scanNumber() {
  const std::size_t size = text_.size();
  std::size_t at = position_;
  const auto digits = [&] {
    const std::size_t first = at;
    while (at < size && isDigit(text_[at])) ++at;
    return at > first;
  };
  if (text_[at] == '-') ++at;
  if (at < size && text_[at] == '0') {
    ++at;
  } else if (!digits()) {
    return fail(Fault::Syntax, "a number needs a digit", at);
  }
  if (at < size && text_[at] == '.') {
    ++at;
    if (!digits()) return fail(Fault::Syntax, "a number needs a digit after '.'", at);
  }
  if (at < size && (text_[at] == 'e' || text_[at] == 'E')) {
    ++at;
    if (at < size && (text_[at] == '+' || text_[at] == '-')) ++at;
    if (!digits()) return fail(Fault::Syntax, "a number needs a digit in its exponent", at);
  }
  position_ = at;
  return true;
}

bool Scanner::scanLiteral(std::string_view word) {
  if (text_.substr(position_, word.size()) != word) return fail(Fault::Syntax, "expected a value", position_);
  position_ += word.size();
  return true;
}

std::string decode(std::string_view raw) {
  if (raw.find('\\') == std::string_view::npos) return std::string(raw);
  std::string out;
  decodeInto(raw, out);
  return out;
}

void decodeInto(std::string_view raw, std::string& out) {
  out.reserve(out.size() + raw.size());
  decodePieces(raw, [&](std::string_view piece) {
    out += piece;
    return true;
  });
}

bool equals(std::string_view raw, std::string_view text) {
  // Every escape is longer than what it decodes to: a raw string as long as
  // `text` matches only byte for byte and without an escape, a shorter one
  // never. Most names the relay compares are decided here by their length.
  if (raw.size() <= text.size()) return raw == text && raw.find('\\') == std::string_view::npos;
  if (raw.find('\\') == std::string_view::npos) return false;
  std::size_t matched = 0;
  const bool same = decodePieces(raw, [&](std::string_view piece) {
    if (text.substr(matched, piece.size()) != piece) return false;
    matched += piece.size();
    return true;
  });
  return same && matched == text.size();
}

bool isValid(std::string_view text) {
  Scanner scanner(text);
  return scanner.begin() && scanner.skipValue() && scanner.end();
}

}  // namespace mews::json
