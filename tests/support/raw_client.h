// A client that speaks raw bytes over loopback, for tests that must send what
// no HTTP library would (ambiguous framing, pipelined requests, connections
// held open on purpose) and see exactly what came back and how the
// connection ended. Every read is bounded in time.
#pragma once

#include <Poco/Net/StreamSocket.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace mews::test {

class RawClient {
 public:
  // How the last read ended.
  enum class End { Open, Eof, Reset, Timeout };

  explicit RawClient(std::uint16_t port);

  // False once the server has closed (or reset) the connection.
  bool send(std::string_view bytes);
  // No more bytes from this side (the server sees end of input).
  void finishSending();
  // Everything until the server closes (Eof) or resets, or `limit` passes.
  std::string readAll(std::chrono::milliseconds limit = std::chrono::seconds(10));
  // One whole response (head and Content-Length body), leaving the connection
  // open; empty if none arrived whole within `limit`.
  std::string readResponse(std::chrono::milliseconds limit = std::chrono::seconds(10));
  [[nodiscard]] End end() const { return end_; }

 private:
  // One read of what is there, waiting at most until `deadline`; updates end_.
  bool receiveSome(std::string& out, std::chrono::steady_clock::time_point deadline);

  Poco::Net::StreamSocket socket_;
  std::string pending_;  // read past the end of the last response
  End end_ = End::Open;
};

// Status lines ("HTTP/1.1 202 "): how many responses `bytes` holds.
std::size_t countResponses(std::string_view bytes);

}  // namespace mews::test
