// The relay's JSON reader (common/json_scan, as ingest runs it) beside
// simdjson 3 (Debian 12's libsimdjson-dev) on the same bytes: how fast each
// reads a body, and where they disagree about which bodies are JSON. The
// evidence for README "Dependencies"; not part of the product, which never
// links simdjson: scripts/bench-json builds this file with g++ -O2 (the
// relay's RelWithDebInfo level) from json_scan.cpp, payload.cpp and text.cpp.
//
//   json_readers speed RUNS FILE...   per file and reader: best-of-RUNS MB/s
//                                     and CPU ns per body
//   json_readers accept FILE...       the README's acceptance cases, then
//                                     each file: every reader's verdict,
//                                     disagreements marked
//   json_readers utf8                 simdjson's UTF-8 check against
//                                     json_scan's, sequence by sequence
//   MALLOC=glibc json_readers ...     glibc's malloc defaults, not the relay's
//
// Readers:
//   json_scan parseBatch   batch::parseBatch: the validating scan, the
//                          outline of the batch, its summary decoded (what
//                          ingest runs on every POST);
//   json_scan isValid      the scan alone, as json::isValid runs it (with
//                          its reason, for the acceptance table);
//   simdjson dom           dom::parser::parse: simdjson's full validation
//                          (structure, UTF-8, every string and number parsed);
//   simdjson ondemand      every value of the document visited and read
//                          (strings unescaped, numbers parsed), then the end;
//                          on demand, a value never visited is never checked,
//                          so reading all of it is what validation costs;
//   simdjson ondemand raw  the same walk, strings and numbers only located
//                          (below, Read::Raw): the floor of a reader that
//                          would keep simdjson's structural pass and check
//                          strings and numbers itself;
//   simdjson utf8          simdjson::validate_utf8 over the body, nothing else.
//
// simdjson reads past the end of its input (SIMDJSON_PADDING bytes): the
// bodies are copied into padded buffers once, before timing, which is a
// copy the relay would have to make per request and this benchmark does not
// count (in simdjson's favour).
#include <fmt/format.h>
#include <malloc.h>
#include <simdjson.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "common/json_scan.h"
#include "batch/payload.h"

namespace {

// The CPU time of this thread, user and kernel (the page faults of what a
// reader allocates included), in ns: on a machine shared with other work a
// wall clock would also count the time the thread waited for a core.
double threadCpuNs() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) * 1e9 + static_cast<double>(now.tv_nsec);
}

#define MEWS_STRINGIFY(x) MEWS_STRINGIFY_(x)
#define MEWS_STRINGIFY_(x) #x
constexpr const char* kSimdjsonVersion = MEWS_STRINGIFY(SIMDJSON_VERSION);
// The kernel simdjson's inline (on-demand) code was compiled for here; the
// library's builtin_implementation() names the library's own, not this.
constexpr const char* kOndemandKernel = MEWS_STRINGIFY(SIMDJSON_BUILTIN_IMPLEMENTATION);

namespace ondemand = simdjson::ondemand;

// A verdict: empty when the reader accepts, else its short reason.
using Verdict = std::string;

std::string readFile(const char* path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "json_readers: cannot open %s\n", path);
    std::exit(2);
  }
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// simdjson's error as its code's name (shorter than its message, and what
// its documentation lists).
Verdict refusal(simdjson::error_code error) {
  switch (error) {
    case simdjson::SUCCESS:
      return {};
    case simdjson::NUMBER_ERROR:
      return "NUMBER_ERROR";
    case simdjson::STRING_ERROR:
      return "STRING_ERROR";
    case simdjson::TAPE_ERROR:
      return "TAPE_ERROR";
    case simdjson::UTF8_ERROR:
      return "UTF8_ERROR";
    case simdjson::UNESCAPED_CHARS:
      return "UNESCAPED_CHARS";
    case simdjson::DEPTH_ERROR:
      return "DEPTH_ERROR";
    case simdjson::EMPTY:
      return "EMPTY";
    case simdjson::TRAILING_CONTENT:
      return "TRAILING_CONTENT";
    case simdjson::INCOMPLETE_ARRAY_OR_OBJECT:
      return "INCOMPLETE_ARRAY_OR_OBJECT";
    case simdjson::INCORRECT_TYPE:
      return "INCORRECT_TYPE";
    default:
      return simdjson::error_message(error);
  }
}

// ---- simdjson on demand: visit and read every value -------------------------

// How strings and numbers are read. Full: unescaped and parsed, as simdjson
// means them to be (this is where it refuses what RFC 8259 allows). Raw: only
// located (get_raw_json_string, raw_json_token), neither checked nor
// converted: what simdjson's structural pass and UTF-8 check cost alone, the
// least a reader built on them would pay before checking strings and numbers
// itself (escapes, control characters, the number grammar).
enum class Read { Full, Raw };

template <Read read>
simdjson::error_code visit(ondemand::value value);

template <Read read>
simdjson::error_code visitObject(ondemand::object object) {
  for (auto field : object) {
    if constexpr (read == Read::Full) {
      std::string_view name;
      if (auto error = field.unescaped_key().get(name)) return error;
    } else {
      ondemand::raw_json_string name;
      if (auto error = field.key().get(name)) return error;
    }
    if (auto error = visit<read>(field.value())) return error;
  }
  return simdjson::SUCCESS;
}

template <Read read>
simdjson::error_code visitArray(ondemand::array array) {
  for (auto element : array) {
    ondemand::value value;
    if (auto error = element.get(value)) return error;
    if (auto error = visit<read>(value)) return error;
  }
  return simdjson::SUCCESS;
}

// One value of any kind (a value, or the document itself): a container's
// items, a string, a number, a literal.
template <Read read, typename Value>
simdjson::error_code visitAny(Value& value) {
  ondemand::json_type type;
  if (auto error = value.type().get(type)) return error;
  switch (type) {
    case ondemand::json_type::object: {
      ondemand::object object;
      if (auto error = value.get_object().get(object)) return error;
      return visitObject<read>(object);
    }
    case ondemand::json_type::array: {
      ondemand::array array;
      if (auto error = value.get_array().get(array)) return error;
      return visitArray<read>(array);
    }
    case ondemand::json_type::string:
      if constexpr (read == Read::Raw) return value.get_raw_json_string().error();
      return value.get_string().error();
    case ondemand::json_type::number:
      if constexpr (read == Read::Raw) {
        // A view for a value, a result for the document: both as a result.
        std::string_view token;
        return simdjson::simdjson_result<std::string_view>(value.raw_json_token()).get(token);
      }
      return value.get_number().error();
    case ondemand::json_type::boolean:
      return value.get_bool().error();
    case ondemand::json_type::null: {
      bool is_null = false;
      if (auto error = value.is_null().get(is_null)) return error;
      return is_null ? simdjson::SUCCESS : simdjson::INCORRECT_TYPE;
    }
  }
  return simdjson::UNEXPECTED_ERROR;
}

template <Read read>
simdjson::error_code visit(ondemand::value value) {
  return visitAny<read>(value);
}

// The whole document visited, then nothing but white space after it.
template <Read read>
Verdict iterate(ondemand::parser& parser, const simdjson::padded_string& text) {
  ondemand::document document;
  auto error = parser.iterate(text).get(document);
  if (!error) error = visitAny<read>(document);
  // simdjson 3.0.1 has no document::at_end(); a location still in bounds
  // after the root value is content after it.
  const char* rest = nullptr;
  if (!error && !document.current_location().get(rest)) error = simdjson::TRAILING_CONTENT;
  return refusal(error);
}

// ---- the readers, each a function of one body -------------------------------

// A body as each reader takes it: json_scan reads the bytes as received,
// simdjson a padded copy.
struct Body {
  std::string name;
  std::string text;
  simdjson::padded_string padded;
};

struct Reader {
  const char* name;
  std::function<Verdict(const Body&)> read;
};

std::vector<Reader> readers() {
  // One parser each, reused across bodies as a server would: simdjson
  // allocates for the largest body once, not per call.
  static simdjson::dom::parser dom_parser;
  static ondemand::parser ondemand_parser;
  return {
      {"json_scan parseBatch",
       [](const Body& body) -> Verdict {
         const auto parsed = mews::batch::parseBatch(body.text);
         return parsed.ok() ? Verdict{} : parsed.error();
       }},
      {"json_scan isValid",
       [](const Body& body) -> Verdict {
         mews::json::Scanner scanner(body.text);
         if (scanner.begin() && scanner.skipValue() && scanner.end()) return {};
         return scanner.reason();
       }},
      {"simdjson dom",
       [](const Body& body) -> Verdict {
         simdjson::dom::element root;
         return refusal(dom_parser.parse(body.padded).get(root));
       }},
      {"simdjson ondemand",
       [](const Body& body) -> Verdict { return iterate<Read::Full>(ondemand_parser, body.padded); }},
      {"simdjson ondemand raw",
       [](const Body& body) -> Verdict { return iterate<Read::Raw>(ondemand_parser, body.padded); }},
      {"simdjson utf8",
       [](const Body& body) -> Verdict {
         return simdjson::validate_utf8(body.text.data(), body.text.size()) ? Verdict{} : "invalid UTF-8";
       }},
  };
}

// ---- speed ------------------------------------------------------------------

// Page faults this thread has taken so far (minor: pages mapped in, no I/O).
long threadPageFaults() {
  rusage usage{};
  getrusage(RUSAGE_THREAD, &usage);
  return usage.ru_minflt;
}

// Best of `runs` rounds, in CPU time; a round reads the body as many times
// as make about 32 MiB (at least once), so a 2 KB body is read 16k times and
// a 1 MiB one 32. Beside it, the page faults per body in that round: memory
// a reader maps afresh each time instead of reusing.
void speed(int runs, const std::vector<Body>& bodies) {
  // dom runs the kernel simdjson picks at run time for this CPU; on demand
  // is compiled into this program, for the CPU the compiler was told of.
  std::printf("simdjson %s: dom %s (%s), ondemand %s; best of %d rounds\n", kSimdjsonVersion,
              simdjson::get_active_implementation()->name().c_str(),
              simdjson::get_active_implementation()->description().c_str(), kOndemandKernel, runs);
  std::printf("%-22s %-16s %10s %12s %10s %12s\n", "reader", "body", "bytes", "ns/body", "MB/s", "faults/body");
  for (const auto& body : bodies) {
    const std::size_t repeats = std::max<std::size_t>(1, (32u << 20) / body.text.size());
    for (const auto& reader : readers()) {
      if (const Verdict refused = reader.read(body); !refused.empty()) {
        std::printf("%-22s %-16s refused: %s\n", reader.name, body.name.c_str(), refused.c_str());
        continue;
      }
      double best_ns = 1e300;
      double best_faults = 0;
      for (int run = 0; run < runs; ++run) {
        std::size_t refused = 0;
        const long faults_before = threadPageFaults();
        const double started = threadCpuNs();
        for (std::size_t i = 0; i < repeats; ++i) refused += !reader.read(body).empty();
        const double took = threadCpuNs() - started;
        const long faults = threadPageFaults() - faults_before;
        if (refused != 0) std::exit(3);  // also keeps the loop from being optimised away
        if (took / static_cast<double>(repeats) < best_ns) {
          best_ns = took / static_cast<double>(repeats);
          best_faults = static_cast<double>(faults) / static_cast<double>(repeats);
        }
      }
      std::printf("%-22s %-16s %10zu %12.0f %10.0f %12.1f\n", reader.name, body.name.c_str(), body.text.size(), best_ns,
                  static_cast<double>(body.text.size()) * 1e3 / best_ns, best_faults);
    }
  }
}

// ---- acceptance -------------------------------------------------------------

std::string nested(std::size_t depth) {
  return "{\"a\":" + std::string(depth - 1, '[') + std::string(depth - 1, ']') + "}";
}

// README "What is accepted" and "What is refused", each as a body: name, bytes.
std::vector<Body> readmeCases() {
  const std::string general_head =
      R"({"EnterpriseId":"851df8c8-90f2-4c4a-8e01-a4fc46b25178","Events":[{"Discriminator":"ReservationUpdated","Value":{"Id":"r1",)";
  std::vector<std::pair<std::string, std::string>> cases = {
      {"huge integer", general_head + R"("Total":18446744073709551616}}]})"},
      {"negative huge integer", R"({"n":-9223372036854775809})"},
      {"1e-400", general_head + R"("Rate":1e-400}}]})"},
      {"1e400", R"({"n":1e400})"},
      {"12.30 and -0", R"({"a":12.30,"b":-0})"},
      {"40 significant digits", R"({"n":0.1234567890123456789012345678901234567890})"},
      {"lone surrogate \\ud800", general_head + R"("Name":"\ud800"}}]})"},
      {"lone low surrogate \\udc00", R"({"s":"x\udc00y"})"},
      {"surrogates reversed", R"({"s":"\udc00\ud800"})"},
      {"surrogate pair", R"({"s":"\ud83d\ude00"})"},
      {"\\u0000", R"({"s":"a\u0000b"})"},
      {"repeated names", R"({"Events":[],"Events":[{"Discriminator":"A","Value":{}}]})"},
      {"UTF-8 BOM", "\xEF\xBB\xBF{\"a\":1}"},
      {"depth 256", nested(256)},
      {"depth 257", nested(257)},
      {"depth 1025", nested(1025)},
      {"escaped name", R"({"Customer\u0041dded":true})"},
      {"empty", ""},
      {"white space only", " \n"},
      {"not an object", "[1,2]"},
      {"overlong C0 AF", "{\"s\":\"\xC0\xAF\"}"},
      {"UTF-8 surrogate ED A0 80", "{\"s\":\"\xED\xA0\x80\"}"},
      {"past U+10FFFF", "{\"s\":\"\xF4\x90\x80\x80\"}"},
      {"truncated sequence", "{\"s\":\"\xE2\x82\"}"},
      {"raw tab in a string", "{\"s\":\"a\tb\"}"},
      {"01", R"({"n":01})"},
      {"1.", R"({"n":1.})"},
      {".5", R"({"n":.5})"},
      {"+1", R"({"n":+1})"},
      {"NaN", R"({"n":NaN})"},
      {"trailing comma", R"({"a":1,})"},
      {"second value", R"({} {})"},
      {"form feed", "{\f}"},
      {"U+00A0 as space", "{\xC2\xA0}"},
      {"UTF-16 BOM", "\xFE\xFF{}"},
      {"BOM twice", "\xEF\xBB\xBF\xEF\xBB\xBF{}"},
      {"NUL after the value", std::string("{}\0", 3)},
  };
  std::vector<Body> bodies;
  for (auto& [name, text] : cases) bodies.push_back({name, text, simdjson::padded_string(text)});
  return bodies;
}

std::string shown(const Verdict& verdict) {
  if (verdict.empty()) return "accepts";
  const std::size_t cut = verdict.find(" at byte");  // json_scan's where, for brevity
  return "refuses: " + verdict.substr(0, cut);
}

// The readers that decide "is it JSON text" (json_scan's isValid, simdjson's
// dom and on demand) compared; parseBatch is shown, as ingest's answer (it
// refuses JSON that is not an object, by design, beside the rest).
int accept(std::vector<Body> files) {
  auto bodies = readmeCases();
  for (auto& file : files) bodies.push_back(std::move(file));
  const auto all = readers();
  const Reader& ingest = all[0];
  const Reader& scan = all[1];
  const std::vector<const Reader*> others = {&all[2], &all[3], &all[4]};
  // A Markdown table: one row per body, a verdict that differs from
  // json_scan's in bold.
  std::string head = "| body | ingest (parseBatch) | json_scan |";
  for (const Reader* other : others) head += fmt::format(" {} |", other->name);
  std::string rule = "|---|---|---|";
  for (std::size_t i = 0; i < others.size(); ++i) rule += "---|";
  std::printf("%s\n%s\n", head.c_str(), rule.c_str());
  int disagreements = 0;
  for (const auto& body : bodies) {
    const Verdict ours = scan.read(body);
    bool differs = false;
    std::string row = fmt::format("| {} | {} | {} |", body.name, shown(ingest.read(body)), shown(ours));
    for (const Reader* other : others) {
      const Verdict theirs = other->read(body);
      const bool differ = ours.empty() != theirs.empty();
      differs |= differ;
      row += differ ? fmt::format(" **{}** |", shown(theirs)) : fmt::format(" {} |", shown(theirs));
    }
    disagreements += differs;
    std::printf("%s\n", row.c_str());
  }
  std::printf("\n%d of %zu bodies: a simdjson reader's verdict differs from json_scan's\n", disagreements,
              bodies.size());
  return 0;
}

// ---- UTF-8: the one rule both readers share --------------------------------

// simdjson::validate_utf8 against json_scan's UTF-8 rule, byte sequence by
// byte sequence: every sequence of one to three bytes, and every four-byte
// one led by F0..FF. Bytes JSON itself gives a meaning to inside a string
// (controls, '"', '\\') are left out, so what json_scan answers for
// "\"" + bytes + "\"" is its UTF-8 verdict alone. Prints the count checked
// and the first differences (none expected: both follow RFC 3629).
int utf8() {
  std::vector<unsigned char> plain;
  for (int byte = 0x20; byte <= 0xFF; ++byte)
    if (byte != '"' && byte != '\\') plain.push_back(static_cast<unsigned char>(byte));
  std::vector<unsigned char> lead4;
  for (int byte = 0xF0; byte <= 0xFF; ++byte) lead4.push_back(static_cast<unsigned char>(byte));

  std::size_t checked = 0;
  std::size_t differences = 0;
  std::string text;
  const auto check = [&](const unsigned char* bytes, std::size_t length) {
    text.assign(1, '"');
    text.append(reinterpret_cast<const char*>(bytes), length);
    text.push_back('"');
    const bool ours = mews::json::isValid(text);
    const bool theirs = simdjson::validate_utf8(text.data(), text.size());
    ++checked;
    if (ours != theirs && ++differences <= 20) {
      std::printf("differs:");
      for (std::size_t i = 0; i < length; ++i) std::printf(" %02X", bytes[i]);
      std::printf(" (json_scan %s, simdjson %s)\n", ours ? "accepts" : "refuses", theirs ? "accepts" : "refuses");
    }
  };
  unsigned char b[4];
  for (unsigned char b0 : plain) {
    b[0] = b0;
    check(b, 1);
    for (unsigned char b1 : plain) {
      b[1] = b1;
      check(b, 2);
      for (unsigned char b2 : plain) {
        b[2] = b2;
        check(b, 3);
      }
    }
  }
  for (unsigned char b0 : lead4)
    for (unsigned char b1 : plain)
      for (unsigned char b2 : plain)
        for (unsigned char b3 : plain) {
          b[0] = b0, b[1] = b1, b[2] = b2, b[3] = b3;
          check(b, 4);
        }
  std::printf("UTF-8: %zu byte sequences, %zu where simdjson::validate_utf8 and json_scan differ\n", checked,
              differences);
  return differences == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  // The relay's allocator setting (app/main.cpp), so that what ingest runs
  // allocates as it does in the relay. It also fixes glibc's mmap threshold
  // at 128 KiB: a larger block (the outline of a 1 MiB batch) is mapped and
  // unmapped, its pages faulted in, every time. MALLOC=glibc leaves glibc's
  // defaults, to see what that costs.
  const char* malloc_setting = std::getenv("MALLOC");
  const bool relay_malloc = malloc_setting == nullptr || std::string_view(malloc_setting) != "glibc";
  if (relay_malloc) mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
  const std::string_view mode = argc > 1 ? argv[1] : "";
  if (mode == "utf8") return utf8();
  if (mode != "speed" && mode != "accept") {
    std::fprintf(stderr, "usage: json_readers speed RUNS FILE... | json_readers accept FILE... | json_readers utf8\n");
    return 2;
  }
  const int first_file = mode == "speed" ? 3 : 2;
  std::vector<Body> files;
  for (int i = first_file; i < argc; ++i) {
    std::string text = readFile(argv[i]);
    simdjson::padded_string padded(text);
    std::string name = argv[i];
    name = name.substr(name.find_last_of('/') + 1);
    files.push_back({std::move(name), std::move(text), std::move(padded)});
  }
  if (mode == "speed") {
    const int runs = argc > 2 ? std::clamp(std::atoi(argv[2]), 1, 50) : 9;
    std::printf("malloc: %s\n", relay_malloc ? "the relay's (M_TRIM_THRESHOLD 64 MiB)" : "glibc's defaults");
    speed(runs, files);
    return 0;
  }
  return accept(std::move(files));
}
