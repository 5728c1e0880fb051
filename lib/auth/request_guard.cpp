#include "auth/request_guard.h"

#include <Poco/Net/IPAddress.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <string>

#include "auth/secrets.h"
#include "common/text.h"

namespace mews::auth {
namespace {

std::optional<Poco::Net::IPAddress> addressOf(const std::string& name) {
  if (name == "localhost") return Poco::Net::IPAddress("127.0.0.1");
  Poco::Net::IPAddress address;
  if (!Poco::Net::IPAddress::tryParse(name, address)) return std::nullopt;
  return address;
}

}  // namespace

std::optional<HostPort> parseHost(std::string_view host_header) {
  if (host_header.empty()) return std::nullopt;
  HostPort out;
  std::string_view rest;
  if (host_header.front() == '[') {
    const auto close = host_header.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    out.name = text::lower(host_header.substr(1, close - 1));
    rest = host_header.substr(close + 1);
  } else {
    const auto colon = host_header.find(':');
    out.name = text::lower(host_header.substr(0, colon));
    rest = colon == std::string_view::npos ? std::string_view() : host_header.substr(colon);
  }
  if (out.name.empty()) return std::nullopt;
  if (!rest.empty()) {
    if (rest.front() != ':' || rest.size() < 2) return std::nullopt;
    const auto digits = rest.substr(1);
    unsigned port = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
    if (ec != std::errc{} || end != digits.data() + digits.size() || port < 1 || port > 65535) return std::nullopt;
    out.port = static_cast<std::uint16_t>(port);
  }
  const bool plausible = std::all_of(out.name.begin(), out.name.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '.' || c == ':' || c == '_';
  });
  if (!plausible) return std::nullopt;
  return out;
}

bool hostAllowed(std::string_view host_header, const HostRule& rule) {
  const auto named = parseHost(host_header);
  if (!named) return false;
  if (rule.port && named->port.value_or(80) != *rule.port) return false;
  const std::string listen_host = text::lower(rule.listen_host);
  if (named->name == listen_host) return true;
  if (std::any_of(rule.names.begin(), rule.names.end(),
                  [&](const std::string& name) { return text::lower(name) == named->name; }))
    return true;
  const auto address = addressOf(named->name);
  if (!address) return false;
  // Spelled out: Poco 1.11's IPAddress::tryParse() refuses "::".
  if (rule.any_address || listen_host == "0.0.0.0" || listen_host == "::") return true;
  const auto bound = addressOf(listen_host);
  if (!bound) return false;
  // A loopback listener answers to either loopback literal.
  return *address == *bound || (address->isLoopback() && bound->isLoopback());
}

bool credentialMatches(std::string_view authorization_header, std::string_view credential) {
  constexpr std::string_view kScheme = "Bearer ";
  if (credential.empty() || authorization_header.substr(0, kScheme.size()) != kScheme) return false;
  const auto presented = authorization_header.substr(kScheme.size());
  // The credential's length is no secret (64 hex digits); its content is.
  return equalSecrets(presented, credential);
}

}  // namespace mews::auth
