// A real HTTP server on 127.0.0.1:0 standing in for a downstream target. Each
// request is recorded, and a script (set by the test, changeable at any time)
// decides the answer: a status with an optional Retry-After or Location, a hang
// before answering, or a connection reset.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace Poco {
class ThreadPool;
namespace Net {
class HTTPServer;
}
}  // namespace Poco

namespace mews::test {

struct SinkRequest {
  std::string uri;
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;
  std::chrono::steady_clock::time_point at;
};

struct SinkResponse {
  int status = 200;
  std::string retry_after;
  std::string location;
  std::string body = "ok";
  std::chrono::milliseconds hang{0};
  bool reset = false;
};

class Sink {
 public:
  using Script = std::function<SinkResponse(const SinkRequest&, std::size_t index)>;
  Sink();
  ~Sink();
  [[nodiscard]] std::uint16_t port() const;
  [[nodiscard]] std::string url(const std::string& path = "/hook") const;
  void setScript(Script script);
  [[nodiscard]] std::vector<SinkRequest> requests() const;
  // Waits until at least `count` requests arrived; false on timeout.
  bool waitForRequests(std::size_t count, std::chrono::milliseconds timeout) const;

  struct State;

 private:
  std::shared_ptr<State> state_;
  std::unique_ptr<Poco::ThreadPool> pool_;
  std::unique_ptr<Poco::Net::HTTPServer> server_;
  std::uint16_t port_ = 0;
};

}  // namespace mews::test
