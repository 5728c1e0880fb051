// The key table keeps its promise: every key the config takes (keyTable(),
// what `check-config --keys` prints) is documented in the sample config and
// in the README's configuration table.
#include <doctest/doctest.h>

#include <algorithm>
#include <regex>
#include <sstream>

#include "config/config.h"
#include "support/test_support.h"

using namespace mews;

namespace {

std::string regexEscaped(const std::string& text) {
  return std::regex_replace(text, std::regex(R"([.^$|()\[\]{}*+?\\])"), R"(\$&)");
}

// The key as a line of the INI text: `name = ...` (header.NAME: any header name)
// inside its section ([target.NAME]: any target's section), or commented out
// (`; name = ...`) for a key the sample cannot set beside another (journal url
// and path).
bool inSample(const config::KeyDoc& key, const std::string& ini) {
  const std::string name =
      key.name == "header.NAME" ? std::string(R"(header\.[A-Za-z0-9_-]+)") : regexEscaped(key.name);
  const std::regex key_line("^(; *)?" + name + R"(\s*=)");
  const std::regex section_line(key.section == "target.NAME" ? std::string(R"(^\[target\.[^\]]+\]\s*$)")
                                                             : R"(^\[)" + regexEscaped(key.section) + R"(\]\s*$)");
  std::istringstream lines(ini);
  bool inside = false;
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty() && line.front() == '[') inside = std::regex_match(line, section_line);
    if (inside && std::regex_search(line, key_line)) return true;
  }
  return false;
}

// The key as a row of the README's table: `| section | key |`.
bool inReadme(const config::KeyDoc& key, const std::string& readme) {
  return readme.find("| " + key.section + " | " + key.name + " |") != std::string::npos;
}

// The README row's "changed by" cell (`reload` or `restart`), or "" without a row.
std::string readmeChangedBy(const config::KeyDoc& key, const std::string& readme) {
  const std::string start = "| " + key.section + " | " + key.name + " |";
  const auto at = readme.find(start);
  if (at == std::string::npos) return "";
  const std::string row = readme.substr(at, readme.find('\n', at) - at);
  // Cells end at a '|' that no backslash escapes (the type may hold `\|`).
  std::vector<std::string> cells;
  std::string cell;
  for (std::size_t i = 1; i < row.size(); ++i) {
    if (row[i] == '|' && row[i - 1] != '\\') {
      const auto first = cell.find_first_not_of(' ');
      const auto last = cell.find_last_not_of(' ');
      cells.push_back(first == std::string::npos ? "" : cell.substr(first, last - first + 1));
      cell.clear();
    } else {
      cell += row[i];
    }
  }
  return cells.size() > 4 ? cells[4] : "";
}

// "[section] key (sample|README)" for every key a document misses.
std::vector<std::string> undocumented(const std::vector<config::KeyDoc>& keys, const std::string& ini,
                                      const std::string& readme) {
  std::vector<std::string> missing;
  for (const auto& key : keys) {
    if (!inSample(key, ini)) missing.push_back("[" + key.section + "] " + key.name + " (examples/mews-relay.ini)");
    if (!inReadme(key, readme)) missing.push_back("[" + key.section + "] " + key.name + " (README.md)");
  }
  return missing;
}

const std::string kSample = test::readFile(MEWS_SOURCE_DIR "/examples/mews-relay.ini");
const std::string kReadme = test::readFile(MEWS_SOURCE_DIR "/README.md");

}  // namespace

TEST_CASE("every key in the table is in examples/mews-relay.ini and in the README") {
  const auto keys = config::keyTable();
  REQUIRE(keys.size() > 20);
  const auto missing = undocumented(keys, kSample, kReadme);
  for (const auto& entry : missing) MESSAGE("undocumented: " << entry);
  CHECK(missing.empty());
}

TEST_CASE("the check finds a key one document lost") {
  const auto keys = config::keyTable();
  std::string sample = kSample;
  sample.replace(sample.find("max_age      = 3d"), 3, ";ma");  // commented out
  std::string readme = kReadme;
  readme.replace(readme.find("| journal | min_free |"), 22, "| journal | min-free |");
  const auto missing = undocumented(keys, sample, readme);
  CHECK(missing ==
        std::vector<std::string>{"[journal] min_free (README.md)", "[target.NAME] max_age (examples/mews-relay.ini)"});
  // A key under another section does not count for this one.
  std::string moved = kSample;
  moved.replace(moved.find("workers   = 8"), 0, "[elsewhere]\n");
  CHECK(undocumented(keys, moved, kReadme) == std::vector<std::string>{"[delivery] workers (examples/mews-relay.ini)"});
}

TEST_CASE("the README's \"changed by\" column is the table's restart flag") {
  const auto keys = config::keyTable();
  int restart = 0;
  for (const auto& key : keys) {
    CAPTURE(key.section);
    CAPTURE(key.name);
    CHECK(readmeChangedBy(key, kReadme) == (key.restart ? "restart" : "reload"));
    CHECK(config::restartOnly(key.section, key.name) == key.restart);
    restart += key.restart ? 1 : 0;
  }
  CHECK(restart == 21);  // listeners, their limits, TLS, the console's sign-in, the journal, the workers, the relay's name, unready_before_stop
  // A row that says otherwise is found.
  const std::string was = "| delivery | workers | count 1..256 | 8 | restart |";
  std::string readme = kReadme;
  readme.replace(readme.find(was), was.size(), "| delivery | workers | count 1..256 | 8 | reload |");
  const auto workers = std::find_if(keys.begin(), keys.end(), [](const auto& k) { return k.name == "workers"; });
  REQUIRE(workers != keys.end());
  CHECK(readmeChangedBy(*workers, readme) == "reload");
}
