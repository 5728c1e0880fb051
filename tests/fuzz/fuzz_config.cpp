// libFuzzer target: any bytes as the INI file. The only acceptable failure is a
// ConfigError (every problem named by file, section and key); any other
// exception or a crash is a bug. What loads must show no secret in check-config.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const auto settings = mews::config::parseSettings(text, "fuzz.ini", mews::config::Secrets::Optional);
    for (const auto& line : settings.effective)
      if (line.key == "tokens")
        for (const auto& token : settings.server.tokens)
          if (line.value.find(token) != std::string::npos) std::abort();
  } catch (const mews::config::ConfigError& e) {
    if (std::string(e.what()).rfind("fuzz.ini: ", 0) != 0) std::abort();  // every line names the file
  }
  return 0;
}
