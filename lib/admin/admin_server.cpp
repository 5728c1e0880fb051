#include "admin/admin_server.h"

#include <Poco/Exception.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerConnection.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/URI.h>

#include <fmt/format.h>
#include <sys/socket.h>
#include <algorithm>
#include <atomic>
#include <mutex>

#include "auth/credential.h"
#include "auth/request_guard.h"
#include "common/form.h"
#include "common/json.h"
#include "common/log.h"
#include "common/text.h"
#include "http/head_gate.h"
#include "http/server_socket.h"
#include "journal/requests.h"

namespace mews::admin {

struct AdminServer::Shared {
  Shared(const config::Settings& s, journal::JournalWriter& w, const Clock& c, std::string cred,
         std::function<void()> requeued, std::function<std::string()> metrics_page,
         std::shared_ptr<console::Console> con)
      : settings(s),
        writer(w),
        clock(c),
        credential(std::move(cred)),
        on_requeued(std::move(requeued)),
        render_metrics(std::move(metrics_page)),
        console(std::move(con)) {}
  config::Settings settings;
  journal::JournalWriter& writer;
  const Clock& clock;
  std::string credential;
  std::function<void()> on_requeued;
  std::function<std::string()> render_metrics;
  auth::HostRule host_rule;  // the bound address and port: set once bound, before the first request
  std::shared_ptr<console::Console> console;
  std::atomic<bool> stopping{false};
  std::function<std::optional<std::string>()> ready_warning;
  mutable std::mutex targets_mutex;
  std::vector<std::string> targets;  // of the running configuration (a reload changes them)

  [[nodiscard]] std::vector<std::string> targetNames() const {
    const std::lock_guard lock(targets_mutex);
    return targets;
  }
};

namespace {

using Poco::Net::HTTPResponse;
using Query = form::Pairs;

std::string errorJson(std::string_view reason) {
  return std::move(json::Writer().beginObject().field("error", reason).endObject()).text();
}

std::string countJson(std::int64_t count) {
  return std::move(json::Writer().beginObject().field("count", count).endObject()).text();
}

// Who may use a route, on top of the Host rule every request passes.
enum class Access {
  Anyone,    // health and metrics
  Operator,  // the CLI's API: no Origin, the operator's credential
};

class AdminHandler final : public Poco::Net::HTTPRequestHandler {
 public:
  explicit AdminHandler(std::shared_ptr<AdminServer::Shared> shared) : shared_(std::move(shared)) {}

  void handleRequest(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response) override {
    const std::string path = request.getURI().substr(0, request.getURI().find('?'));
    Poco::URI uri;
    Query query;
    try {
      uri = Poco::URI(request.getURI());
      // Poco refuses a bad percent-escape here, which form::parseUrlEncoded
      // (made for browsers' forms) would keep as it is.
      (void)uri.getQueryParameters();
      query = form::parseUrlEncoded(uri.getRawQuery());
    } catch (const Poco::SyntaxException&) {
      // A bad percent-escape, say: the client's mistake, whoever the client is.
      return send(response, HTTPResponse::HTTP_BAD_REQUEST, errorJson("malformed request target"));
    }
    try {
      // The console has its own sign-in, CSRF, Origin and Host rules (console/console.h).
      if (shared_->console && console::Console::owns(uri.getPath())) return shared_->console->handle(request, response);
      route(request, response, uri.getPath(), query);
    } catch (const std::invalid_argument& e) {
      send(response, HTTPResponse::HTTP_BAD_REQUEST, errorJson(e.what()));
    } catch (const std::exception& e) {
      log::error("admin", "request failed", {{"path", path}, {"error", e.what()}});
      send(response, HTTPResponse::HTTP_INTERNAL_SERVER_ERROR, errorJson(e.what()));
    }
  }

 private:
  using Handle = void (AdminHandler::*)(Poco::Net::HTTPServerResponse&, const Query&) const;
  struct Route {
    std::string_view method;  // GET routes answer HEAD too
    std::string_view path;
    Access access;
    Handle handle;
  };

  static const std::vector<Route>& routes() {
    static const std::vector<Route> table{
        {"GET", "/healthz", Access::Anyone, &AdminHandler::healthz},
        {"GET", "/readyz", Access::Anyone, &AdminHandler::readyz},
        {"GET", "/metrics", Access::Anyone, &AdminHandler::metrics},
        {"POST", "/admin/replay", Access::Operator, &AdminHandler::replay},
        {"POST", "/admin/purge", Access::Operator, &AdminHandler::purge},
    };
    return table;
  }

  void route(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response, const std::string& path,
             const Query& query) const {
    const auto found = std::find_if(routes().begin(), routes().end(), [&](const Route& r) { return r.path == path; });
    // A browser always sends a Host; a supervisor's HTTP/1.0 probe may not, and
    // may read health and metrics without one. The operator's API wants one.
    const bool probe = !request.has("Host") && (found == routes().end() || found->access == Access::Anyone);
    if (!probe && !auth::hostAllowed(request.get("Host", ""), shared_->host_rule))
      return refuse(request, response, path, HTTPResponse::HTTP_MISDIRECTED_REQUEST,
                    "the Host header does not name this listener");
    if (found == routes().end()) return send(response, HTTPResponse::HTTP_NOT_FOUND, errorJson("no such endpoint"));
    if (found->access == Access::Operator) {
      if (request.has("Origin"))
        return refuse(request, response, path, HTTPResponse::HTTP_FORBIDDEN,
                      "the admin API does not answer browsers (the request carries an Origin)");
      if (!auth::credentialMatches(request.get("Authorization", ""), shared_->credential)) {
        response.set("WWW-Authenticate", "Bearer");
        return refuse(request, response, path, HTTPResponse::HTTP_UNAUTHORIZED,
                      "the operator's credential is required: Authorization: Bearer <the content of " +
                          auth::credentialPath(shared_->settings.journal.path) + ">");
      }
    }
    const std::string& method = request.getMethod();
    if (method != found->method && !(found->method == "GET" && method == "HEAD")) {
      response.set("Allow", std::string(found->method));
      return send(response, HTTPResponse::HTTP_METHOD_NOT_ALLOWED,
                  errorJson(fmt::format("{} takes {}", path, found->method)));
    }
    (this->*found->handle)(response, query);
  }

  // The presented Host, Origin or credential stay out of the log: the path,
  // who asked and why it was refused are enough to act on.
  static void refuse(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response,
                     const std::string& path, HTTPResponse::HTTPStatus status, const std::string& reason) {
    log::warn("admin", "request refused",
              {{"status", std::to_string(static_cast<int>(status))},
               {"method", request.getMethod()},
               {"path", path},
               {"remote", request.clientAddress().toString()},
               {"reason", reason}});
    send(response, status, errorJson(reason));
  }

  static void send(Poco::Net::HTTPServerResponse& response, HTTPResponse::HTTPStatus status, const std::string& body) {
    response.setStatusAndReason(status);
    response.setContentType("application/json");
    response.sendBuffer(body.data(), body.size());
  }

  void healthz(Poco::Net::HTTPServerResponse& response, const Query&) const {
    send(response, HTTPResponse::HTTP_OK, R"({"status":"ok"})");
  }

  void metrics(Poco::Net::HTTPServerResponse& response, const Query&) const {
    const std::string page = shared_->render_metrics();
    response.setStatusAndReason(HTTPResponse::HTTP_OK);
    response.setContentType("text/plain; version=0.0.4; charset=utf-8");
    response.sendBuffer(page.data(), page.size());
  }

  void readyz(Poco::Net::HTTPServerResponse& response, const Query&) const {
    auto notReady = [](std::string_view reason) {
      return std::move(json::Writer().beginObject().field("status", "not ready").field("reason", reason).endObject())
          .text();
    };
    if (shared_->stopping) return send(response, HTTPResponse::HTTP_SERVICE_UNAVAILABLE, notReady("stopping"));
    // One small write through the writer: it fails exactly when an ingest write
    // would (free disk below min_free, disk full, I/O error, journal
    // unavailable), with that reason.
    const std::int64_t now = shared_->clock.wallMillis();
    auto probe = shared_->writer.submit([now](journal::Journal& journal) {
      journal.recordReadyProbe(now);
      return std::int64_t{0};
    });
    if (probe.wait_for(std::chrono::seconds(2)) != std::future_status::ready)
      return send(response, HTTPResponse::HTTP_SERVICE_UNAVAILABLE, notReady("journal commit is taking too long"));
    const auto outcome = probe.get();
    if (!outcome.committed()) return send(response, HTTPResponse::HTTP_SERVICE_UNAVAILABLE, notReady(outcome.error));
    if (const auto warning = shared_->ready_warning ? shared_->ready_warning() : std::nullopt)
      return send(
          response, HTTPResponse::HTTP_OK,
          std::move(json::Writer().beginObject().field("status", "ready").field("warning", *warning).endObject())
              .text());
    send(response, HTTPResponse::HTTP_OK, R"({"status":"ready"})");
  }

  // A request that cannot be read is a RequestError: 400 (handleRequest).
  void replay(Poco::Net::HTTPServerResponse& response, const Query& query) const {
    const journal::ReplayRequest request = journal::decodeReplay(query);
    if (const auto refused = journal::refusalByTargets(request, shared_->targetNames(), kRunning))
      return send(response, HTTPResponse::HTTP_CONFLICT, errorJson(*refused));
    const std::int64_t now = shared_->clock.wallMillis();
    auto unknown = std::make_shared<std::vector<std::int64_t>>();
    const auto outcome = shared_->writer
                             .submit([request, unknown, now](journal::Journal& journal) {
                               auto result = journal::apply(journal, request, now);
                               *unknown = std::move(result.unknown);  // a job may run twice (journal/writer.h)
                               return result.count;
                             })
                             .get();
    if (!outcome.committed()) return send(response, HTTPResponse::HTTP_SERVICE_UNAVAILABLE, errorJson(outcome.error));
    // Named dead letters are all or nothing: an unknown id refused the whole request.
    if (!unknown->empty())
      return send(response, HTTPResponse::HTTP_NOT_FOUND,
                  std::move(json::Writer()
                                .beginObject()
                                .field("error", "no dead letter with id " + text::joinList(*unknown))
                                .field("unknown", *unknown)
                                .endObject())
                      .text());
    if (!request.dry_run && outcome.value > 0 && shared_->on_requeued) shared_->on_requeued();
    send(response, HTTPResponse::HTTP_OK, countJson(outcome.value));
  }

  void purge(Poco::Net::HTTPServerResponse& response, const Query& query) const {
    const journal::PurgeRequest request = journal::decodePurge(query);
    if (const auto refused = journal::refusalByTargets(request, shared_->targetNames(), kRunning))
      return send(response, HTTPResponse::HTTP_CONFLICT, errorJson(*refused));
    const auto outcome = shared_->writer
                             .submit([request, now = shared_->clock.wallMillis()](journal::Journal& journal) {
                               return journal::apply(journal, request, now);
                             })
                             .get();
    if (!outcome.committed()) return send(response, HTTPResponse::HTTP_SERVICE_UNAVAILABLE, errorJson(outcome.error));
    send(response, HTTPResponse::HTTP_OK, countJson(outcome.value));
  }

  static constexpr const char* kRunning = "in the running configuration";

  std::shared_ptr<AdminServer::Shared> shared_;
};

class AdminFactory final : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  explicit AdminFactory(std::shared_ptr<AdminServer::Shared> shared) : shared_(std::move(shared)) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest&) override {
    return new AdminHandler(shared_);
  }

 private:
  std::shared_ptr<AdminServer::Shared> shared_;
};

// The admin listener's threads: health, metrics, the console and the CLI are
// small requests; whole heads queue for them, at most kQueued.
constexpr int kWorkers = 4;
constexpr std::size_t kQueued = 64;
constexpr std::size_t kMaxWaitingHeads = 256;
constexpr std::chrono::milliseconds kHeadTimeout{10'000};
// A request body up to this waits in the gate with its head (a sign-in form, an
// operator's request): a trickled body cannot hold one of the kWorkers either.
constexpr std::size_t kWholeBodyUpTo = 64 * 1024;

// More whole requests than the queue holds (on the gate's thread: never blocks).
void refuseBusy(Poco::Net::StreamSocket& socket) {
  const std::string body = errorJson("too many requests at once; retry");
  const std::string answer = fmt::format(
      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\nRetry-After: "
      "1\r\nConnection: close\r\n\r\n{}",
      body.size(), body);
  (void)::send(socket.impl()->sockfd(), answer.data(), answer.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  log::warn("admin", "request refused", {{"status", "503"}, {"reason", "too many requests at once"}});
}

}  // namespace

AdminServer::AdminServer(const config::Settings& settings, journal::JournalWriter& writer, const Clock& clock,
                         std::string credential, std::function<void()> on_requeued,
                         std::function<std::string()> render_metrics, std::shared_ptr<console::Console> console)
    : shared_(std::make_shared<Shared>(settings, writer, clock, std::move(credential), std::move(on_requeued),
                                       std::move(render_metrics), std::move(console))) {
  for (const auto& target : settings.targets) shared_->targets.push_back(target.name);
  const Poco::Net::SocketAddress address(settings.admin.listen);
  host_ = address.host().toString();
  tls_ = !settings.admin.tls_certificate.empty();
  Poco::Net::ServerSocket socket = http::serverSocket(settings.admin.tls_certificate, settings.admin.tls_private_key);
  socket.bind(address, true, false);  // never SO_REUSEPORT (see ingest/server.cpp)
  socket.listen(64);
  port_ = socket.address().port();  // not TCPServer::port(): see ingest/server.cpp
  shared_->host_rule.listen_host = host_;
  shared_->host_rule.port = port_;
  Poco::Net::HTTPServerParams::Ptr params = new Poco::Net::HTTPServerParams;
  params->setMaxThreads(kWorkers);
  params->setKeepAlive(false);
  params->setTimeout(Poco::Timespan(std::chrono::duration_cast<std::chrono::microseconds>(kHeadTimeout).count()));
  if (tls_) {
    // TLS: the head cannot be seen before the handshake, which needs a thread.
    server_ = std::make_unique<Poco::Net::HTTPServer>(new AdminFactory(shared_), socket, params);
    return;
  }
  // Plain: a thread only for a whole head (ingest/head_gate.h), so clients
  // that trickle bytes cannot hold the workers that /readyz and the CLI need.
  workers_ = std::make_unique<http::WorkerPool>(kWorkers, kQueued);
  http::HeadGate::Limits limits;
  limits.head_timeout = kHeadTimeout;
  limits.idle_timeout = kHeadTimeout;
  limits.max_waiting = kMaxWaitingHeads;
  limits.whole_body_up_to = kWholeBodyUpTo;
  http::HeadGate::Events events;
  events.head_expired = [](const std::string& remote) {
    log::warn("admin", "request refused",
              {{"status", "408"}, {"remote", remote}, {"reason", "request head not received in time"}});
  };
  events.head_refused = [](const std::string& remote, const std::string& reason) {
    log::warn("admin", "request refused", {{"status", "400"}, {"remote", remote}, {"reason", reason}});
  };
  Poco::Net::HTTPRequestHandlerFactory::Ptr factory = new AdminFactory(shared_);
  events.ready = [this, params, factory](std::shared_ptr<http::GateConnection> connection) {
    const bool queued = workers_->post([params, factory, connection] {
      try {
        Poco::Net::HTTPServerConnection(connection->socket, params, factory).run();
      } catch (const Poco::Exception& e) {
        // A reset or a read timeout mid-request (Poco's HTTPServer drops these too).
        log::debug("admin", "connection ended", {{"error", e.displayText()}});
      }
    });
    if (!queued) refuseBusy(connection->socket);
  };
  gate_ = std::make_unique<http::HeadGate>(std::move(socket), limits, std::move(events));
}

AdminServer::~AdminServer() {
  stop();
}

void AdminServer::start() {
  if (gate_) gate_->start();
  if (server_) server_->start();
}

void AdminServer::stop() {
  if (stopped_) return;
  stopped_ = true;
  if (server_) server_->stopAll(false);
  if (gate_) gate_->stop();
  if (workers_) workers_->stop();
}

void AdminServer::setReadyWarning(std::function<std::optional<std::string>()> warning) {
  shared_->ready_warning = std::move(warning);
}

void AdminServer::sayStopping() {
  shared_->stopping = true;
}

void AdminServer::setTargets(std::vector<std::string> names) {
  const std::lock_guard lock(shared_->targets_mutex);
  shared_->targets = std::move(names);
}

std::string AdminServer::address() const {
  const bool v6 = host_.find(':') != std::string::npos;
  const bool wildcard = host_ == "0.0.0.0" || host_ == "::";
  const std::string host = wildcard ? (v6 ? "::1" : "127.0.0.1") : host_;
  return v6 ? fmt::format("[{}]:{}", host, port_) : fmt::format("{}:{}", host, port_);
}

}  // namespace mews::admin
