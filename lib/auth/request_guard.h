// The checks every admin listener request passes before it is routed, kept
// apart from the routes so that other surfaces on the listener use the same ones.
//
//   Host     every request, every path: the Host header must name this
//            listener (its bound address and port; for a loopback listener
//            also localhost, 127.0.0.1 and [::1]; for a wildcard one any IP
//            literal or localhost). A DNS-rebinding page reaches the listener
//            under its own name, so its requests carry that name: 421.
//            The console (console/console.h) checks Host by the same rule,
//            set more widely (HostRule below).
//   Origin   the CLI's API (/admin/*): a request that carries an Origin header
//            comes from a browser, never from the CLI: 403. (A plain HTML form
//            posts cross-origin without a preflight, with an Origin.)
//   Bearer   the CLI's API (/admin/*): `Authorization: Bearer <credential>`,
//            the credential the relay wrote beside the journal (credential.h),
//            compared in constant time: else 401. The presented value is
//            never logged or echoed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mews::auth {

// A Host header ("host[:port]", IPv6 in brackets), checked: the name
// lowercased (IPv6 without brackets), the port 1..65535 when one is given.
// nullopt for an empty or malformed header, or a name with characters no host
// name or address has.
struct HostPort {
  std::string name;
  std::optional<std::uint16_t> port;
};
std::optional<HostPort> parseHost(std::string_view host_header);

// Which Host headers a listener answers to (DNS rebinding: a page whose DNS
// name an attacker points at this box reaches us with that name in Host). A
// name is accepted when it is `listen_host` or one of `names`; an address (or
// localhost, a loopback address) when `any_address` is set, when the listener
// is a wildcard ("0.0.0.0", "::"), when it is the listen address, or when both
// are loopback.
//   the admin API:   {bound address, its port}
//   the console:     {listen host, any port (an SSH tunnel's local end may use
//                    any), any address (of this box: where the request
//                    arrived, and a literal carries no attacker's name),
//                    [console] host_names}
struct HostRule {
  std::string listen_host;            // IP literal (IPv6 without brackets), wildcard or name
  std::optional<std::uint16_t> port;  // the port Host must name (none named: 80); unset: any
  bool any_address = false;
  std::vector<std::string> names;
};
bool hostAllowed(std::string_view host_header, const HostRule& rule);

// True when `authorization_header` is "Bearer <credential>" for exactly this
// (non-empty) credential. Takes the same time wherever the two first differ.
bool credentialMatches(std::string_view authorization_header, std::string_view credential);

}  // namespace mews::auth
