#include "support/raw_client.h"

#include <Poco/Net/NetException.h>
#include <Poco/Net/SocketAddress.h>

#include <regex>

namespace mews::test {

RawClient::RawClient(std::uint16_t port) {
  socket_.connect(Poco::Net::SocketAddress("127.0.0.1", port), Poco::Timespan(5, 0));
}

bool RawClient::send(std::string_view bytes) {
  try {
    socket_.sendBytes(bytes.data(), static_cast<int>(bytes.size()));
    return true;
  } catch (const Poco::Exception&) {
    return false;
  }
}

void RawClient::finishSending() {
  socket_.shutdownSend();
}

bool RawClient::receiveSome(std::string& out, std::chrono::steady_clock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::microseconds>(deadline - std::chrono::steady_clock::now()).count();
  try {
    if (left <= 0 || !socket_.poll(Poco::Timespan(left), Poco::Net::Socket::SELECT_READ)) {
      end_ = End::Timeout;
      return false;
    }
    char buffer[16384];
    const int got = socket_.receiveBytes(buffer, sizeof buffer);
    if (got <= 0) {
      end_ = End::Eof;
      return false;
    }
    out.append(buffer, static_cast<std::size_t>(got));
    return true;
  } catch (const Poco::Net::ConnectionResetException&) {
    end_ = End::Reset;
  } catch (const Poco::Exception&) {
    end_ = End::Reset;
  }
  return false;
}

std::string RawClient::readAll(std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  std::string out = std::move(pending_);
  pending_.clear();
  while (receiveSome(out, deadline)) {
  }
  return out;
}

std::string RawClient::readResponse(std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  std::string& in = pending_;
  static const std::regex kLength(R"(\r\nContent-Length: *(\d+)\r\n)", std::regex::icase);
  for (;;) {
    const auto head_end = in.find("\r\n\r\n");
    if (head_end != std::string::npos) {
      std::smatch match;
      const std::string head = in.substr(0, head_end + 2);
      const std::size_t length = std::regex_search(head, match, kLength) ? std::stoul(match[1]) : 0;
      if (in.size() >= head_end + 4 + length) {
        std::string response = in.substr(0, head_end + 4 + length);
        in.erase(0, response.size());
        return response;
      }
    }
    if (!receiveSome(in, deadline)) return {};
  }
}

std::size_t countResponses(std::string_view bytes) {
  // Not anchored to a line start: a second response follows the first body directly.
  static const std::regex kStatusLine(R"(HTTP/1\.[01] \d{3} )");
  const std::string text(bytes);
  return static_cast<std::size_t>(
      std::distance(std::sregex_iterator(text.begin(), text.end(), kStatusLine), std::sregex_iterator()));
}

}  // namespace mews::test
