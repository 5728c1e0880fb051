// The console operator's credential (console/password.*): either a
// PBKDF2-HMAC-SHA256 hash made by `mews-relay console-password`, or a secret the
// serving process reads from its environment. Never the webhook token: the
// console refuses to start when one of [server] tokens would sign in.
//
// Hash format, one line, every parameter in it so that a later default can
// change without invalidating stored hashes:
//   pbkdf2-sha256$ITERATIONS$SALT_HEX$HASH_HEX     (16-byte salt, 32-byte hash)
// Hex, not base64: no '+', '/' or '=' for an INI file or a shell to trip on.
//
// Verification is constant-time in the compared bytes (CRYPTO_memcmp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mews::auth {

inline constexpr int kDefaultIterations = 600'000;  // OWASP's figure for PBKDF2-HMAC-SHA256 (2023)
inline constexpr int kMinIterations = 100'000;
inline constexpr std::size_t kMinPasswordLength = 12;

struct PasswordHash {
  int iterations = 0;
  std::string salt;  // raw bytes
  std::string hash;  // raw bytes
};

// A new hash of `password` with a fresh random salt.
std::string hashPassword(std::string_view password, int iterations = kDefaultIterations);

// Parses the format above; on failure returns nullopt and says why in `error`.
std::optional<PasswordHash> parsePasswordHash(std::string_view text, std::string& error);

class Credential {
 public:
  static Credential fromHash(PasswordHash hash);
  static Credential fromSecret(std::string secret);
  // True when `attempt` is the password. A hash costs its iterations (about a
  // quarter of a second at the default): the sign-in rate limit bounds the rest.
  [[nodiscard]] bool verify(std::string_view attempt) const;

 private:
  std::optional<PasswordHash> hash_;
  std::string secret_digest_;  // SHA-256 of the environment secret
};

}  // namespace mews::auth
