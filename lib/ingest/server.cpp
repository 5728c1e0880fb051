#include "ingest/server.h"

#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServerConnection.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/SecureServerSocket.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/TCPServer.h>
#include <Poco/Net/TCPServerConnectionFactory.h>
#include <Poco/ThreadPool.h>
#include <Poco/Timespan.h>
#include <fmt/format.h>

#include "common/json.h"
#include "common/snapshot.h"
#include "common/log.h"
#include "delivery/routing.h"
#include "ingest/connection_guard.h"
#include "ingest/payload.h"
#include "ingest/resend_guard.h"
#include "ingest/token.h"

namespace mews::ingest {

using Poco::Net::HTTPResponse;

// What a reload replaces: read once per request, which keeps its version to the end.
struct IngestConfig {
  explicit IngestConfig(const config::Settings& s) : settings(s), tokens(s.server.tokens) {}
  config::Settings settings;
  TokenSet tokens;
};

struct IngestServer::Shared {
  Shared(const config::Settings& s, journal::JournalWriter& w, const Clock& c, std::function<void()> on_commit)
      : config(std::make_shared<const IngestConfig>(s)), writer(w), clock(c), on_committed(std::move(on_commit)) {}
  Snapshot<IngestConfig> config;
  journal::JournalWriter& writer;
  const Clock& clock;
  std::function<void()> on_committed;
  IngestMetrics metrics;
  std::unique_ptr<ConnectionGuard> guard;
  std::unique_ptr<ResendGuard> resends;

  void countRejected(Rejection rejection) { metrics.rejected[static_cast<std::size_t>(rejection)].add(); }
};

std::string_view rejectionName(Rejection rejection) {
  static constexpr std::array<std::string_view, kRejectionCount> kNames{
      "not_found", "method_not_allowed", "unauthorized", "too_large",  "malformed",
      "timeout",   "unavailable",        "internal",     "client_gone"};
  return kNames[static_cast<std::size_t>(rejection)];
}

namespace {

// The request path without its query string: the only form that is logged.
std::string_view pathOnly(const std::string& uri) {
  const auto question = uri.find('?');
  return std::string_view(uri).substr(0, question);
}

HTTPResponse::HTTPStatus statusOf(Rejection rejection) {
  switch (rejection) {
    case Rejection::NotFound:
      return HTTPResponse::HTTP_NOT_FOUND;
    case Rejection::MethodNotAllowed:
      return HTTPResponse::HTTP_METHOD_NOT_ALLOWED;
    case Rejection::Unauthorized:
      return HTTPResponse::HTTP_UNAUTHORIZED;
    case Rejection::TooLarge:
      return HTTPResponse::HTTP_REQUEST_ENTITY_TOO_LARGE;
    case Rejection::Malformed:
      return HTTPResponse::HTTP_BAD_REQUEST;
    case Rejection::Timeout:
      return HTTPResponse::HTTP_REQUEST_TIMEOUT;
    case Rejection::Unavailable:
      return HTTPResponse::HTTP_SERVICE_UNAVAILABLE;
    case Rejection::Internal:
    case Rejection::ClientGone:
      break;
  }
  return HTTPResponse::HTTP_INTERNAL_SERVER_ERROR;
}

class IngestHandler final : public Poco::Net::HTTPRequestHandler {
 public:
  explicit IngestHandler(std::shared_ptr<IngestServer::Shared> shared) : shared_(std::move(shared)) {}

  void handleRequest(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response) override {
    const auto started = std::chrono::steady_clock::now();
    ConnectionGuard& guard = *shared_->guard;
    // Every connection of this server is a GuardedConnection, which sets it.
    ConnectionGuard::Entry& entry = *ConnectionGuard::current();
    // The watchdog answered 408 and closed the connection as the head arrived.
    if (!guard.beginBody(entry)) return;
    Outcome outcome;
    try {
      outcome = handle(request, response, entry);
    } catch (const Poco::TimeoutException&) {
      outcome = reject(request, response, Rejection::Timeout, "request not received in time", Body::Unread);
    } catch (const Poco::Net::MessageException& e) {
      // A malformed chunked body: the client is there, the framing is not.
      outcome = reject(request, response, Rejection::Malformed, "malformed body framing: " + e.message(), Body::Unread);
    } catch (const Poco::Exception& e) {
      // The client went away mid-request: nothing was stored, nobody to answer.
      shared_->countRejected(Rejection::ClientGone);
      log::warn("ingest", "connection failed", {{"remote", remote(request)}, {"error", e.displayText()}});
      return;
    } catch (const std::exception& e) {
      log::error("ingest", "request failed", {{"error", e.what()}});
      outcome = reject(request, response, Rejection::Internal, "internal error; nothing stored", Body::Unread);
    }
    guard.endRequest(entry);
    const auto micros =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started).count();
    const std::string status = std::to_string(static_cast<int>(outcome.status));
    const std::string duration_us = std::to_string(micros);
    // Fields are only built when the line is written: at high rates with
    // --log-level warn the accepted path costs no formatting at all.
    if (outcome.status == HTTPResponse::HTTP_ACCEPTED) {
      if (log::enabled(log::Level::Info))
        log::info("ingest", outcome.reason.empty() ? "batch accepted" : outcome.reason,
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

  Outcome reject(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response, Rejection rejection,
                 std::string reason, Body body) {
    shared_->countRejected(rejection);
    const HTTPResponse::HTTPStatus status = statusOf(rejection);
    if (status == HTTPResponse::HTTP_SERVICE_UNAVAILABLE) response.set("Retry-After", "5");
    if (status == HTTPResponse::HTTP_METHOD_NOT_ALLOWED) response.set("Allow", "POST");
    // An unread body must not be parsed as the next request: close the connection.
    if (body == Body::Unread) response.setKeepAlive(false);
    try {
      send(response, status, fmt::format(R"({{"error":{}}})", json::quote(reason)));
      // A slow client is not waited for a second time.
      if (body == Body::Unread && rejection != Rejection::Timeout) drainBriefly(request);
    } catch (const Poco::Exception&) {
      // The client is gone (or its socket was shut down): nobody to answer.
    }
    return {status, 0, 0, std::move(reason)};
  }

  // Closing a socket with unread input makes the kernel send a reset, which can
  // destroy the answer before the client reads it (most clients read only after
  // sending). Like nginx's lingering close: read and discard a bounded amount
  // for a bounded time first. A client that announced far more than max_body
  // is not waited for.
  void drainBriefly(Poco::Net::HTTPServerRequest& request) const {
    const std::uint64_t max_body = shared_->config.get()->settings.server.max_body;
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
    response.setStatusAndReason(status);
    response.setContentType("application/json");
    response.sendBuffer(body.data(), body.size());
  }

  Outcome handle(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response,
                 ConnectionGuard::Entry& entry) {
    // This request's configuration: a reload meanwhile does not change it.
    const std::shared_ptr<const IngestConfig> current = shared_->config.get();
    const config::ServerSettings& server = current->settings.server;
    const std::string& uri = request.getURI();
    const std::string_view path = pathOnly(uri);
    // A body we will not read must not be parsed as the next request.
    const Body unread =
        (request.hasContentLength() ? request.getContentLength64() > 0 : request.getChunkedTransferEncoding())
            ? Body::Unread
            : Body::Consumed;
    if (path != server.path) return reject(request, response, Rejection::NotFound, "no such path", unread);
    if (request.getMethod() != Poco::Net::HTTPRequest::HTTP_POST)
      return reject(request, response, Rejection::MethodNotAllowed, "only POST is accepted", unread);
    const std::string_view query = path.size() < uri.size() ? std::string_view(uri).substr(path.size() + 1) : "";
    const std::string token = queryParameter(query, "token");
    if (token.empty()) return reject(request, response, Rejection::Unauthorized, "token missing", unread);
    if (!current->tokens.accepts(token))
      return reject(request, response, Rejection::Unauthorized, "token not accepted", unread);
    const std::string too_large = fmt::format("body is larger than max_body ({} bytes)", server.max_body);
    if (request.hasContentLength() && request.getContentLength64() > static_cast<Poco::Int64>(server.max_body))
      return reject(request, response, Rejection::TooLarge, too_large, unread);

    journal::IncomingBatch batch;
    switch (readBody(request, entry, server.max_body, batch.body)) {
      case BodyRead::Complete:
        break;
      case BodyRead::TooLarge:
        return reject(request, response, Rejection::TooLarge, too_large, Body::Unread);
      case BodyRead::TooSlow:
        return reject(request, response, Rejection::Timeout,
                      fmt::format("body not received in time (request_timeout {} ms, min_body_rate {} B/s)",
                                  server.request_timeout.count(), server.min_body_rate),
                      Body::Unread);
      case BodyRead::Truncated:
        return reject(request, response, Rejection::Malformed, "body ended before Content-Length", Body::Consumed);
    }
    shared_->guard->endBody(entry);
    auto parsed = parseBatch(batch.body);
    // A body that did not parse may not have been framed right either (Poco ends
    // a chunked body at a malformed chunk length): close rather than read on.
    if (!parsed.ok()) return reject(request, response, Rejection::Malformed, parsed.error(), Body::Unread);

    batch.received_at_ms = shared_->clock.wallMillis();
    batch.content_type = request.getContentType();
    batch.summary = std::move(std::get<0>(parsed.result));
    if (const auto original =
            shared_->resends->originalOf(batch.summary.integration_id, batch.body, batch.received_at_ms)) {
      // Mews's resend of a batch committed after we answered 503: it is in the
      // journal (read back committed), so this is an ack of stored data.
      shared_->metrics.resends.add();
      send(response, HTTPResponse::HTTP_ACCEPTED,
           fmt::format(R"({{"batch":{},"events":{},"resend":true}})", *original, batch.summary.events.size()));
      return {HTTPResponse::HTTP_ACCEPTED, *original, batch.summary.events.size(), "resend recognised; nothing stored"};
    }
    batch.deliveries = delivery::planDeliveries(batch.summary, current->settings.targets);
    const std::size_t event_count = batch.summary.events.size();
    const auto kind = static_cast<std::size_t>(batch.summary.kind);

    auto shared_batch = std::make_shared<journal::IncomingBatch>(std::move(batch));
    auto inserted_id = std::make_shared<std::atomic<std::int64_t>>(0);
    auto future = shared_->writer
                      .submit([shared_batch, inserted_id](journal::Journal& journal) {
                        const std::int64_t id = journal.insertBatch(*shared_batch);
                        inserted_id->store(id);
                        return id;
                      })
                      .share();
#ifdef MEWS_RELAY_UNSAFE_ACK_BEFORE_COMMIT
    // The negative control of scripts/chaos (a CMake option, never in a
    // release): the ack without waiting for the commit. Batches acked this way
    // and queued when the process dies are lost, which the chaos run must see.
    send(response, HTTPResponse::HTTP_ACCEPTED, fmt::format(R"({{"batch":0,"events":{}}})", event_count));
    return {HTTPResponse::HTTP_ACCEPTED, 0, event_count, {}};
#endif
    if (future.wait_for(kCommitWait) != std::future_status::ready) {
      // Queued behind the batch: if it commits after all, Mews's resend is recognised.
      if (shared_->resends->enabled())
        shared_->writer.submit(shared_->resends->lateCommitJob(
            future, inserted_id, shared_batch->body, shared_batch->received_at_ms, shared_->clock.wallMillis()));
      return reject(request, response, Rejection::Unavailable, "journal commit is taking too long", Body::Consumed);
    }
    const journal::WriteOutcome outcome = future.get();
    if (!outcome.committed()) return reject(request, response, Rejection::Unavailable, outcome.error, Body::Consumed);

    // The ack. Reached only with a committed outcome: the batch is on disk.
    shared_->metrics.batches[kind].add();
    shared_->metrics.events[kind].add(event_count);
    if (shared_batch->deliveries.empty()) shared_->metrics.unrouted[kind].add();
    if (shared_->on_committed && !shared_batch->deliveries.empty()) shared_->on_committed();
    send(response, HTTPResponse::HTTP_ACCEPTED,
         fmt::format(R"({{"batch":{},"events":{}}})", outcome.value, event_count));
    return {HTTPResponse::HTTP_ACCEPTED, outcome.value, event_count, {}};
  }

  enum class BodyRead { Complete, TooLarge, TooSlow, Truncated };

  // Reads the body one socket read at a time (std::istream::read would block
  // until its whole buffer is filled), reporting progress to the guard, whose
  // watchdog cuts off a body that stalls or trickles. At most max_body bytes are kept.
  BodyRead readBody(Poco::Net::HTTPServerRequest& request, ConnectionGuard::Entry& entry, std::uint64_t max_body,
                    std::string& body) const {
    const ConnectionGuard& guard = *shared_->guard;
    if (request.hasContentLength()) body.reserve(static_cast<std::size_t>(request.getContentLength64()));
    std::streambuf& source = *request.stream().rdbuf();
    char buffer[16384];
    try {
      while (source.sgetc() != std::char_traits<char>::eof()) {
        const std::streamsize available = std::min<std::streamsize>(source.in_avail(), sizeof buffer);
        const auto got = static_cast<std::size_t>(source.sgetn(buffer, std::max<std::streamsize>(available, 1)));
        if (body.size() + got > max_body) return BodyRead::TooLarge;
        body.append(buffer, got);
        entry.body_bytes.store(body.size(), std::memory_order_relaxed);
        if (guard.tooSlow(entry)) return BodyRead::TooSlow;
      }
    } catch (const Poco::Exception&) {
      // The watchdog shut the read side down, or the client broke off.
      if (guard.tooSlow(entry)) return BodyRead::TooSlow;
      throw;
    }
    if (guard.tooSlow(entry)) return BodyRead::TooSlow;
    if (request.hasContentLength() && body.size() < static_cast<std::uint64_t>(request.getContentLength64()))
      return BodyRead::Truncated;
    return BodyRead::Complete;
  }

  std::shared_ptr<IngestServer::Shared> shared_;
};

class HandlerFactory final : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  explicit HandlerFactory(std::shared_ptr<IngestServer::Shared> shared) : shared_(std::move(shared)) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest&) override {
    return new IngestHandler(shared_);
  }
  // What HTTPServer::stopAll(false) does: connections close after their current request.
  void notifyStopped() { serverStopped(this, false); }

 private:
  std::shared_ptr<IngestServer::Shared> shared_;
};

// Poco's HTTP connection, registered with the ConnectionGuard for its life.
class GuardedConnection final : public Poco::Net::HTTPServerConnection {
 public:
  GuardedConnection(const Poco::Net::StreamSocket& socket, Poco::Net::HTTPServerParams::Ptr params,
                    Poco::Net::HTTPRequestHandlerFactory::Ptr handlers, ConnectionGuard& guard)
      : HTTPServerConnection(socket, std::move(params), std::move(handlers)), guard_(guard) {}

  void run() override {
    const auto entry = guard_.track(socket());
    ConnectionGuard::setCurrent(entry.get());
    try {
      HTTPServerConnection::run();
    } catch (const Poco::Exception& e) {
      // A TLS handshake that failed (plain HTTP on the TLS port), a reset, a
      // socket the watchdog shut down: the connection ends, nothing was stored.
      log::debug("ingest", "connection ended", {{"error", e.displayText()}});
    }
    ConnectionGuard::setCurrent(nullptr);
    guard_.untrack(entry);
  }

 private:
  ConnectionGuard& guard_;
};

class GuardedConnectionFactory final : public Poco::Net::TCPServerConnectionFactory {
 public:
  GuardedConnectionFactory(Poco::Net::HTTPServerParams::Ptr params, Poco::Net::HTTPRequestHandlerFactory::Ptr handlers,
                           ConnectionGuard& guard)
      : params_(std::move(params)), handlers_(std::move(handlers)), guard_(guard) {}
  Poco::Net::TCPServerConnection* createConnection(const Poco::Net::StreamSocket& socket) override {
    return new GuardedConnection(socket, params_, handlers_, guard_);
  }

 private:
  Poco::Net::HTTPServerParams::Ptr params_;
  Poco::Net::HTTPRequestHandlerFactory::Ptr handlers_;
  ConnectionGuard& guard_;
};

// TLS 1.2 at least, no client certificates; a bad key or certificate fails start-up.
Poco::Net::ServerSocket listenerSocket(const config::ServerSettings& server) {
  if (server.tls_certificate.empty()) return Poco::Net::ServerSocket();
  Poco::Net::Context::Ptr context =
      new Poco::Net::Context(Poco::Net::Context::TLS_SERVER_USE, server.tls_private_key, server.tls_certificate, "",
                             Poco::Net::Context::VERIFY_NONE, 9, false, "HIGH:!aNULL:!eNULL:!MD5:!RC4:!3DES");
  context->requireMinimumProtocol(Poco::Net::Context::PROTO_TLSV1_2);
  return Poco::Net::SecureServerSocket(context);
}

}  // namespace

IngestServer::IngestServer(const config::Settings& settings, journal::JournalWriter& writer, const Clock& clock,
                           std::function<void()> on_committed)
    : shared_(std::make_shared<Shared>(settings, writer, clock, std::move(on_committed))) {
  const config::ServerSettings& server = settings.server;
  shared_->resends = std::make_unique<ResendGuard>(settings.journal.path, server.resend_window, clock.wallMillis());
  shared_->guard = std::make_unique<ConnectionGuard>(
      server.request_timeout, server.min_body_rate, !server.tls_certificate.empty(),
      [shared = shared_.get()](const std::string& remote) {
        shared->countRejected(Rejection::Timeout);
        log::warn("ingest", "request rejected",
                  {{"status", "408"}, {"remote", remote}, {"reason", "request head not received in time"}});
      });
  const int max_connections = server.max_connections;
  // One pooled thread per open connection (Poco's model): the pool is the cap on
  // concurrent connections; a few more wait in the accept queue.
  pool_ = std::make_unique<Poco::ThreadPool>(2, max_connections, 60);
  Poco::Net::ServerSocket socket = listenerSocket(server);
  socket.bind(Poco::Net::SocketAddress(server.listen), true);
  socket.listen(1024);
  // Read the bound port here, from our own socket: TCPServer::port() is an
  // inline accessor whose member offsets differ in a TSan build of this code
  // against Debian's uninstrumented Poco.
  port_ = socket.address().port();
  Poco::Net::HTTPServerParams::Ptr params = new Poco::Net::HTTPServerParams;
  params->setMaxThreads(max_connections);
  params->setMaxQueued(64);
  params->setKeepAlive(true);
  // Idle keep-alive connections are closed by Poco before the guard's deadline
  // would answer them 408.
  const auto request_micros = std::chrono::duration_cast<std::chrono::microseconds>(server.request_timeout).count();
  params->setKeepAliveTimeout(Poco::Timespan(request_micros / 2));
  params->setMaxKeepAliveRequests(10000);
  params->setTimeout(Poco::Timespan(request_micros));
  params->setServerName("mews-relay");
  auto* handlers = new HandlerFactory(shared_);
  Poco::Net::HTTPRequestHandlerFactory::Ptr handler_ptr(handlers);
  notify_stopped_ = [handlers] { handlers->notifyStopped(); };
  server_ = std::make_unique<Poco::Net::TCPServer>(new GuardedConnectionFactory(params, handler_ptr, *shared_->guard),
                                                   *pool_, socket, params);
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
  server_->stop();
  notify_stopped_();
  pool_->joinAll();
}

void IngestServer::reconfigure(const config::Settings& settings) {
  shared_->config.set(std::make_shared<const IngestConfig>(settings));
}

std::uint16_t IngestServer::port() const {
  return port_;
}

const IngestMetrics& IngestServer::metrics() const {
  return shared_->metrics;
}

}  // namespace mews::ingest
