// The few JSON writing helpers the relay needs (it never re-encodes a body it
// forwards unfiltered: those go byte for byte).
#pragma once

#include <string>
#include <string_view>

namespace mews::json {

// `text` as a JSON string literal, quotes included.
std::string quote(std::string_view text);

}  // namespace mews::json
