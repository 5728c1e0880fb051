#include "support/relay_process.h"

#include <Poco/Exception.h>
#include <Poco/Pipe.h>
#include <Poco/Process.h>
#include <signal.h>

#include <cstdio>
#include <regex>
#include <stdexcept>

#include "support/test_support.h"

namespace mews::test {

RelayProcess::RelayProcess(const std::string& config_path) : err_pipe_(std::make_unique<Poco::Pipe>()) {
  const std::vector<std::string> args{"-c", config_path, "serve"};
  handle_ = std::make_unique<Poco::ProcessHandle>(
      Poco::Process::launch(MEWS_RELAY_BINARY, args, nullptr, nullptr, err_pipe_.get()));
  // Read stderr as it comes so the child never blocks on a full pipe.
  reader_ = std::thread([this] {
    char buffer[4096];
    for (;;) {
      const int got = err_pipe_->readBytes(buffer, sizeof buffer);
      if (got <= 0) return;
      // Also on the test's stderr, like an in-process relay's: the test log is
      // where scripts/test looks for leaked secrets.
      std::fwrite(buffer, 1, static_cast<std::size_t>(got), stderr);
      const std::lock_guard lock(mutex_);
      log_.append(buffer, static_cast<std::size_t>(got));
    }
  });
  const bool serving = waitUntil(
      [&] { return log().find("msg=serving") != std::string::npos || Poco::Process::tryWait(*handle_) != -1; },
      std::chrono::seconds(15));
  std::smatch match;
  const std::string text = log();
  if (!serving || !std::regex_search(text, match, std::regex(R"(msg=serving .*port=(\d+) .*admin=[0-9.]+:(\d+))"))) {
    stop();
    throw std::runtime_error("the relay did not start:\n" + log());
  }
  ingest_port_ = static_cast<std::uint16_t>(std::stoi(match[1]));
  admin_port_ = static_cast<std::uint16_t>(std::stoi(match[2]));
}

RelayProcess::~RelayProcess() {
  try {
    stop();
  } catch (const std::exception&) {
    // Already reaped (it died by a signal and stop() saw it): nothing left to stop.
  }
}

long RelayProcess::pid() const {
  return static_cast<long>(handle_->id());
}

void RelayProcess::signal(int signal_number) const {
  ::kill(static_cast<pid_t>(handle_->id()), signal_number);
}

int RelayProcess::stop() {
  if (stopped_) return exit_;
  stopped_ = true;
  int status = -1;
  try {
    if (Poco::Process::tryWait(*handle_) == -1) signal(SIGTERM);
    const bool exited = waitUntil(
        [&] {
          status = Poco::Process::tryWait(*handle_);
          return status != -1;
        },
        std::chrono::seconds(20));
    if (!exited) {
      Poco::Process::kill(*handle_);
      handle_->wait();
      status = -1;
    }
  } catch (const Poco::Exception&) {
    status = -1;  // reaped already
  }
  exit_ = status;
  if (reader_.joinable()) reader_.join();
  return exit_;
}

std::string RelayProcess::log() const {
  const std::lock_guard lock(mutex_);
  return log_;
}

std::size_t RelayProcess::logSize() const {
  const std::lock_guard lock(mutex_);
  return log_.size();
}

bool RelayProcess::waitForLog(const std::string& needle, std::chrono::milliseconds timeout, std::size_t from) const {
  return waitUntil(
      [&] {
        const std::lock_guard lock(mutex_);
        return log_.size() > from && log_.find(needle, from) != std::string::npos;
      },
      timeout);
}

}  // namespace mews::test
