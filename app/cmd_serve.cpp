// `serve`: runs the relay until SIGINT or SIGTERM, then shuts down cleanly.
#include <fmt/format.h>
#include <pthread.h>
#include <csignal>

#include "cli.h"
#include "common/log.h"
#include "config/config.h"
#include "relay/relay.h"

namespace mews::cli {
namespace {

int runServe(const GlobalOptions& options, const std::vector<std::string>& args) {
  expectNoArguments(args);
  // Block the stop signals before any thread starts, so every thread inherits
  // the mask and only sigwait() below receives them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  // A client that disconnects mid-response must not kill the process.
  std::signal(SIGPIPE, SIG_IGN);

  config::Settings settings = config::loadSettings(options.config_path);
  relay::Relay relay(std::move(settings));
  relay.start();

  int received = 0;
  sigwait(&stop_signals, &received);
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
          "SIGINT or SIGTERM stops accepting, finishes requests in progress and exits 0.\n\n"
          "example:\n  MEWS_RELAY_TOKEN=... mews-relay -c /etc/mews-relay/mews-relay.ini serve\n",
          runServe};
}

}  // namespace mews::cli
