// The built binary (MEWS_RELAY_BINARY) running `serve` as a child process, for
// the tests that need what only a real process has: signals (SIGHUP reload,
// SIGTERM), its own journal lock, its log on stderr. The ports it bound are read
// from its "serving" log line (the config listens on 127.0.0.1:0).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace Poco {
class ProcessHandle;
class Pipe;
}  // namespace Poco

namespace mews::test {

class RelayProcess {
 public:
  // Starts `mews-relay -c CONFIG serve` and waits (at most 15 s) until it serves.
  // Throws std::runtime_error with its log when it exits or never serves.
  explicit RelayProcess(const std::string& config_path);
  // SIGTERM, then SIGKILL after 20 s.
  ~RelayProcess();
  RelayProcess(const RelayProcess&) = delete;
  RelayProcess& operator=(const RelayProcess&) = delete;

  [[nodiscard]] std::uint16_t ingestPort() const { return ingest_port_; }
  [[nodiscard]] std::uint16_t adminPort() const { return admin_port_; }
  [[nodiscard]] long pid() const;

  void signal(int signal_number) const;
  // SIGTERM and the exit status (-1 when it had to be killed after 20 s).
  int stop();

  // Everything it wrote to stderr so far.
  [[nodiscard]] std::string log() const;
  [[nodiscard]] std::size_t logSize() const;
  // Waits until `needle` appears in the log after byte `from`; false on timeout.
  bool waitForLog(const std::string& needle, std::chrono::milliseconds timeout, std::size_t from = 0) const;

 private:
  std::unique_ptr<Poco::Pipe> err_pipe_;
  std::unique_ptr<Poco::ProcessHandle> handle_;
  std::thread reader_;
  mutable std::mutex mutex_;
  std::string log_;
  std::uint16_t ingest_port_ = 0;
  std::uint16_t admin_port_ = 0;
  bool stopped_ = false;
  int exit_ = -1;
};

}  // namespace mews::test
