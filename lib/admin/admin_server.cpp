#include "admin/admin_server.h"

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/URI.h>

#include <fmt/format.h>
#include <algorithm>
#include <charconv>
#include <map>
#include <mutex>

#include "common/json.h"
#include "common/log.h"
#include "journal/operator.h"

namespace mews::admin {

struct AdminServer::Shared {
  config::Settings settings;
  journal::JournalWriter& writer;
  const Clock& clock;
  std::function<void()> on_requeued;
  std::function<std::string()> render_metrics;
  mutable std::mutex targets_mutex;
  std::vector<std::string> targets;  // of the running configuration

  [[nodiscard]] bool configured(const std::string& name) const {
    const std::lock_guard lock(targets_mutex);
    return std::find(targets.begin(), targets.end(), name) != targets.end();
  }
};

namespace {

using Poco::Net::HTTPResponse;

std::optional<std::int64_t> number(const std::map<std::string, std::string>& query, const std::string& key) {
  const auto it = query.find(key);
  if (it == query.end()) return std::nullopt;
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), value);
  if (ec != std::errc{} || end != it->second.data() + it->second.size())
    throw std::invalid_argument(fmt::format("{} is not a number", key));
  return value;
}

std::optional<std::string> text(const std::map<std::string, std::string>& query, const std::string& key) {
  const auto it = query.find(key);
  if (it == query.end()) return std::nullopt;
  return it->second;
}

class AdminHandler final : public Poco::Net::HTTPRequestHandler {
 public:
  explicit AdminHandler(std::shared_ptr<AdminServer::Shared> shared) : shared_(std::move(shared)) {}

  void handleRequest(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response) override {
    try {
      const Poco::URI uri(request.getURI());
      std::map<std::string, std::string> query;
      for (const auto& [key, value] : uri.getQueryParameters()) query[key] = value;
      const std::string& path = uri.getPath();
      const bool post = request.getMethod() == Poco::Net::HTTPRequest::HTTP_POST;
      if (path == "/healthz") return send(response, HTTPResponse::HTTP_OK, R"({"status":"ok"})");
      if (path == "/readyz") return ready(response);
      if (path == "/metrics") {
        const std::string page = shared_->render_metrics();
        response.setStatusAndReason(HTTPResponse::HTTP_OK);
        response.setContentType("text/plain; version=0.0.4; charset=utf-8");
        return response.sendBuffer(page.data(), page.size());
      }
      if (path == "/admin/replay" && post) return replay(response, query);
      if (path == "/admin/purge" && post) return purge(response, query);
      send(response, HTTPResponse::HTTP_NOT_FOUND, R"({"error":"no such endpoint"})");
    } catch (const std::invalid_argument& e) {
      send(response, HTTPResponse::HTTP_BAD_REQUEST, fmt::format(R"({{"error":{}}})", json::quote(e.what())));
    } catch (const std::exception& e) {
      log::error("admin", "request failed",
                 {{"path", request.getURI().substr(0, request.getURI().find('?'))}, {"error", e.what()}});
      send(response, HTTPResponse::HTTP_INTERNAL_SERVER_ERROR, fmt::format(R"({{"error":{}}})", json::quote(e.what())));
    }
  }

 private:
  static void send(Poco::Net::HTTPServerResponse& response, HTTPResponse::HTTPStatus status, const std::string& body) {
    response.setStatusAndReason(status);
    response.setContentType("application/json");
    response.sendBuffer(body.data(), body.size());
  }

  void ready(Poco::Net::HTTPServerResponse& response) const {
    // One small write through the writer: it fails exactly when an ingest write
    // would (free disk below min_free, disk full, I/O error, journal
    // unavailable), with that reason.
    const std::int64_t now = shared_->clock.wallMillis();
    auto probe = shared_->writer.submit([now](journal::Journal& journal) {
      journal.recordReadyProbe(now);
      return std::int64_t{0};
    });
    if (probe.wait_for(std::chrono::seconds(2)) != std::future_status::ready)
      return send(response, HTTPResponse::HTTP_SERVICE_UNAVAILABLE,
                  R"({"status":"not ready","reason":"journal commit is taking too long"})");
    const auto outcome = probe.get();
    if (!outcome.committed())
      return send(response, HTTPResponse::HTTP_SERVICE_UNAVAILABLE,
                  fmt::format(R"({{"status":"not ready","reason":{}}})", json::quote(outcome.error)));
    send(response, HTTPResponse::HTTP_OK, R"({"status":"ready"})");
  }

  // Runs `job` on the writer and answers {"count": N}.
  void apply(Poco::Net::HTTPServerResponse& response, journal::JournalWriter::Job job, bool requeues) const {
    const auto outcome = shared_->writer.submit(std::move(job)).get();
    if (!outcome.committed())
      return send(response, HTTPResponse::HTTP_SERVICE_UNAVAILABLE,
                  fmt::format(R"({{"error":{}}})", json::quote(outcome.error)));
    if (requeues && outcome.value > 0 && shared_->on_requeued) shared_->on_requeued();
    send(response, HTTPResponse::HTTP_OK, fmt::format(R"({{"count":{}}})", outcome.value));
  }

  void replay(Poco::Net::HTTPServerResponse& response, const std::map<std::string, std::string>& query) const {
    const bool dry_run = query.count("dry_run") != 0;
    const std::int64_t now = shared_->clock.wallMillis();
    if (const auto ids_text = text(query, "ids")) {
      std::vector<std::int64_t> ids;
      for (std::size_t start = 0; start <= ids_text->size();) {
        const auto comma = ids_text->find(',', start);
        const std::string one = ids_text->substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        std::int64_t id = 0;
        const auto [end, ec] = std::from_chars(one.data(), one.data() + one.size(), id);
        if (ec != std::errc{} || end != one.data() + one.size()) throw std::invalid_argument("ids must be numbers");
        ids.push_back(id);
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
      const auto to = text(query, "to");
      if (to && !shared_->configured(*to)) return notConfigured(response, *to);
      auto unknown = std::make_shared<std::vector<std::int64_t>>();
      const auto outcome = shared_->writer
                               .submit([ids, unknown, now, dry_run, to](journal::Journal& journal) -> std::int64_t {
                                 *unknown = journal::unknownDeadLetters(journal, ids);
                                 if (!unknown->empty()) return 0;
                                 if (to) return journal::retargetDeadLetters(journal, ids, *to, now, dry_run);
                                 return journal::replayDeadLetters(journal, ids, now, dry_run);
                               })
                               .get();
      if (outcome.committed() && !unknown->empty()) {
        std::string list;
        for (const auto id : *unknown) list += (list.empty() ? "" : ",") + std::to_string(id);
        return send(response, HTTPResponse::HTTP_NOT_FOUND,
                    fmt::format(R"({{"error":"no dead letter with id {}","unknown":[{}]}})", list, list));
      }
      if (!outcome.committed())
        return send(response, HTTPResponse::HTTP_SERVICE_UNAVAILABLE,
                    fmt::format(R"({{"error":{}}})", json::quote(outcome.error)));
      if (!dry_run && outcome.value > 0 && shared_->on_requeued) shared_->on_requeued();
      return send(response, HTTPResponse::HTTP_OK, fmt::format(R"({{"count":{}}})", outcome.value));
    }
    if (const auto since = number(query, "received_since_ms")) {
      const auto target = text(query, "target");
      if (!target) throw std::invalid_argument("target is required");
      const auto until = number(query, "until_ms");
      return apply(
          response,
          [target = *target, since = *since, until, now, dry_run](journal::Journal& journal) {
            return journal::replayReceived(journal, target, since, until, now, dry_run);
          },
          !dry_run);
    }
    const auto to = text(query, "to");
    if (to && !shared_->configured(*to)) return notConfigured(response, *to);
    if (query.count("dead") != 0) {
      journal::DeadLetterFilter filter;
      filter.target = text(query, "target");
      filter.since_ms = number(query, "since_ms");
      filter.until_ms = number(query, "until_ms");
      return apply(
          response,
          [filter, now, dry_run, to](journal::Journal& journal) {
            if (!to) return journal::replayDeadMatching(journal, filter, now, dry_run);
            std::vector<std::int64_t> ids;
            for (const auto& letter : journal::listDeadLetters(journal, filter))
              if (letter.state == "dead") ids.push_back(letter.id);
            return journal::retargetDeadLetters(journal, ids, *to, now, dry_run);
          },
          !dry_run);
    }
    if (const auto from = text(query, "from")) {
      if (!to) throw std::invalid_argument("from needs to");
      if (shared_->configured(*from)) return stillConfigured(response, *from);
      return apply(
          response,
          [from = *from, to = *to, now, dry_run](journal::Journal& journal) {
            return journal::retargetWork(journal, from, to, now, dry_run);
          },
          !dry_run);
    }
    throw std::invalid_argument("say ids, dead, received_since_ms or from");
  }

  static void notConfigured(Poco::Net::HTTPServerResponse& response, const std::string& target) {
    send(response, HTTPResponse::HTTP_CONFLICT,
         fmt::format(
             R"({{"error":{}}})",
             json::quote(fmt::format("no target '{}' in the running configuration (reload it first?)", target))));
  }

  static void stillConfigured(Poco::Net::HTTPServerResponse& response, const std::string& target) {
    send(response, HTTPResponse::HTTP_CONFLICT,
         fmt::format(R"({{"error":{}}})",
                     json::quote(fmt::format("target '{}' is in the running configuration: its work is its own; remove "
                                             "it and reload first",
                                             target))));
  }

  void purge(Poco::Net::HTTPServerResponse& response, const std::map<std::string, std::string>& query) const {
    const bool dry_run = query.count("dry_run") != 0;
    if (const auto from = text(query, "from")) {
      if (shared_->configured(*from)) return stillConfigured(response, *from);
      return apply(
          response,
          [from = *from, dry_run](journal::Journal& journal) {
            return journal::purgeTargetWork(journal, from, dry_run);
          },
          false);
    }
    const auto older_than = number(query, "older_than_ms");
    std::optional<std::int64_t> cutoff;
    if (older_than) cutoff = shared_->clock.wallMillis() - *older_than;
    apply(
        response,
        [cutoff, dry_run](journal::Journal& journal) { return journal::purgeDeadLetters(journal, cutoff, dry_run); },
        false);
  }

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

}  // namespace

AdminServer::AdminServer(const config::Settings& settings, journal::JournalWriter& writer, const Clock& clock,
                         std::function<void()> on_requeued, std::function<std::string()> render_metrics)
    : shared_(std::make_shared<Shared>(settings, writer, clock, std::move(on_requeued), std::move(render_metrics))) {
  for (const auto& target : settings.targets) shared_->targets.push_back(target.name);
  const Poco::Net::SocketAddress address(settings.admin.listen);
  host_ = address.host().toString();
  Poco::Net::ServerSocket socket;
  socket.bind(address, true);
  socket.listen(64);
  port_ = socket.address().port();  // not TCPServer::port(): see ingest/server.cpp
  auto* params = new Poco::Net::HTTPServerParams;
  params->setMaxThreads(4);
  params->setKeepAlive(false);
  params->setTimeout(Poco::Timespan(10, 0));
  server_ = std::make_unique<Poco::Net::HTTPServer>(new AdminFactory(shared_), socket, params);
}

AdminServer::~AdminServer() {
  stop();
}

void AdminServer::start() {
  server_->start();
}

void AdminServer::stop() {
  if (stopped_) return;
  stopped_ = true;
  server_->stopAll(false);
}

void AdminServer::setTargets(std::vector<std::string> names) {
  const std::lock_guard lock(shared_->targets_mutex);
  shared_->targets = std::move(names);
}

std::string AdminServer::address() const {
  const std::string host = host_ == "0.0.0.0" ? "127.0.0.1" : host_;
  return fmt::format("{}:{}", host, port_);
}

}  // namespace mews::admin
