#include "http/framing.h"

#include <algorithm>
#include <limits>

#include "common/text.h"

namespace mews::http {

namespace {

using text::hexValue;

constexpr std::size_t kMaxSizeLine = 256;        // "<hex>[;extensions]": extensions are never used here
constexpr std::size_t kMaxSizeDigits = 15;       // 2^60: far above any max_body, far below overflow
constexpr std::uint64_t kMaxTrailer = 8 * 1024;  // all trailer lines together

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

// RFC 9110 §5.6.2 tchar.
bool isTokenChar(char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool isToken(std::string_view text) {
  if (text.empty()) return false;
  for (const char c : text)
    if (!isTokenChar(c)) return false;
  return true;
}

// Optional whitespace (SP, HTAB) around a field value is not part of it.
std::string_view trimOws(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

}  // namespace

Parsed<Framing> decideFraming(std::span<const HeaderField> fields, bool http11) {
  std::size_t length_fields = 0;
  std::size_t coding_fields = 0;
  std::string_view length_value;
  std::string_view coding_value;
  for (const auto& [name, value] : fields) {
    // "Transfer-Encoding : chunked" is a field Poco would name
    // "Transfer-Encoding " and a proxy might read as the real one.
    if (!isToken(name)) return {std::string("malformed header field name")};
    if (iequals(name, "Content-Length")) {
      ++length_fields;
      length_value = value;
    } else if (iequals(name, "Transfer-Encoding")) {
      ++coding_fields;
      coding_value = value;
    }
  }
  if (coding_fields > 0) {
    if (length_fields > 0) return {std::string("both Content-Length and Transfer-Encoding")};
    if (!http11) return {std::string("Transfer-Encoding in an HTTP/1.0 request")};
    if (coding_fields > 1 || !iequals(trimOws(coding_value), "chunked"))
      return {std::string("Transfer-Encoding other than chunked")};
    return {Framing{Framing::Kind::Chunked, 0}};
  }
  if (length_fields == 0) return {Framing{}};
  if (length_fields > 1) return {std::string("more than one Content-Length")};
  const std::string_view digits = trimOws(length_value);
  if (digits.empty()) return {std::string("Content-Length is not a number")};
  std::uint64_t length = 0;
  constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  for (const char c : digits) {
    if (c < '0' || c > '9') return {std::string("Content-Length is not a number")};
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (length > (kMax - digit) / 10) return {std::string("Content-Length is out of range")};
    length = length * 10 + digit;
  }
  return {Framing{Framing::Kind::Length, length}};
}

namespace {

// RFC 9110 §5.5: field-vchar, SP, HTAB and obs-text; every other control byte is refused.
bool isFieldValueByte(char c) {
  const auto byte = static_cast<unsigned char>(c);
  return byte == '\t' || (byte >= 0x20 && byte != 0x7f);
}

bool isDigit(char c) {
  return c >= '0' && c <= '9';
}

}  // namespace

std::variant<RawHead, HeadError> readHead(std::string_view head) {
  const auto fail = [](std::string reason, int status = 400) { return HeadError{status, std::move(reason)}; };
  RawHead out;
  bool first = true;
  while (true) {
    const std::size_t lf = head.find('\n');
    if (lf == std::string_view::npos) return fail("request head ended early");
    if (lf == 0 || head[lf - 1] != '\r') return fail("bare LF in the request head");
    const std::string_view line = head.substr(0, lf - 1);
    head.remove_prefix(lf + 1);
    if (line.find('\r') != std::string_view::npos) return fail("bare CR in the request head");
    if (first) {
      first = false;
      const std::size_t sp1 = line.find(' ');
      const std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
      if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
        return fail("malformed request line");
      out.method = line.substr(0, sp1);
      out.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
      out.version = line.substr(sp2 + 1);
      if (!isToken(out.method) || out.target.empty()) return fail("malformed request line");
      for (const char c : out.target)
        if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return fail("malformed request line");
      // HTTP-version = "HTTP" "/" DIGIT "." DIGIT, case-sensitive.
      const std::string_view v = out.version;
      if (v.size() != 8 || v.substr(0, 5) != "HTTP/" || !isDigit(v[5]) || v[6] != '.' || !isDigit(v[7]))
        return fail("malformed HTTP version");
      if (v != "HTTP/1.0" && v != "HTTP/1.1") return fail("HTTP version not supported", 505);
      continue;
    }
    if (line.empty()) break;  // the end of the head
    if (line.front() == ' ' || line.front() == '\t') return fail("folded header line");
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) return fail("header line without a colon");
    const std::string_view name = line.substr(0, colon);
    const std::string_view value = line.substr(colon + 1);
    if (!isToken(name)) return fail("malformed header field name");
    for (const char c : value)
      if (!isFieldValueByte(c)) return fail("control character in a header field value");
    out.fields.emplace_back(name, trimOws(value));
  }
  if (!head.empty()) return fail("bytes after the request head");
  return out;
}

std::uint64_t ChunkedDecoder::wanted() const {
  switch (state_) {
    case State::Data:
      return remaining_;
    case State::Done:
    case State::Failed:
      return 0;
    default:
      return 1;
  }
}

bool ChunkedDecoder::fail(std::string reason) {
  state_ = State::Failed;
  error_ = std::move(reason);
  return false;
}

bool ChunkedDecoder::feed(std::string_view bytes, std::string& out) {
  while (!bytes.empty()) {
    switch (state_) {
      case State::Data: {
        const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, bytes.size()));
        out.append(bytes.substr(0, take));
        bytes.remove_prefix(take);
        remaining_ -= take;
        if (remaining_ == 0) state_ = State::DataCr;
        continue;
      }
      case State::DataCr:
        if (bytes.front() != '\r') return fail("chunk data longer than its size");
        state_ = State::DataLf;
        break;
      case State::DataLf:
        if (bytes.front() != '\n') return fail("chunk data not followed by CRLF");
        state_ = State::SizeLine;
        break;
      case State::SizeLine:
        if (!sizeLineByte(bytes.front())) return false;
        break;
      case State::TrailerLine:
        if (!trailerByte(bytes.front())) return false;
        break;
      case State::Done:
        return fail("bytes after the last chunk");
      case State::Failed:
        return false;
    }
    bytes.remove_prefix(1);
  }
  return true;
}

bool ChunkedDecoder::sizeLineByte(char c) {
  if (line_cr_) {
    if (c != '\n') return fail("CR without LF in a chunk size line");
    line_cr_ = false;
    // chunk-size [ BWS ";" chunk-ext ]: the size is the leading hex digits.
    std::size_t digits = 0;
    while (digits < line_.size() && hexValue(line_[digits]) >= 0) ++digits;
    if (digits == 0) return fail("chunk size is not a hex number");
    if (digits > kMaxSizeDigits) return fail("chunk size is too large");
    const std::string_view rest = trimOws(std::string_view(line_).substr(digits));
    if (!rest.empty() && rest.front() != ';') return fail("chunk size is not a hex number");
    std::uint64_t size = 0;
    for (std::size_t i = 0; i < digits; ++i) size = size * 16 + static_cast<std::uint64_t>(hexValue(line_[i]));
    line_.clear();
    remaining_ = size;
    state_ = size == 0 ? State::TrailerLine : State::Data;
    return true;
  }
  if (c == '\r') {
    line_cr_ = true;
    return true;
  }
  if (c == '\n') return fail("bare LF in a chunk size line");
  if (line_.size() >= kMaxSizeLine) return fail("chunk size line is too long");
  line_.push_back(c);
  return true;
}

bool ChunkedDecoder::trailerByte(char c) {
  if (++trailer_bytes_ > kMaxTrailer) return fail("chunked trailer is too long");
  if (line_cr_) {
    if (c != '\n') return fail("CR without LF in the chunked trailer");
    line_cr_ = false;
    // The empty line ends the body; trailer fields are read and ignored.
    if (line_.empty()) state_ = State::Done;
    line_.clear();
    return true;
  }
  if (c == '\r') {
    line_cr_ = true;
    return true;
  }
  if (c == '\n') return fail("bare LF in the chunked trailer");
  line_.push_back(c);
  return true;
}

}  // namespace mews::http
