// `serve`: runs the relay until SIGINT or SIGTERM, then shuts down cleanly;
// SIGHUP re-reads the configuration (see relay.h for what a reload changes).
// SIGHUP never stops it: a reload that fails leaves the running configuration
// as it was (its default action would end the process with 129, which
// systemd's Restart=on-failure does not count as a failure to restart).
#include <fmt/format.h>
#include <pthread.h>
#include <csignal>
#include <sstream>

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
void reload(const GlobalOptions& options, relay::Relay& relay) {
  log::info("relay", "reloading the configuration", {{"file", options.config_path}});
  config::Settings next;
  try {
    next = config::loadSettings(options.config_path);
  } catch (const config::ConfigError& e) {
    std::istringstream lines(e.what());
    for (std::string line; std::getline(lines, line);)
      log::error("relay", "reload refused; the running configuration stays", {{"error", line}});
    return;
  } catch (const std::exception& e) {
    log::error("relay", "reload refused; the running configuration stays", {{"error", e.what()}});
    return;
  }
  try {
    applyLogLevel(options, next);
    relay.reload(next);
  } catch (const std::exception& e) {
    // Not expected (the file validated); the relay keeps serving either way.
    log::error("relay", "reload failed part way; send SIGHUP again or restart", {{"error", e.what()}});
  }
}

// SIGINT or SIGTERM, once one arrives; each SIGHUP meanwhile reloads.
int waitForStopSignal(const GlobalOptions& options, const sigset_t& signals, relay::Relay& relay) {
  for (;;) {
    int received = 0;
    if (sigwait(&signals, &received) != 0) continue;
    if (received != SIGHUP) return received;
    reload(options, relay);
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

  const int received = waitForStopSignal(options, signals, relay);
  log::info("relay", "stopping", {{"signal", received == SIGTERM ? "SIGTERM" : "SIGINT"}});
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
