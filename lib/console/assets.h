// The console's static files (lib/console/assets/*), embedded into the binary
// at build time by cmake/EmbedFiles.cmake: the box may have no
// internet, so there is no CDN, no build toolchain and no file to install.
#pragma once

#include <string_view>
#include <vector>

namespace mews::console {

struct Asset {
  std::string_view name;  // file name, served at /console/static/NAME
  std::string_view content_type;
  std::string_view body;
};

const std::vector<Asset>& consoleAssets();

}  // namespace mews::console
