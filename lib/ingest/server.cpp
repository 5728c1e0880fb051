#include "ingest/server.h"

#include <Poco/Net/HTTPFixedLengthStream.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerRequestImpl.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/HTTPServerResponseImpl.h>
#include <Poco/Net/HTTPServerSession.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/TCPServer.h>
#include <Poco/Net/TCPServerConnection.h>
#include <Poco/Net/TCPServerConnectionFactory.h>
#include <Poco/ThreadPool.h>
#include <Poco/Timespan.h>
#include <Poco/Timestamp.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "auth/token.h"
#include "batch/payload.h"
#include "batch/routing.h"
#include "common/json.h"
#include "common/log.h"
#include "common/snapshot.h"
#include "http/connection_guard.h"
#include "http/framing.h"
#include "http/head_gate.h"
#include "http/server_socket.h"
#include "ingest/resend_guard.h"
#include "journal/resends.h"

namespace mews::ingest {

// The listener's pieces (lib/http) and the token check (lib/auth), used
// throughout this file.
using auth::queryParameter;
using auth::TokenSet;
using http::ChunkedDecoder;
using http::ConnectionGuard;
using http::decideFraming;
using http::Framing;
using http::GateConnection;
using http::HeaderField;
using http::HeadGate;
using http::RawHead;
using http::readHead;
using http::serverSocket;
using http::WorkerPool;

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
      "not_found",   "method_not_allowed", "unauthorized", "too_large",       "malformed",    "timeout",
      "unavailable", "internal",           "client_gone",  "length_required", "over_capacity"};
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
    case Rejection::OverCapacity:
      return HTTPResponse::HTTP_SERVICE_UNAVAILABLE;
    case Rejection::LengthRequired:
      return HTTPResponse::HTTP_LENGTH_REQUIRED;
    case Rejection::Internal:
    case Rejection::ClientGone:
      break;
  }
  return HTTPResponse::HTTP_INTERNAL_SERVER_ERROR;
}

// Closing a socket with unread input makes the kernel send a reset, which can
// destroy the answer before the client reads it (most clients read only after
// sending). Like nginx's lingering close: end our side, then read and discard
// what the client still sends, at most `budget` bytes for at most a second.
void lingeringClose(Poco::Net::StreamSocket& socket, std::uint64_t budget) {
  try {
    socket.shutdownSend();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    char discard[16384];
    while (budget > 0) {
      const auto left =
          std::chrono::duration_cast<std::chrono::microseconds>(deadline - std::chrono::steady_clock::now()).count();
      if (left <= 0 || !socket.poll(Poco::Timespan(left), Poco::Net::Socket::SELECT_READ)) break;
      const int got = socket.receiveBytes(discard, sizeof discard);
      if (got <= 0) break;
      budget -= std::min<std::uint64_t>(budget, static_cast<std::uint64_t>(got));
    }
  } catch (const Poco::Exception&) {
    // The client is gone, or reset first: the answer was sent.
  }
}

// Reads the next piece of the connection's input, at most min(limit, size)
// bytes and never one more, so whatever follows stays for Poco to read as the
// next request. Blocks until at least one byte arrives; 0 at end of input.
std::size_t readPiece(Poco::Net::HTTPServerSession& session, std::uint64_t limit, char* buffer, std::size_t size) {
  const auto length = static_cast<Poco::Int64>(std::min<std::uint64_t>(limit, size));
  Poco::Net::HTTPFixedLengthStreamBuf source(session, length, std::ios::in);
  if (source.sgetc() == std::char_traits<char>::eof()) return 0;
  // All the stream buffered is taken here: nothing is lost when it is destroyed.
  return static_cast<std::size_t>(source.sgetn(buffer, source.in_avail()));
}

// One request whose head Poco has read: the checks, the body, the commit, the answer.
class IngestHandler {
 public:
  // A handler serves one request with the configuration current when it was
  // made: a reload meanwhile does not change it.
  // `raw`: the head as its bytes said (HeadGate's path), else null (TLS: Poco's
  // fields). `gated`: a lingering close is left to the gate (lingerWanted()).
  IngestHandler(IngestServer::Shared& shared, ConnectionGuard::Entry& entry, Poco::Net::HTTPServerSession& session,
                const RawHead* raw = nullptr, bool gated = false)
      : shared_(shared), current_(shared.config.get()), entry_(entry), session_(session), raw_(raw), gated_(gated) {}

  // The answer was written and the connection must end with a lingering close.
  [[nodiscard]] bool lingerWanted() const { return linger_wanted_; }

  void serve(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response) {
    const auto started = std::chrono::steady_clock::now();
    ConnectionGuard& guard = *shared_.guard;
    // The watchdog answered 408 and closed the connection as the head arrived.
    if (!guard.beginBody(entry_)) return;
    Outcome outcome;
    try {
      outcome = handle(request, response);
    } catch (const Poco::TimeoutException&) {
      outcome = reject(response, Rejection::Timeout, "request not received in time", Body::Unread);
    } catch (const Poco::Exception& e) {
      // The client went away mid-request: nothing was stored, nobody to answer.
      shared_.countRejected(Rejection::ClientGone);
      log::warn("ingest", "connection failed", {{"remote", remote(request)}, {"error", e.displayText()}});
      return;
    } catch (const std::exception& e) {
      log::error("ingest", "request failed", {{"error", e.what()}});
      outcome = reject(response, Rejection::Internal, "internal error; nothing stored", Body::Unread);
    }
    guard.endRequest(entry_);
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

  Outcome reject(Poco::Net::HTTPServerResponse& response, Rejection rejection, std::string reason, Body body) {
    shared_.countRejected(rejection);
    const HTTPResponse::HTTPStatus status = statusOf(rejection);
    if (status == HTTPResponse::HTTP_SERVICE_UNAVAILABLE) response.set("Retry-After", "5");
    if (status == HTTPResponse::HTTP_METHOD_NOT_ALLOWED) response.set("Allow", "POST");
    // Where this body ends is unknown or unread: what follows it must not be
    // parsed as the next request. Close the connection.
    if (body == Body::Unread) response.setKeepAlive(false);
    try {
      send(response, status, fmt::format(R"({{"error":{}}})", json::quote(reason)));
      // A slow client is not waited for a second time.
      if (body == Body::Unread && rejection != Rejection::Timeout) {
        if (gated_)
          linger_wanted_ = true;
        else
          lingeringClose(entry_.socket, 2 * current_->settings.server.max_body);
      }
    } catch (const Poco::Exception&) {
      // The client is gone (or its socket was shut down): nobody to answer.
    }
    return {status, 0, 0, std::move(reason)};
  }

  void send(Poco::Net::HTTPServerResponse& response, HTTPResponse::HTTPStatus status, const std::string& body) {
    // A stopping server serves no next request on this connection.
    if (shared_.guard->stopping()) response.setKeepAlive(false);
    response.setStatusAndReason(status);
    response.setContentType("application/json");
    response.setContentLength64(static_cast<Poco::Int64>(body.size()));
    std::ostream& out = response.send();
    out.write(body.data(), static_cast<std::streamsize>(body.size()));
    // Out now: a lingering close shuts the sending side down next.
    out.flush();
  }

  Outcome handle(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response) {
    const config::ServerSettings& server = current_->settings.server;
    // First where the body ends: until that is known, nothing else about the
    // request can be answered on a connection that stays open.
    // From the raw fields where there are any: Poco's have RFC 2047 encoded words decoded.
    const bool http11 = request.getVersion() == Poco::Net::HTTPMessage::HTTP_1_1;
    const Parsed<Framing> decided =
        raw_ != nullptr ? decideFraming(raw_->fields, http11) : decideFraming(headerFields(request), http11);
    if (!decided.ok()) return reject(response, Rejection::Malformed, decided.error(), Body::Unread);
    const Framing framing = decided.value();
    const std::string& uri = request.getURI();
    const std::string_view path = pathOnly(uri);
    const bool has_body = framing.kind == Framing::Kind::Chunked || framing.length > 0;
    const Body unread = has_body ? Body::Unread : Body::Consumed;
    if (path != server.path) return reject(response, Rejection::NotFound, "no such path", unread);
    if (request.getMethod() != Poco::Net::HTTPRequest::HTTP_POST)
      return reject(response, Rejection::MethodNotAllowed, "only POST is accepted", unread);
    const std::string_view query = path.size() < uri.size() ? std::string_view(uri).substr(path.size() + 1) : "";
    const std::string token = queryParameter(query, "token");
    if (token.empty()) return reject(response, Rejection::Unauthorized, "token missing", unread);
    if (!current_->tokens.accepts(token))
      return reject(response, Rejection::Unauthorized, "token not accepted", unread);
    // RFC 9112 reads such a POST as having no body; a sender that omits the
    // length most likely sent one, which must not become a next request.
    if (framing.kind == Framing::Kind::None)
      return reject(response, Rejection::LengthRequired, "Content-Length or Transfer-Encoding: chunked required",
                    Body::Unread);
    const std::string too_large = fmt::format("body is larger than max_body ({} bytes)", server.max_body);
    if (framing.kind == Framing::Kind::Length && framing.length > server.max_body)
      return reject(response, Rejection::TooLarge, too_large, unread);
    // Only now, with every check passed, is the client asked for its body.
    if (request.getExpectContinue()) response.sendContinue();

    journal::IncomingBatch batch;
    std::string framing_error;
    switch (readBody(framing, batch.body, framing_error)) {
      case BodyRead::Complete:
        break;
      case BodyRead::TooLarge:
        return reject(response, Rejection::TooLarge, too_large, Body::Unread);
      case BodyRead::TooSlow:
        return reject(response, Rejection::Timeout,
                      fmt::format("body not received in time (request_timeout {} ms, min_body_rate {} B/s)",
                                  server.request_timeout.count(), server.min_body_rate),
                      Body::Unread);
      case BodyRead::Truncated:
        return reject(response, Rejection::Malformed,
                      framing.kind == Framing::Kind::Length ? "body ended before Content-Length"
                                                            : "body ended before its last chunk",
                      Body::Unread);
      case BodyRead::Misframed:
        return reject(response, Rejection::Malformed, "malformed chunked body: " + framing_error, Body::Unread);
    }
    shared_.guard->endBody(entry_);
    auto parsed = batch::parseBatch(batch.body);
    // The body was read exactly to its end: the connection may serve the next request.
    if (!parsed.ok()) return reject(response, Rejection::Malformed, parsed.error(), Body::Consumed);

    batch.received_at_ms = shared_.clock.wallMillis();
    batch.content_type = request.getContentType();
    batch.summary = std::move(std::get<0>(parsed.result));
    batch.deliveries = batch::planDeliveries(batch.summary, current_->settings.targets);
    const std::size_t event_count = batch.summary.events.size();
    const auto kind = static_cast<std::size_t>(batch.summary.kind);
    const auto repeat = shared_.resends->mayRepeat(batch.body, batch.received_at_ms);

    auto shared_batch = std::make_shared<journal::IncomingBatch>(std::move(batch));
    // The id of the batch that holds this post: the one inserted, or the
    // late-committed one it repeats (then `resend`).
    auto inserted_id = std::make_shared<std::atomic<std::int64_t>>(0);
    auto resend = std::make_shared<std::atomic<bool>>(false);
    auto future = shared_.writer
                      .submit([shared_batch, inserted_id, resend, repeat](journal::Journal& journal) {
                        // A job may run twice (journal/writer.h): every flag is set anew.
                        std::optional<std::int64_t> original;
                        if (repeat)
                          original = journal::consumeLateCommit(journal, repeat->body_sha256,
                                                                shared_batch->summary.integration_id,
                                                                shared_batch->body, repeat->since_ms);
                        resend->store(original.has_value());
                        const std::int64_t id = original ? *original : journal.insertBatch(*shared_batch);
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
      if (shared_.resends->enabled())
        shared_.writer.submit(shared_.resends->lateCommitJob(future, inserted_id, shared_batch->body,
                                                             shared_batch->received_at_ms, shared_.clock.wallMillis()));
      return reject(response, Rejection::Unavailable, "journal commit is taking too long", Body::Consumed);
    }
    const journal::WriteOutcome outcome = future.get();
    if (!outcome.committed()) return reject(response, Rejection::Unavailable, outcome.error, Body::Consumed);
    if (resend->load()) {
      // Mews's resend of a batch committed after we answered 503: that batch
      // is in the journal, and this commit consumed its late_commits row.
      shared_.metrics.resends.add();
      send(response, HTTPResponse::HTTP_ACCEPTED,
           fmt::format(R"({{"batch":{},"events":{},"resend":true}})", outcome.value, event_count));
      return {HTTPResponse::HTTP_ACCEPTED, outcome.value, event_count, "resend recognised; nothing stored"};
    }

    // The ack. Reached only with a committed outcome: the batch is on disk.
    shared_.metrics.batches[kind].add();
    shared_.metrics.events[kind].add(event_count);
    if (shared_batch->deliveries.empty()) shared_.metrics.unrouted[kind].add();
    if (shared_.on_committed && !shared_batch->deliveries.empty()) shared_.on_committed();
    send(response, HTTPResponse::HTTP_ACCEPTED,
         fmt::format(R"({{"batch":{},"events":{}}})", outcome.value, event_count));
    return {HTTPResponse::HTTP_ACCEPTED, outcome.value, event_count, {}};
  }

  enum class BodyRead { Complete, TooLarge, TooSlow, Truncated, Misframed };

  // The raw header fields, duplicates included (MessageHeader is a multimap).
  static std::vector<HeaderField> headerFields(const Poco::Net::HTTPServerRequest& request) {
    std::vector<HeaderField> fields;
    for (const auto& [name, value] : request) fields.emplace_back(name, value);
    return fields;
  }

  // Reads the body exactly to its end as `framing` delimits it, straight from
  // the connection: not through request.stream(), whose chunked decoder
  // accepts malformed chunks. One socket read at a time, reporting progress to
  // the guard, whose watchdog cuts off a body that stalls or trickles. At most
  // max_body bytes are kept.
  BodyRead readBody(const Framing& framing, std::string& body, std::string& framing_error) const {
    ConnectionGuard::Entry& entry = entry_;
    const ConnectionGuard& guard = *shared_.guard;
    const std::uint64_t max_body = current_->settings.server.max_body;
    const auto ended = [&] { return guard.tooSlow(entry) ? BodyRead::TooSlow : BodyRead::Truncated; };
    char buffer[16384];
    try {
      if (framing.kind == Framing::Kind::Length) {
        body.reserve(framing.length);  // at most max_body: checked before
        while (body.size() < framing.length) {
          const std::size_t got = readPiece(session_, framing.length - body.size(), buffer, sizeof buffer);
          if (got == 0) return ended();
          body.append(buffer, got);
          entry.body_bytes.store(body.size(), std::memory_order_relaxed);
          if (guard.tooSlow(entry)) return BodyRead::TooSlow;
        }
        return BodyRead::Complete;
      }
      ChunkedDecoder decoder;
      while (!decoder.done()) {
        if (body.size() + decoder.chunkRemaining() > max_body) return BodyRead::TooLarge;
        const std::size_t got = readPiece(session_, decoder.wanted(), buffer, sizeof buffer);
        if (got == 0) return ended();
        if (!decoder.feed(std::string_view(buffer, got), body)) {
          framing_error = decoder.error();
          return BodyRead::Misframed;
        }
        entry.body_bytes.store(body.size(), std::memory_order_relaxed);
        if (guard.tooSlow(entry)) return BodyRead::TooSlow;
      }
      return BodyRead::Complete;
    } catch (const Poco::Exception&) {
      // The watchdog shut the read side down, or the client broke off.
      if (guard.tooSlow(entry)) return BodyRead::TooSlow;
      throw;
    }
  }

  IngestServer::Shared& shared_;
  const std::shared_ptr<const IngestConfig> current_;
  ConnectionGuard::Entry& entry_;
  Poco::Net::HTTPServerSession& session_;
  const RawHead* raw_;
  const bool gated_;
  bool linger_wanted_ = false;
};

// An answer written straight to the socket, for a request whose head could
// not be read whole (no request object to answer through); then closed.
std::string plainAnswer(std::string_view status_line, std::string_view reason) {
  const std::string body = fmt::format(R"({{"error":{}}})", json::quote(reason));
  return fmt::format(
      "HTTP/1.1 {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}", status_line,
      body.size(), body);
}

// One connection's life: Poco's HTTPServerConnection::run, with our own
// answers where Poco would answer for us or not at all, and the guard told of
// each phase (connection_guard.h).
class GuardedConnection final : public Poco::Net::TCPServerConnection {
 public:
  GuardedConnection(const Poco::Net::StreamSocket& socket, Poco::Net::HTTPServerParams::Ptr params,
                    std::shared_ptr<IngestServer::Shared> shared)
      : TCPServerConnection(socket), params_(std::move(params)), shared_(std::move(shared)) {}

  void run() override {
    ConnectionGuard& guard = *shared_->guard;
    // Closes the socket when destroyed: after untrack(), so that the watchdog
    // never shuts down a descriptor number the kernel has given to another.
    Poco::Net::HTTPServerSession session(socket(), params_);
    const auto entry = guard.track(socket());
    try {
      serve(session, *entry);
    } catch (const Poco::Exception& e) {
      // A TLS handshake that failed (plain HTTP on the TLS port), a reset, a
      // socket the watchdog shut down: the connection ends, nothing was stored.
      log::debug("ingest", "connection ended", {{"error", e.displayText()}});
    }
    guard.untrack(entry);
  }

 private:
  void serve(Poco::Net::HTTPServerSession& session, ConnectionGuard::Entry& entry) {
    ConnectionGuard& guard = *shared_->guard;
    // hasMoreRequests() waits (Idle) for the first byte of the next request,
    // up to the keep-alive timeout; the guard may close the connection meanwhile.
    while (session.hasMoreRequests() && guard.beginHead(entry)) {
      Poco::Net::HTTPServerResponseImpl response(session);
      std::unique_ptr<Poco::Net::HTTPServerRequestImpl> request;
      try {
        request = std::make_unique<Poco::Net::HTTPServerRequestImpl>(response, session, params_.get());
      } catch (const Poco::Net::NoMessageException&) {
        break;  // the client closed the connection between requests
      } catch (const Poco::Net::MessageException&) {
        // Poco's limits (100 fields, 256-byte names, 8 KiB values) or no HTTP at all.
        refuseHead(entry, "malformed request head");
        break;
      } catch (const Poco::SyntaxException&) {
        // The only number Poco parses in a head: a Content-Length it cannot
        // read (framing.h refuses the ones it can, such as "-1" or "+5").
        refuseHead(entry, "Content-Length is not a number");
        break;
      }
      response.setDate(Poco::Timestamp());
      response.setVersion(request->getVersion());
      response.setKeepAlive(params_->getKeepAlive() && request->getKeepAlive() && session.canKeepAlive());
      response.set("Server", params_->getServerName());
      IngestHandler(*shared_, entry, session).serve(*request, response);
      session.setKeepAlive(params_->getKeepAlive() && response.getKeepAlive() && session.canKeepAlive() &&
                           !guard.stopping());
    }
  }

  // 400 for a head that could not be read: counted and logged like the
  // handler's answers, and the connection closed (a lingering close).
  void refuseHead(ConnectionGuard::Entry& entry, std::string_view reason) {
    // The watchdog answered 408 already when this is false.
    if (!shared_->guard->beginBody(entry)) return;
    shared_->countRejected(Rejection::Malformed);
    std::string remote = "unknown";
    try {
      remote = socket().peerAddress().toString();
      const std::string answer = plainAnswer("400 Bad Request", reason);
      socket().sendBytes(answer.data(), static_cast<int>(answer.size()));
      lingeringClose(socket(), 2 * shared_->config.get()->settings.server.max_body);
    } catch (const Poco::Exception&) {
      // The client is gone: nobody to answer.
    }
    log::warn("ingest", "request rejected", {{"status", "400"}, {"remote", remote}, {"reason", std::string(reason)}});
  }

  Poco::Net::HTTPServerParams::Ptr params_;
  std::shared_ptr<IngestServer::Shared> shared_;
};

// Poco's session, with what it has buffered in view: after a head it must be
// nothing (HeadSocketImpl capped the reads at the head), or the next bytes
// would be read as part of it.
class GatedSession final : public Poco::Net::HTTPServerSession {
 public:
  using HTTPServerSession::HTTPServerSession;
  [[nodiscard]] int bufferedBytes() const { return buffered(); }
};

// One request of a plain-HTTP connection whose head HeadGate saw arrive whole:
// the raw head checked (framing.h readHead), Poco reads exactly that head, the
// handler serves it; then the connection goes back to the gate to wait for its
// next head (keep-alive) or to be closed lingering, never holding this thread.
class GatedRequest {
 public:
  GatedRequest(std::shared_ptr<IngestServer::Shared> shared, Poco::Net::HTTPServerParams::Ptr params, HeadGate& gate,
               std::shared_ptr<GateConnection> connection)
      : shared_(std::move(shared)), params_(std::move(params)), gate_(gate), connection_(std::move(connection)) {}

  void run() {
    ConnectionGuard& guard = *shared_->guard;
    auto session = std::static_pointer_cast<GatedSession>(connection_->state);
    if (!session) {
      // Kept with the connection: destroying it closes the socket.
      session = std::make_shared<GatedSession>(connection_->socket, params_);
      connection_->state = session;
    }
    const auto entry = guard.track(connection_->socket);
    Next next = Next::Close;
    try {
      next = serve(*session, *entry);
      // A keep-alive client (Mews, a proxy, a benchmark) usually sends its
      // next request as soon as it has read the answer: served here, it is
      // spared two thread hand-offs through the gate.
      while (next == Next::KeepAlive && nextHeadArrived()) next = serve(*session, *entry);
    } catch (const Poco::Exception& e) {
      // Wherever the request stopped, the connection cannot serve another.
      next = Next::Close;
      log::debug("ingest", "connection ended", {{"error", e.displayText()}});
    }
    // Before the socket can be closed: the watchdog never shuts down a reused descriptor.
    guard.untrack(entry);
    connection_->impl->unlimit();
    if (next == Next::KeepAlive) gate_.resume(std::move(connection_));
    if (next == Next::Linger) gate_.linger(std::move(connection_));
  }

 private:
  enum class Next { Close, KeepAlive, Linger };

  // Whether a whole next head (of at most kQuickHead bytes) arrives within
  // kQuickWait; it is then connection_->head_size bytes long.
  bool nextHeadArrived() {
    constexpr int kQuickWaitMs = 1;
    constexpr std::size_t kQuickHead = 4096;
    pollfd ready{connection_->impl->sockfd(), POLLIN, 0};
    if (::poll(&ready, 1, kQuickWaitMs) != 1 || (ready.revents & POLLIN) == 0) return false;
    char bytes[kQuickHead];
    const ssize_t got = ::recv(ready.fd, bytes, sizeof bytes, MSG_PEEK | MSG_DONTWAIT);
    if (got <= 0) return false;
    const std::size_t end = http::headEnd(std::string_view(bytes, static_cast<std::size_t>(got)));
    if (end == 0) return false;  // the gate waits for the rest, with the deadline
    connection_->head_size = end;
    return true;
  }

  Next serve(GatedSession& session, ConnectionGuard::Entry& entry) {
    ConnectionGuard& guard = *shared_->guard;
    if (!guard.beginHead(entry)) return Next::Close;  // the server is stopping
    const std::size_t size = connection_->head_size;
    std::string bytes(size, '\0');
    const int fd = connection_->impl->sockfd();
    if (::recv(fd, bytes.data(), size, MSG_PEEK) != static_cast<ssize_t>(size)) return Next::Close;
    const auto read = readHead(bytes);
    if (const auto* error = std::get_if<http::HeadError>(&read)) return refuse(entry, error->status, error->reason);
    const RawHead& raw = std::get<RawHead>(read);
    connection_->impl->limitReads(size);
    Poco::Net::HTTPServerResponseImpl response(session);
    std::unique_ptr<Poco::Net::HTTPServerRequestImpl> request;
    try {
      request = std::make_unique<Poco::Net::HTTPServerRequestImpl>(response, session, params_.get());
    } catch (const Poco::Net::MessageException&) {
      // Poco's limits (100 fields, 256-byte names, 8 KiB values).
      return refuse(entry, 400, "malformed request head");
    } catch (const Poco::SyntaxException&) {
      return refuse(entry, 400, "Content-Length is not a number");
    }
    // Poco must have read the head exactly as readHead() did.
    const bool exact = connection_->impl->readsLeft() == 0 && session.bufferedBytes() == 0;
    connection_->impl->unlimit();
    if (!exact) return refuse(entry, 400, "malformed request head");
    response.setDate(Poco::Timestamp());
    response.setVersion(request->getVersion());
    response.setKeepAlive(params_->getKeepAlive() && request->getKeepAlive() && session.canKeepAlive());
    response.set("Server", params_->getServerName());
    IngestHandler handler(*shared_, entry, session, &raw, true);
    handler.serve(*request, response);
    if (handler.lingerWanted()) return Next::Linger;
    // Not answered (the client went away mid-request): where its bytes end is
    // unknown, so nothing more is read from it.
    if (!response.sent()) return Next::Close;
    return params_->getKeepAlive() && response.getKeepAlive() && !guard.stopping() ? Next::KeepAlive : Next::Close;
  }

  // 400 (or 505) for a head refused before Poco read it: counted and logged
  // like the handler's answers; the connection closed lingering by the gate.
  Next refuse(ConnectionGuard::Entry& entry, int status, const std::string& reason) {
    if (!shared_->guard->beginBody(entry)) return Next::Close;
    shared_->countRejected(Rejection::Malformed);
    const std::string status_line = status == 505 ? "505 HTTP Version Not Supported" : "400 Bad Request";
    Next next = Next::Close;
    try {
      const std::string answer = plainAnswer(status_line, reason);
      connection_->socket.sendBytes(answer.data(), static_cast<int>(answer.size()));
      next = Next::Linger;
    } catch (const Poco::Exception&) {
      // The client is gone: nobody to answer.
    }
    log::warn("ingest", "request rejected",
              {{"status", std::to_string(status)}, {"remote", connection_->remote}, {"reason", reason}});
    return next;
  }

  std::shared_ptr<IngestServer::Shared> shared_;
  Poco::Net::HTTPServerParams::Ptr params_;
  HeadGate& gate_;
  std::shared_ptr<GateConnection> connection_;
};

class GuardedConnectionFactory final : public Poco::Net::TCPServerConnectionFactory {
 public:
  GuardedConnectionFactory(Poco::Net::HTTPServerParams::Ptr params, std::shared_ptr<IngestServer::Shared> shared)
      : params_(std::move(params)), shared_(std::move(shared)) {}
  Poco::Net::TCPServerConnection* createConnection(const Poco::Net::StreamSocket& socket) override {
    return new GuardedConnection(socket, params_, shared_);
  }

 private:
  Poco::Net::HTTPServerParams::Ptr params_;
  std::shared_ptr<IngestServer::Shared> shared_;
};

// A request head larger than this is a 400: Mews's are under 2 KiB, and the
// gate peeks at most this much per connection (head_gate.h).
constexpr std::size_t kMaxHead = 32 * 1024;

// Connections that may wait for their head at once (a descriptor each, no
// thread): room for a thousand hostile ones beside Mews at the default
// max_connections, and four times max_connections above it.
std::size_t maxWaitingHeads(std::int64_t max_connections) {
  return std::max<std::size_t>(2048, 4 * static_cast<std::size_t>(max_connections));
}

// Raises the soft limit on open files towards the hard one when the listener
// could need more descriptors than it allows (Debian's soft default is 1024).
void raiseDescriptorLimit(std::size_t needed) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  const rlim_t wanted = static_cast<rlim_t>(needed) + 256;  // the journal, targets, the admin listener
  if (limit.rlim_cur == RLIM_INFINITY || limit.rlim_cur >= wanted) return;
  const rlim_t raised = limit.rlim_max == RLIM_INFINITY ? wanted : std::min(wanted, limit.rlim_max);
  if (raised <= limit.rlim_cur) return;
  limit.rlim_cur = raised;
  if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  log::info("ingest", "open file limit raised", {{"limit", std::to_string(raised)}});
}

// Runs on TCPServer's accept thread for each new connection (connection_guard.h).
class CapacityFilter final : public Poco::Net::TCPServerConnectionFilter {
 public:
  explicit CapacityFilter(ConnectionGuard& guard) : guard_(guard) {}
  bool accept(const Poco::Net::StreamSocket& socket) override { return guard_.admit(socket); }

 private:
  ConnectionGuard& guard_;
};

}  // namespace

IngestServer::IngestServer(const config::Settings& settings, journal::JournalWriter& writer, const Clock& clock,
                           std::function<void()> on_committed)
    : shared_(std::make_shared<Shared>(settings, writer, clock, std::move(on_committed))) {
  const config::ServerSettings& server = settings.server;
  shared_->resends =
      std::make_unique<ResendGuard>(settings.journal.location(), server.resend_window, clock.wallMillis());
  const auto max_connections = static_cast<std::size_t>(server.max_connections);
  ConnectionGuard::Limits limits;
  limits.request_timeout = server.request_timeout;
  limits.min_body_rate = server.min_body_rate;
  limits.tls = !server.tls_certificate.empty();
  limits.max_running = max_connections;
  // As many again wait for a thread, and at least Poco's default queue of 64.
  limits.max_waiting = std::max<std::size_t>(max_connections, 64);
  ConnectionGuard::Events events;
  events.head_expired = [shared = shared_.get()](const std::string& remote) {
    shared->countRejected(Rejection::Timeout);
    log::warn("ingest", "request rejected",
              {{"status", "408"}, {"remote", remote}, {"reason", "request head not received in time"}});
  };
  events.refused = [shared = shared_.get()](std::uint64_t refused) {
    shared->metrics.rejected[static_cast<std::size_t>(Rejection::OverCapacity)].add(refused);
    log::warn("ingest", "connections refused",
              {{"status", "503"}, {"count", std::to_string(refused)}, {"reason", "too many connections"}});
  };
  shared_->guard = std::make_unique<ConnectionGuard>(limits, std::move(events));
  Poco::Net::ServerSocket socket = serverSocket(server.tls_certificate, server.tls_private_key);
  // SO_REUSEADDR (a restart binds at once), never SO_REUSEPORT, which Poco's
  // one-flag bind() also sets: a second relay would bind the same port and
  // quietly take part of the posts into its own journal.
  socket.bind(Poco::Net::SocketAddress(server.listen), true, false);
  socket.listen(1024);
  // Read the bound port here, from our own socket: TCPServer::port() is an
  // inline accessor whose member offsets differ in a TSan build of this code
  // against Debian's uninstrumented Poco.
  port_ = socket.address().port();
  Poco::Net::HTTPServerParams::Ptr params = new Poco::Net::HTTPServerParams;
  params->setMaxThreads(server.max_connections);
  // The guard admits at most max_running + max_waiting connections, so Poco's
  // own queue limit (which drops a connection silently) is never reached.
  params->setMaxQueued(static_cast<int>(limits.max_running + limits.max_waiting + 1));
  params->setKeepAlive(true);
  // Idle keep-alive connections are closed by Poco before the guard's deadline
  // would answer them 408.
  const auto request_micros = std::chrono::duration_cast<std::chrono::microseconds>(server.request_timeout).count();
  params->setKeepAliveTimeout(Poco::Timespan(request_micros / 2));
  params->setMaxKeepAliveRequests(10000);
  params->setTimeout(Poco::Timespan(request_micros));
  params->setServerName("mews-relay");
  if (!limits.tls) {
    gateConnections(std::move(socket), params, limits);
    return;
  }
  // TLS: the head cannot be seen before the handshake, which needs a thread.
  // One pooled thread per open connection (Poco's model): the pool is the cap
  // on connections served at once.
  pool_ = std::make_unique<Poco::ThreadPool>(2, server.max_connections, 60);
  server_ =
      std::make_unique<Poco::Net::TCPServer>(new GuardedConnectionFactory(params, shared_), *pool_, socket, params);
  server_->setConnectionFilter(new CapacityFilter(*shared_->guard));
}

void IngestServer::gateConnections(Poco::Net::ServerSocket socket, Poco::AutoPtr<Poco::Net::HTTPServerParams> params,
                                   const ConnectionGuard::Limits& limits) {
  const config::ServerSettings& server = shared_->config.get()->settings.server;
  HeadGate::Limits gate_limits;
  gate_limits.head_timeout = server.request_timeout;
  gate_limits.idle_timeout = server.request_timeout / 2;
  gate_limits.max_head = kMaxHead;
  gate_limits.max_waiting = maxWaitingHeads(server.max_connections);
  raiseDescriptorLimit(gate_limits.max_waiting + limits.max_running + limits.max_waiting);
  workers_ = std::make_unique<WorkerPool>(limits.max_running, limits.max_running + limits.max_waiting + 1);
  HeadGate::Events gate_events;
  gate_events.head_expired = [shared = shared_.get()](const std::string& remote) {
    shared->countRejected(Rejection::Timeout);
    log::warn("ingest", "request rejected",
              {{"status", "408"}, {"remote", remote}, {"reason", "request head not received in time"}});
  };
  gate_events.head_refused = [shared = shared_.get()](const std::string& remote, const std::string& reason) {
    shared->countRejected(Rejection::Malformed);
    log::warn("ingest", "request rejected", {{"status", "400"}, {"remote", remote}, {"reason", reason}});
  };
  // On the gate's thread: admitted (the guard's capacity) and queued for a
  // worker, or refused with a 503 by the guard.
  gate_events.ready = [this, params](std::shared_ptr<GateConnection> connection) {
    if (!shared_->guard->admit(connection->socket)) return;
    auto job = [shared = shared_, params, gate = gate_.get(), connection] {
      GatedRequest(shared, params, *gate, connection).run();
    };
    // Not reached: the queue holds as many as the guard admits.
    if (!workers_->post(std::move(job))) shared_->guard->forget();
  };
  gate_ = std::make_unique<HeadGate>(std::move(socket), gate_limits, std::move(gate_events));
}
IngestServer::~IngestServer() {
  stop();
}

void IngestServer::start() {
  if (gate_) gate_->start();
  if (server_) server_->start();
}

void IngestServer::stop() {
  if (stopped_) return;
  stopped_ = true;
  if (gate_) {
    // No new connections; those waiting for a head are closed. Requests queued
    // for a worker end unserved (the guard is stopping), those in progress
    // finish, their commits included.
    shared_->guard->stopAll();
    gate_->stop();
    workers_->stop();
    return;
  }
  // No new connections; the queued ones are dropped unanswered.
  server_->stop();
  // Not aborting: idle connections close now, the others after the request
  // they are handling (its commit included).
  shared_->guard->stopAll();
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
