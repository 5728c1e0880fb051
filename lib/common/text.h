// Text helpers shared by the config, the CLI, the listeners and the JSON
// reader: case folding, comma lists (one way to split and join them), hex
// digits, UTF-8 decoding, and text from outside made safe to print on a
// terminal.
//
// Text from outside is anything the relay did not write itself: a target's
// answer, an error a library or a target produced, an event type or payload
// Mews sent. Printed raw, an ESC or an 8-bit CSI in it would drive the
// operator's terminal (clear it, retitle it, fake output, in some terminals
// answer back). The terminal functions turn every such byte into a visible
// escape; the JSON writer (json.h) escapes the same code points.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mews::text {

// "LocalHost" -> "localhost": for names compared without case (hosts, config
// sections and keys, header names).
std::string lower(std::string_view text);

// "a, b,,c " -> {"a", "b", "c"}: items trimmed, empty items dropped.
std::vector<std::string> splitList(std::string_view text);
// {"a", "b"} -> "a,b"; {1, 2} -> "1,2".
std::string joinList(const std::vector<std::string>& items);
std::string joinList(const std::vector<std::int64_t>& items);

// '0'-'9', 'a'-'f', 'A'-'F' -> 0..15; -1 for any other byte. The one reading
// of a hex digit, for JSON \u escapes, chunk sizes and %XX in a form.
int hexValue(char c);

// The code point of the well-formed UTF-8 sequence at text[pos], advancing
// pos past it; nullopt, advancing pos by one byte, when text[pos] does not
// start one (a stray continuation byte, an overlong form, a surrogate, a
// value above U+10FFFF, a sequence cut short).
std::optional<char32_t> nextCodePoint(std::string_view text, std::size_t& pos);

// `text` as well-formed UTF-8 without NUL: each byte that does not start a
// well-formed sequence, and each NUL, becomes U+FFFD. What a PostgreSQL text
// column can hold (a target's answer may be any bytes).
std::string wellFormedUtf8(std::string_view text);

// True for the code points a terminal may act on: C0 controls, DEL, C1 controls.
constexpr bool isControl(char32_t c) {
  return c < 0x20 || (c >= 0x7f && c <= 0x9f);
}

// `text` for one line of a terminal (a table cell, a field): line breaks and
// tabs as \n \r \t, other C0 controls and DEL as \xHH, C1 controls as \u00HH,
// bytes that are not well-formed UTF-8 as \xHH. A backslash is left as it is:
// the result is for people to read, --json is for exact data.
std::string terminalLine(std::string_view text);
// The same for a block shown whole (a payload): line breaks and tabs stay.
std::string terminalBlock(std::string_view text);

}  // namespace mews::text
