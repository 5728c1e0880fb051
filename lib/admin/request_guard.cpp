#include "admin/request_guard.h"

#include <Poco/Net/IPAddress.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <string>

namespace mews::admin {
namespace {

struct HostPort {
  std::string host;  // lowercase, IPv6 without brackets
  std::uint16_t port = 80;
};

bool parseHostHeader(std::string_view header, HostPort& out) {
  std::string_view host = header;
  std::string_view port;
  if (!header.empty() && header.front() == '[') {
    const auto close = header.find(']');
    if (close == std::string_view::npos) return false;
    host = header.substr(1, close - 1);
    const auto after = header.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return false;
      port = after.substr(1);
    }
  } else if (const auto colon = header.find(':'); colon != std::string_view::npos) {
    host = header.substr(0, colon);
    port = header.substr(colon + 1);
  }
  if (host.empty()) return false;
  if (header.find(':') != std::string_view::npos && header.front() != '[' && port.empty()) return false;
  if (!port.empty()) {
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc{} || end != port.data() + port.size() || value > 65535) return false;
    out.port = static_cast<std::uint16_t>(value);
  }
  out.host.resize(host.size());
  std::transform(host.begin(), host.end(), out.host.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return true;
}

bool isIpLiteral(const std::string& host) {
  Poco::Net::IPAddress ignored;
  return Poco::Net::IPAddress::tryParse(host, ignored);
}

}  // namespace

bool hostAllowed(std::string_view host_header, std::string_view bound_host, std::uint16_t port) {
  HostPort named;
  if (!parseHostHeader(host_header, named) || named.port != port) return false;
  // Spelled out: Poco 1.11's IPAddress::tryParse() refuses "::".
  if (bound_host == "0.0.0.0" || bound_host == "::") return named.host == "localhost" || isIpLiteral(named.host);
  Poco::Net::IPAddress bound;
  if (!Poco::Net::IPAddress::tryParse(std::string(bound_host), bound)) return false;
  if (named.host == "localhost" && bound.isLoopback()) return true;
  Poco::Net::IPAddress named_address;
  if (!Poco::Net::IPAddress::tryParse(named.host, named_address)) return false;
  if (named_address == bound) return true;
  // A loopback listener answers to either loopback literal.
  return bound.isLoopback() && named_address.isLoopback();
}

bool credentialMatches(std::string_view authorization_header, std::string_view credential) {
  constexpr std::string_view kScheme = "Bearer ";
  if (credential.empty() || authorization_header.substr(0, kScheme.size()) != kScheme) return false;
  const auto presented = authorization_header.substr(kScheme.size());
  // The credential's length is no secret (64 hex digits); its content is.
  if (presented.size() != credential.size()) return false;
  unsigned char difference = 0;
  for (std::size_t i = 0; i < credential.size(); ++i)
    difference |= static_cast<unsigned char>(presented[i] ^ credential[i]);
  return difference == 0;
}

}  // namespace mews::admin
