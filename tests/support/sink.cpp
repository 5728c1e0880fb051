#include "support/sink.h"

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerRequestImpl.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/StreamCopier.h>
#include <Poco/ThreadPool.h>

#include <algorithm>
#include <thread>

namespace mews::test {

struct Sink::State {
  mutable std::mutex mutex;
  mutable std::condition_variable arrived;
  std::vector<SinkRequest> requests;
  bool closing = false;  // the sink is being destroyed: hangs end now
  int active = 0;        // handlers running; the destructor waits for them
  Script script = [](const SinkRequest&, std::size_t) { return SinkResponse{}; };
};

namespace {

class SinkHandler : public Poco::Net::HTTPRequestHandler {
 public:
  explicit SinkHandler(std::shared_ptr<Sink::State> state) : state_(std::move(state)) {}

  void handleRequest(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response) override {
    {
      const std::lock_guard lock(state_->mutex);
      state_->active++;
    }
    try {
      handle(request, response);
    } catch (...) {
    }
    {
      const std::lock_guard lock(state_->mutex);
      state_->active--;
    }
    state_->arrived.notify_all();
  }

 private:
  void handle(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response) {
    SinkRequest recorded;
    recorded.uri = request.getURI();
    for (const auto& [name, value] : request) {
      std::string lower = name;
      std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
      recorded.headers[lower] = value;
    }
    Poco::StreamCopier::copyToString(request.stream(), recorded.body);
    recorded.at = std::chrono::steady_clock::now();
    Sink::Script script;
    std::size_t index = 0;
    {
      const std::lock_guard lock(state_->mutex);
      index = state_->requests.size();
      state_->requests.push_back(recorded);
      script = state_->script;
    }
    state_->arrived.notify_all();
    const SinkResponse answer = script(recorded, index);
    if (answer.hang.count() > 0) {
      std::unique_lock lock(state_->mutex);
      state_->arrived.wait_for(lock, answer.hang, [this] { return state_->closing; });
    }
    if (answer.reset) {
      auto& impl = dynamic_cast<Poco::Net::HTTPServerRequestImpl&>(request);
      impl.socket().setLinger(true, 0);  // close with RST
      impl.socket().close();
      return;
    }
    response.setStatusAndReason(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(answer.status));
    if (!answer.retry_after.empty()) response.set("Retry-After", answer.retry_after);
    if (!answer.location.empty()) response.set("Location", answer.location);
    response.sendBuffer(answer.body.data(), answer.body.size());
  }

  std::shared_ptr<Sink::State> state_;
};

class SinkFactory : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  explicit SinkFactory(std::shared_ptr<Sink::State> state) : state_(std::move(state)) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest&) override {
    return new SinkHandler(state_);
  }

 private:
  std::shared_ptr<Sink::State> state_;
};

}  // namespace

Sink::Sink() : state_(std::make_shared<State>()) {
  Poco::Net::ServerSocket socket(Poco::Net::SocketAddress("127.0.0.1", 0));
  port_ = socket.address().port();
  auto* params = new Poco::Net::HTTPServerParams;
  params->setMaxThreads(32);
  params->setKeepAlive(true);
  pool_ = std::make_unique<Poco::ThreadPool>(2, 32);
  server_ = std::make_unique<Poco::Net::HTTPServer>(new SinkFactory(state_), *pool_, socket, params);
  server_->start();
}

Sink::~Sink() {
  {
    const std::lock_guard lock(state_->mutex);
    state_->closing = true;
  }
  state_->arrived.notify_all();
  server_->stopAll(true);
  pool_->joinAll();  // no connection thread outlives the sink
}

std::uint16_t Sink::port() const {
  return port_;
}

std::string Sink::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port()) + path;
}

void Sink::setScript(Script script) {
  const std::lock_guard lock(state_->mutex);
  state_->script = std::move(script);
}

std::vector<SinkRequest> Sink::requests() const {
  const std::lock_guard lock(state_->mutex);
  return state_->requests;
}

bool Sink::waitForRequests(std::size_t count, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(state_->mutex);
  return state_->arrived.wait_for(lock, timeout, [&] { return state_->requests.size() >= count; });
}

}  // namespace mews::test
