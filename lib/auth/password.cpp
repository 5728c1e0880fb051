#include "auth/password.h"

#include <openssl/evp.h>

#include <fmt/format.h>
#include <charconv>
#include <stdexcept>
#include <vector>

#include "auth/secrets.h"

namespace mews::auth {
namespace {

constexpr std::string_view kScheme = "pbkdf2-sha256";
constexpr std::size_t kSaltBytes = 16;
constexpr std::size_t kHashBytes = 32;

std::optional<std::string> fromHex(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  std::string out;
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(hex.data() + i, hex.data() + i + 2, value, 16);
    if (ec != std::errc{} || end != hex.data() + i + 2) return std::nullopt;
    out += static_cast<char>(value);
  }
  return out;
}

std::string derive(std::string_view password, std::string_view salt, int iterations) {
  std::string out(kHashBytes, '\0');
  if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                        reinterpret_cast<const unsigned char*>(salt.data()), static_cast<int>(salt.size()), iterations,
                        EVP_sha256(), static_cast<int>(out.size()), reinterpret_cast<unsigned char*>(out.data())) != 1)
    throw std::runtime_error("PBKDF2 failed (OpenSSL)");
  return out;
}

}  // namespace

std::string hashPassword(std::string_view password, int iterations) {
  const std::string salt = randomBytes(kSaltBytes);
  return fmt::format("{}${}${}${}", kScheme, iterations, toHex(salt), toHex(derive(password, salt, iterations)));
}

std::optional<PasswordHash> parsePasswordHash(std::string_view text, std::string& error) {
  std::vector<std::string_view> parts;
  for (std::size_t start = 0;;) {
    const auto dollar = text.find('$', start);
    parts.push_back(text.substr(start, dollar == std::string_view::npos ? std::string_view::npos : dollar - start));
    if (dollar == std::string_view::npos) break;
    start = dollar + 1;
  }
  if (parts.size() != 4 || parts[0] != kScheme) {
    error = "is not a pbkdf2-sha256$ITERATIONS$SALT$HASH line; make one with `mews-relay console-password`";
    return std::nullopt;
  }
  PasswordHash hash;
  const auto [end, ec] = std::from_chars(parts[1].data(), parts[1].data() + parts[1].size(), hash.iterations);
  if (ec != std::errc{} || end != parts[1].data() + parts[1].size() || hash.iterations < kMinIterations) {
    error = fmt::format("needs at least {} iterations; make one with `mews-relay console-password`", kMinIterations);
    return std::nullopt;
  }
  const auto salt = fromHex(parts[2]);
  const auto digest = fromHex(parts[3]);
  if (!salt || salt->size() < 8 || !digest || digest->size() != kHashBytes) {
    error = "has a malformed salt or hash (hex expected); make one with `mews-relay console-password`";
    return std::nullopt;
  }
  hash.salt = *salt;
  hash.hash = *digest;
  return hash;
}

Credential Credential::fromHash(PasswordHash hash) {
  Credential credential;
  credential.hash_ = std::move(hash);
  return credential;
}

Credential Credential::fromSecret(std::string secret) {
  Credential credential;
  credential.secret_digest_ = sha256(secret);
  return credential;
}

bool Credential::verify(std::string_view attempt) const {
  if (hash_) return equalSecrets(derive(attempt, hash_->salt, hash_->iterations), hash_->hash);
  // Digests of equal length: the comparison says nothing about the secret's length.
  return !secret_digest_.empty() && equalSecrets(sha256(attempt), secret_digest_);
}

}  // namespace mews::auth
