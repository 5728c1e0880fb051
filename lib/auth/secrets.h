// The few primitives every secret of the relay goes through, once each: random
// bytes (OpenSSL's CSPRNG), SHA-256, hex, and a constant-time comparison. The
// webhook tokens (token.h), the admin credential (credential.h), the CLI's
// bearer check (request_guard.h), the console's password and sessions
// (password.h, console/sessions.h) and the resend guard's body digests use
// these and nothing of their own.
//
// Failure: randomBytes()/randomHex() throw std::runtime_error when the
// generator fails; nothing else fails.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace mews::auth {

// `count` random bytes.
std::string randomBytes(std::size_t count);
// `bytes` random bytes as lowercase hex (2 * bytes characters).
std::string randomHex(std::size_t bytes);

// SHA-256 of `bytes`: the 32-byte digest, and as lowercase hex.
std::string sha256(std::string_view bytes);
std::string sha256Hex(std::string_view bytes);

std::string toHex(std::string_view bytes);

// Equality of two strings in time that depends on their length only (false
// when the lengths differ: a length is no secret where this is used).
bool equalSecrets(std::string_view a, std::string_view b);

}  // namespace mews::auth
