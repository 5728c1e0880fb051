// `serve`: runs the relay until SIGINT or SIGTERM, then shuts down cleanly.
// SIGHUP never stops it: until the configuration can be reloaded, it is
// logged and ignored (its default action would end the process with 129,
// which systemd's Restart=on-failure does not count as a failure to restart).
#include <fmt/format.h>
#include <pthread.h>
#include <csignal>

#include "cli.h"
#include "common/log.h"
#include "config/config.h"
#include "relay/relay.h"

namespace mews::cli {
namespace {

// SIGINT or SIGTERM, once one arrives; a SIGHUP meanwhile is logged and waited past.
int waitForStopSignal(const sigset_t& signals) {
  for (;;) {
    int received = 0;
    if (sigwait(&signals, &received) != 0) continue;
    if (received != SIGHUP) return received;
    log::warn("relay", "SIGHUP ignored (reload not supported yet)");
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
  relay::Relay relay(std::move(settings));
  relay.start();

  const int received = waitForStopSignal(signals);
  log::info("relay", "stopping", {{"signal", received == SIGTERM ? "SIGTERM" : "SIGINT"}});
  relay.stop();
  return kExitOk;
}

}  // namespace

Command serveCommand() {
  return {"serve", "run the relay until SIGINT/SIGTERM",
          "usage: mews-relay [-c FILE] serve\n\n"
          "Runs the relay: accepts webhooks on [server] listen, journals each batch\n"
          "before answering 202, and delivers to the configured targets.\n"
          "SIGINT or SIGTERM stops accepting, finishes requests in progress and exits 0.\n"
          "SIGHUP is logged and ignored (reloading the configuration is not supported yet).\n\n"
          "example:\n  MEWS_RELAY_TOKEN=... mews-relay -c /etc/mews-relay/mews-relay.ini serve\n",
          runServe};
}

}  // namespace mews::cli
