// The operator's side of the scenario tests: the built binary run as a person
// would run it (optionally as another user, through setpriv), a `serve`
// child process whose log is kept, and a journal with dead letters plus a
// config file for it.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support/sink.h"
#include "support/test_support.h"

namespace mews::relay {
class Relay;
}

namespace mews::test {

struct CommandRun {
  int exit = -1;
  std::string out;
  std::string err;
};

// `mews-relay -c CONFIG ARGS...`; `as_user` (e.g. {"/usr/bin/setpriv", "--reuid=65534", ...})
// is put in front of the binary when given.
CommandRun runCommand(const std::string& config, const std::vector<std::string>& args, const std::string& input = "",
                      const std::vector<std::string>& as_user = {});

// `mews-relay -c CONFIG serve` as a child process; its stderr (the log) is
// collected. The destructor stops it (SIGINT) and waits.
class ServeProcess {
 public:
  ServeProcess(const std::string& config, const std::string& journal);
  ~ServeProcess();
  ServeProcess(const ServeProcess&) = delete;
  ServeProcess& operator=(const ServeProcess&) = delete;
  // Waits until the relay published its admin address; false after `timeout`.
  bool waitServing(std::chrono::milliseconds timeout) const;
  // Stops it and returns its exit code; the log is complete afterwards.
  int stop();
  [[nodiscard]] std::string log() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
  std::string journal_;
  std::thread reader_;
  bool stopped_ = false;
  int exit_ = -1;
};

// A journal with two dead letters (the sink answers every delivery with
// `refusal`) and a config file for it, targets "pms" with `target_extra`.
struct OperatorFixture {
  explicit OperatorFixture(SinkResponse refusal = {400, "", "", "no thanks"}, const std::string& target_extra = "",
                           const std::string& first_body = "");
  std::unique_ptr<relay::Relay> startRelay() const;
  [[nodiscard]] std::int64_t deadLetters() const;
  // What the relay wrote beside the journal for its operators ("" when none).
  [[nodiscard]] std::string credential() const;

  TempDir dir;
  Sink sink;
  std::string journal = dir.file("relay.db");
  std::string config = dir.file("relay.ini");
  std::atomic<bool> refuse{true};
};

}  // namespace mews::test
