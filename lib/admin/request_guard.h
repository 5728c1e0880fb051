// The checks every admin listener request passes before it is routed, kept
// apart from the routes so that other surfaces on the listener use the same ones.
//
//   Host     every request, every path: the Host header must name this
//            listener (its bound address and port; for a loopback listener
//            also localhost, 127.0.0.1 and [::1]; for a wildcard one any IP
//            literal or localhost). A DNS-rebinding page reaches the listener
//            under its own name, so its requests carry that name: 421.
//   Origin   the CLI's API (/admin/*): a request that carries an Origin header
//            comes from a browser, never from the CLI: 403. (A plain HTML form
//            posts cross-origin without a preflight, with an Origin.)
//   Bearer   the CLI's API (/admin/*): `Authorization: Bearer <credential>`,
//            the credential the relay wrote beside the journal (credential.h),
//            compared in constant time: else 401. The presented value is
//            never logged or echoed.
#pragma once

#include <cstdint>
#include <string_view>

namespace mews::admin {

// True when `host_header` ("host[:port]", IPv6 in brackets) names the listener
// bound to `bound_host` (an IP literal, IPv6 without brackets) and `port`. A
// missing port means 80. An empty header is refused.
bool hostAllowed(std::string_view host_header, std::string_view bound_host, std::uint16_t port);

// True when `authorization_header` is "Bearer <credential>" for exactly this
// (non-empty) credential. Takes the same time wherever the two first differ.
bool credentialMatches(std::string_view authorization_header, std::string_view credential);

}  // namespace mews::admin
