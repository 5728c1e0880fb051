#include "ingest/server.h"

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/ThreadPool.h>
#include <Poco/Timespan.h>
#include <fmt/format.h>

#include "common/json.h"
#include "common/log.h"
#include "delivery/routing.h"
#include "ingest/payload.h"
#include "ingest/token.h"

namespace mews::ingest {

using Poco::Net::HTTPResponse;

struct IngestServer::Shared {
  Shared(const config::Settings& s, journal::JournalWriter& w, const Clock& c, std::function<void()> on_commit)
      : settings(s), writer(w), clock(c), tokens(s.server.tokens), on_committed(std::move(on_commit)) {}
  config::Settings settings;
  journal::JournalWriter& writer;
  const Clock& clock;
  TokenSet tokens;
  std::function<void()> on_committed;
  IngestCounters counters;
};

namespace {

// The request path without its query string: the only form that is logged.
std::string_view pathOnly(const std::string& uri) {
  const auto question = uri.find('?');
  return std::string_view(uri).substr(0, question);
}

class IngestHandler final : public Poco::Net::HTTPRequestHandler {
 public:
  explicit IngestHandler(std::shared_ptr<IngestServer::Shared> shared) : shared_(std::move(shared)) {}

  void handleRequest(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response) override {
    const auto started = std::chrono::steady_clock::now();
    Outcome outcome;
    try {
      outcome = handle(request, response);
    } catch (const Poco::TimeoutException&) {
      response.setKeepAlive(false);
      outcome =
          reject(request, response, HTTPResponse::HTTP_REQUEST_TIMEOUT, "body not received in time", Body::Consumed);
    } catch (const Poco::Net::NetException& e) {
      // The client went away mid-request: nothing was stored, nobody to answer.
      log::warn("ingest", "connection failed", {{"remote", remote(request)}, {"error", e.displayText()}});
      shared_->counters.rejected.fetch_add(1, std::memory_order_relaxed);
      return;
    } catch (const std::exception& e) {
      log::error("ingest", "request failed", {{"error", e.what()}});
      response.setKeepAlive(false);
      outcome = reject(request, response, HTTPResponse::HTTP_INTERNAL_SERVER_ERROR, "internal error; nothing stored",
                       Body::Consumed);
    }
    const auto micros =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started).count();
    const std::string status = std::to_string(static_cast<int>(outcome.status));
    const std::string duration_us = std::to_string(micros);
    // Fields are only built when the line is written: at high rates with
    // --log-level warn the accepted path costs no formatting at all.
    if (outcome.status == HTTPResponse::HTTP_ACCEPTED) {
      if (log::enabled(log::Level::Info))
        log::info("ingest", "batch accepted",
                  {{"status", status},
                   {"path", std::string(pathOnly(request.getURI()))},
                   {"remote", remote(request)},
                   {"batch", std::to_string(outcome.batch_id)},
                   {"events", std::to_string(outcome.events)},
                   {"duration_us", duration_us}});
    } else {
      log::warn("ingest", "request rejected",
                {{"status", status},
                 {"method", request.getMethod()},
                 {"path", std::string(pathOnly(request.getURI()))},
                 {"remote", remote(request)},
                 {"reason", outcome.reason},
                 {"duration_us", duration_us}});
    }
  }

 private:
  struct Outcome {
    HTTPResponse::HTTPStatus status = HTTPResponse::HTTP_INTERNAL_SERVER_ERROR;
    std::int64_t batch_id = 0;
    std::size_t events = 0;
    std::string reason;
  };

  static std::string remote(const Poco::Net::HTTPServerRequest& request) { return request.clientAddress().toString(); }

  // What is left of the request body when we answer early.
  enum class Body { Consumed, Unread };

  Outcome reject(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response,
                 HTTPResponse::HTTPStatus status, std::string reason, Body body) {
    shared_->counters.rejected.fetch_add(1, std::memory_order_relaxed);
    if (status == HTTPResponse::HTTP_SERVICE_UNAVAILABLE) response.set("Retry-After", "5");
    if (status == HTTPResponse::HTTP_METHOD_NOT_ALLOWED) response.set("Allow", "POST");
    // An unread body must not be parsed as the next request: close the connection.
    if (body == Body::Unread) response.setKeepAlive(false);
    send(response, status, fmt::format(R"({{"error":{}}})", json::quote(reason)));
    if (body == Body::Unread) drainBriefly(request);
    return {status, 0, 0, std::move(reason)};
  }

  // Closing a socket with unread input makes the kernel send a reset, which can
  // destroy the answer before the client reads it (most clients read only after
  // sending). Like nginx's lingering close: read and discard a bounded amount
  // for a bounded time first. A client that announced far more than max_body
  // is not waited for.
  void drainBriefly(Poco::Net::HTTPServerRequest& request) const {
    const std::uint64_t max_body = shared_->settings.server.max_body;
    if (request.hasContentLength() && static_cast<std::uint64_t>(request.getContentLength64()) > 2 * max_body) return;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    std::uint64_t budget = 2 * max_body;
    char buffer[16384];
    try {
      std::istream& stream = request.stream();
      while (stream && budget > 0 && std::chrono::steady_clock::now() < deadline) {
        stream.read(buffer, sizeof buffer);
        budget -= std::min<std::uint64_t>(budget, static_cast<std::uint64_t>(stream.gcount()));
      }
    } catch (const std::exception&) {
      // The client gave up first; the answer was already sent.
    }
  }

  static void send(Poco::Net::HTTPServerResponse& response, HTTPResponse::HTTPStatus status, const std::string& body) {
    response.setStatus(status);
    response.setContentType("application/json");
    response.sendBuffer(body.data(), body.size());
  }

  Outcome handle(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response) {
    const config::ServerSettings& server = shared_->settings.server;
    const std::string& uri = request.getURI();
    const std::string_view path = pathOnly(uri);
    // A body we will not read must not be parsed as the next request.
    const Body unread =
        (request.hasContentLength() ? request.getContentLength64() > 0 : request.getChunkedTransferEncoding())
            ? Body::Unread
            : Body::Consumed;
    if (path != server.path) return reject(request, response, HTTPResponse::HTTP_NOT_FOUND, "no such path", unread);
    if (request.getMethod() != Poco::Net::HTTPRequest::HTTP_POST)
      return reject(request, response, HTTPResponse::HTTP_METHOD_NOT_ALLOWED, "only POST is accepted", unread);
    const std::string_view query = path.size() < uri.size() ? std::string_view(uri).substr(path.size() + 1) : "";
    const std::string token = queryParameter(query, "token");
    if (token.empty()) return reject(request, response, HTTPResponse::HTTP_UNAUTHORIZED, "token missing", unread);
    if (!shared_->tokens.accepts(token))
      return reject(request, response, HTTPResponse::HTTP_UNAUTHORIZED, "token not accepted", unread);
    if (request.hasContentLength() && request.getContentLength64() > static_cast<Poco::Int64>(server.max_body))
      return reject(request, response, HTTPResponse::HTTP_REQUEST_ENTITY_TOO_LARGE,
                    fmt::format("body is larger than max_body ({} bytes)", server.max_body), unread);

    journal::IncomingBatch batch;
    if (!readBody(request, server.max_body, batch.body))
      return reject(request, response, HTTPResponse::HTTP_REQUEST_ENTITY_TOO_LARGE,
                    fmt::format("body is larger than max_body ({} bytes)", server.max_body), Body::Unread);
    auto parsed = parseBatch(batch.body);
    if (!parsed.ok()) return reject(request, response, HTTPResponse::HTTP_BAD_REQUEST, parsed.error(), Body::Consumed);

    batch.received_at_ms = shared_->clock.wallMillis();
    batch.content_type = request.getContentType();
    batch.summary = std::move(std::get<0>(parsed.result));
    batch.deliveries = delivery::planDeliveries(batch.summary, shared_->settings.targets);
    const std::size_t event_count = batch.summary.events.size();

    auto shared_batch = std::make_shared<journal::IncomingBatch>(std::move(batch));
    auto future = shared_->writer.submit(
        [shared_batch](journal::Journal& journal) { return journal.insertBatch(*shared_batch); });
    if (future.wait_for(kCommitWait) != std::future_status::ready)
      return reject(request, response, HTTPResponse::HTTP_SERVICE_UNAVAILABLE, "journal commit is taking too long",
                    Body::Consumed);
    const journal::WriteOutcome outcome = future.get();
    if (!outcome.committed())
      return reject(request, response, HTTPResponse::HTTP_SERVICE_UNAVAILABLE, outcome.error, Body::Consumed);

    // The ack. Reached only with a committed outcome: the batch is on disk.
    shared_->counters.accepted.fetch_add(1, std::memory_order_relaxed);
    shared_->counters.events.fetch_add(event_count, std::memory_order_relaxed);
    if (shared_->on_committed && !shared_batch->deliveries.empty()) shared_->on_committed();
    send(response, HTTPResponse::HTTP_ACCEPTED,
         fmt::format(R"({{"batch":{},"events":{}}})", outcome.value, event_count));
    return {HTTPResponse::HTTP_ACCEPTED, outcome.value, event_count, {}};
  }

  // Reads at most max_body bytes; false when the body is longer (chunked, or a
  // Content-Length that lied).
  static bool readBody(Poco::Net::HTTPServerRequest& request, std::uint64_t max_body, std::string& body) {
    std::istream& stream = request.stream();
    if (request.hasContentLength()) body.reserve(static_cast<std::size_t>(request.getContentLength64()));
    char buffer[16384];
    while (stream) {
      stream.read(buffer, sizeof buffer);
      const auto got = static_cast<std::size_t>(stream.gcount());
      if (body.size() + got > max_body) return false;
      body.append(buffer, got);
    }
    return true;
  }

  std::shared_ptr<IngestServer::Shared> shared_;
};

class HandlerFactory final : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  explicit HandlerFactory(std::shared_ptr<IngestServer::Shared> shared) : shared_(std::move(shared)) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest&) override {
    return new IngestHandler(shared_);
  }

 private:
  std::shared_ptr<IngestServer::Shared> shared_;
};

}  // namespace

IngestServer::IngestServer(const config::Settings& settings, journal::JournalWriter& writer, const Clock& clock,
                           std::function<void()> on_committed)
    : shared_(std::make_shared<Shared>(settings, writer, clock, std::move(on_committed))) {
  const int max_connections = settings.server.max_connections;
  // One pooled thread per open connection (Poco's model): the pool is the cap on
  // concurrent connections; a few more wait in the accept queue.
  pool_ = std::make_unique<Poco::ThreadPool>(2, max_connections, 60);
  Poco::Net::ServerSocket socket;
  socket.bind(Poco::Net::SocketAddress(settings.server.listen), true);
  socket.listen(1024);
  // Read the bound port here, from our own socket: TCPServer::port() is an
  // inline accessor whose member offsets differ in a TSan build of this code
  // against Debian's uninstrumented Poco.
  port_ = socket.address().port();
  auto* params = new Poco::Net::HTTPServerParams;
  params->setMaxThreads(max_connections);
  params->setMaxQueued(64);
  params->setKeepAlive(true);
  params->setKeepAliveTimeout(Poco::Timespan(15, 0));
  params->setMaxKeepAliveRequests(10000);
  params->setTimeout(Poco::Timespan(10, 0));
  params->setServerName("mews-relay");
  server_ = std::make_unique<Poco::Net::HTTPServer>(new HandlerFactory(shared_), *pool_, socket, params);
}

IngestServer::~IngestServer() {
  stop();
}

void IngestServer::start() {
  server_->start();
}

void IngestServer::stop() {
  if (stopped_) return;
  stopped_ = true;
  // Not aborting: each connection closes after the request it is handling.
  server_->stopAll(false);
  pool_->joinAll();
}

std::uint16_t IngestServer::port() const {
  return port_;
}

const IngestCounters& IngestServer::counters() const {
  return shared_->counters;
}

}  // namespace mews::ingest
