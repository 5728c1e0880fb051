// `serve`: runs the relay until SIGINT or SIGTERM, then shuts down cleanly;
// SIGHUP re-reads the configuration (see relay.h for what a reload changes).
// SIGHUP never stops it: a reload that fails leaves the running configuration
// as it was (its default action would end the process with 129, which
// systemd's Restart=on-failure does not count as a failure to restart).
//
// The main thread only waits for signals; a reload runs on a thread of its
// own (Reloader), so a file read that blocks (a `${file:…}` on a hung network
// mount; config.cpp refuses FIFOs and devices, but cannot make every regular
// file fast) never keeps SIGTERM from being handled.
#include <fmt/format.h>
#include <pthread.h>

#include <condition_variable>
#include <csignal>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "cli.h"
#include "common/log.h"
#include "config/config.h"
#include "relay/relay.h"

namespace mews::cli {
namespace {

void applyLogLevel(const GlobalOptions& options, const config::Settings& settings) {
  if (!options.log_level_given) log::setLevel(settings.log.level);
}

// SIGHUP: a file with any error changes nothing; every error is logged.
std::optional<config::Settings> loadForReload(const GlobalOptions& options) {
  log::info("relay", "reloading the configuration", {{"file", options.config_path}});
  try {
    return config::loadSettings(options.config_path);
  } catch (const config::ConfigError& e) {
    std::istringstream lines(e.what());
    for (std::string line; std::getline(lines, line);)
      log::error("relay", "reload refused; the running configuration stays", {{"error", line}});
  } catch (const std::exception& e) {
    log::error("relay", "reload refused; the running configuration stays", {{"error", e.what()}});
  }
  return std::nullopt;
}

void applyReload(const GlobalOptions& options, const config::Settings& next, relay::Relay& relay) {
  try {
    applyLogLevel(options, next);
    relay.reload(next);
  } catch (const std::exception& e) {
    // Not expected (the file validated); the relay keeps serving either way.
    log::error("relay", "reload failed part way; send SIGHUP again or restart", {{"error", e.what()}});
  }
}

// The reload thread. SIGHUPs that arrive while a reload runs make one more
// reload after it (the file as it is then). After stop() no reload is
// applied; a reload still reading its file then is left behind (detached: it
// sees the stop when its read returns and touches nothing), so the stop never
// waits for a read that may not return.
class Reloader {
 public:
  Reloader(GlobalOptions options, relay::Relay& relay)
      : config_path_(options.config_path),
        state_(std::make_shared<State>()),
        thread_([state = state_, options = std::move(options), &relay] { run(*state, options, relay); }) {}
  ~Reloader() { stop(); }
  Reloader(const Reloader&) = delete;
  Reloader& operator=(const Reloader&) = delete;

  // From the signal thread: never waits for a reload.
  void request() {
    {
      const std::lock_guard lock(state_->mutex);
      state_->pending = true;
    }
    state_->wake.notify_one();
  }

  void stop() {
    if (!thread_.joinable()) return;
    bool reading = false;
    {
      const std::lock_guard lock(state_->mutex);
      state_->stopping = true;
      reading = state_->reading;
    }
    state_->wake.notify_one();
    if (!reading) {
      thread_.join();  // waits for a reload being applied, which is quick
      return;
    }
    log::warn("relay", "stopping while a reload still reads the configuration; it will not be applied",
              {{"file", config_path_}});
    thread_.detach();
  }

 private:
  struct State {
    std::mutex mutex;
    std::condition_variable wake;
    bool pending = false;
    bool reading = false;
    bool stopping = false;
  };

  static void run(State& state, const GlobalOptions& options, relay::Relay& relay) {
    std::unique_lock lock(state.mutex);
    for (;;) {
      state.wake.wait(lock, [&] { return state.pending || state.stopping; });
      if (state.stopping) return;
      state.pending = false;
      state.reading = true;
      lock.unlock();
      const auto next = loadForReload(options);
      lock.lock();
      state.reading = false;
      // stop() saw `reading` false only after this point, and then joins:
      // the relay is still there while the reload is applied.
      if (state.stopping) return;
      if (!next) continue;
      lock.unlock();
      applyReload(options, *next, relay);
      lock.lock();
    }
  }

  std::string config_path_;
  std::shared_ptr<State> state_;
  std::thread thread_;
};

// SIGINT or SIGTERM, once one arrives; each SIGHUP meanwhile asks for a reload.
int waitForStopSignal(const sigset_t& signals, Reloader& reloader) {
  for (;;) {
    int received = 0;
    if (sigwait(&signals, &received) != 0) continue;
    if (received != SIGHUP) return received;
    reloader.request();
  }
}

int runServe(const GlobalOptions& options, const std::vector<std::string>& args) {
  expectNoArguments(args);
  // Block the handled signals before any thread starts, so every thread
  // inherits the mask and only sigwait() below receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  // A client that disconnects mid-response must not kill the process.
  std::signal(SIGPIPE, SIG_IGN);

  config::Settings settings = config::loadSettings(options.config_path);
  applyLogLevel(options, settings);
  relay::Relay relay(std::move(settings));
  relay.start();

  Reloader reloader(options, relay);
  const int received = waitForStopSignal(signals, reloader);
  log::info("relay", "stopping", {{"signal", received == SIGTERM ? "SIGTERM" : "SIGINT"}});
  reloader.stop();
  relay.stop();
  return kExitOk;
}

}  // namespace

Command serveCommand() {
  return {"serve", "run the relay until SIGINT/SIGTERM; SIGHUP reloads the config",
          "usage: mews-relay [-c FILE] serve\n\n"
          "Runs the relay: accepts webhooks on [server] listen, journals each batch\n"
          "before answering 202, and delivers to the configured targets.\n"
          "SIGHUP (systemctl reload mews-relay) re-reads FILE: tokens, targets and\n"
          "their settings, retention and the log level change without dropping a\n"
          "connection or an attempt; listeners and the journal need a restart (a\n"
          "warning names them); a file with an error changes nothing and each error\n"
          "is logged. SIGINT or SIGTERM stops accepting, finishes requests in\n"
          "progress and exits 0.\n\n"
          "examples:\n  MEWS_RELAY_TOKEN=... mews-relay -c /etc/mews-relay/mews-relay.ini serve\n"
          "  kill -HUP $(pidof mews-relay)\n",
          runServe};
}

}  // namespace mews::cli
