#include "support/operator_fixture.h"

#include <Poco/Pipe.h>
#include <Poco/PipeStream.h>
#include <Poco/Process.h>
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <mutex>

#include "config/config.h"
#include "relay/relay.h"

namespace mews::test {

using namespace std::chrono_literals;

CommandRun runCommand(const std::string& config, const std::vector<std::string>& args, const std::string& input,
                      const std::vector<std::string>& as_user) {
  std::string program = MEWS_RELAY_BINARY;
  std::vector<std::string> argv;
  if (!as_user.empty()) {
    program = as_user.front();
    argv.assign(as_user.begin() + 1, as_user.end());
    argv.push_back(MEWS_RELAY_BINARY);
  }
  argv.insert(argv.end(), {"-c", config});
  argv.insert(argv.end(), args.begin(), args.end());
  Poco::Pipe in_pipe, out_pipe, err_pipe;
  auto handle = Poco::Process::launch(program, argv, &in_pipe, &out_pipe, &err_pipe);
  {
    Poco::PipeOutputStream in(in_pipe);
    in << input;
  }
  in_pipe.close(Poco::Pipe::CLOSE_WRITE);
  // stderr on its own thread: a command that writes much to both cannot block.
  CommandRun result;
  std::thread err_reader([&] {
    Poco::PipeInputStream err(err_pipe);
    result.err.assign(std::istreambuf_iterator<char>(err), {});
  });
  Poco::PipeInputStream out(out_pipe);
  result.out.assign(std::istreambuf_iterator<char>(out), {});
  err_reader.join();
  result.exit = handle.wait();
  return result;
}

struct ServeProcess::State {
  mutable std::mutex mutex;
  std::string log;
  std::unique_ptr<Poco::ProcessHandle> handle;
};

ServeProcess::ServeProcess(const std::string& config, const std::string& journal)
    : state_(std::make_shared<State>()), journal_(journal) {
  Poco::Pipe err_pipe;
  state_->handle = std::make_unique<Poco::ProcessHandle>(
      Poco::Process::launch(MEWS_RELAY_BINARY, {"-c", config, "serve"}, nullptr, nullptr, &err_pipe));
  reader_ = std::thread([state = state_, err_pipe]() mutable {
    Poco::PipeInputStream err(err_pipe);
    std::string line;
    while (std::getline(err, line)) {
      const std::lock_guard lock(state->mutex);
      state->log += line + "\n";
    }
  });
}

ServeProcess::~ServeProcess() {
  stop();
}

bool ServeProcess::waitServing(std::chrono::milliseconds timeout) const {
  return waitUntil(
      [&] {
        const std::lock_guard lock(state_->mutex);
        return state_->log.find("msg=serving") != std::string::npos;
      },
      timeout);
}

int ServeProcess::stop() {
  if (stopped_) return exit_;
  stopped_ = true;
  Poco::Process::requestTermination(state_->handle->id());
  exit_ = state_->handle->wait();
  reader_.join();
  return exit_;
}

std::string ServeProcess::log() const {
  const std::lock_guard lock(state_->mutex);
  return state_->log;
}

OperatorFixture::OperatorFixture(SinkResponse refusal, const std::string& target_extra, const std::string& first_body) {
  sink.setScript([this, refusal](const SinkRequest&, std::size_t) { return refuse ? refusal : SinkResponse{}; });
  writeFile(config, fmt::format("[server]\nlisten = 127.0.0.1:0\ntokens = {}\n[admin]\nlisten = 127.0.0.1:0\n"
                                "[journal]\n{}\nmin_free = 0B\n"
                                "[target.pms]\nurl = {}\nbackoff = 10ms..50ms\nmax_attempts = 1\n{}",
                                kToken, journalKey(journal), sink.url(), target_extra));
  auto relay = startRelay();
  // One after the other, so that dead letter 1 is batch 1's and 2 is batch 2's.
  const std::string first = first_body.empty() ? sample("general.json") : first_body;
  if (httpRequest(relay->ingestPort(), "POST", kIngestUri, first).status != 202)
    throw std::runtime_error("fixture: first batch not accepted");
  if (!waitUntil([&] { return deadLetters() == 1; }, 5s)) throw std::runtime_error("fixture: no first dead letter");
  if (httpRequest(relay->ingestPort(), "POST", kIngestUri, sample("integration.json")).status != 202)
    throw std::runtime_error("fixture: second batch not accepted");
  if (!waitUntil([&] { return deadLetters() == 2; }, 5s)) throw std::runtime_error("fixture: no second dead letter");
}

std::unique_ptr<relay::Relay> OperatorFixture::startRelay() const {
  auto relay = std::make_unique<relay::Relay>(config::loadSettings(config));
  relay->start();
  return relay;
}

std::int64_t OperatorFixture::deadLetters() const {
  return queryInt(journal, "SELECT count(*) FROM dead_letters");
}

std::string OperatorFixture::credential() const {
  std::ifstream in(journal + ".admin");
  std::string value;
  std::getline(in, value);
  return value;
}

}  // namespace mews::test
