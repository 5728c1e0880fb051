#include "delivery/signature.h"

#include <Poco/Base64Decoder.h>
#include <Poco/Base64Encoder.h>
#include <Poco/HMACEngine.h>
#include <Poco/SHA2Engine.h>
#include <sstream>

namespace mews::delivery {
namespace {

// Poco 1.11's SHA2Engine lacks the constants HMACEngine needs (see
// DEBIAN12-NOTES.md); SHA-256 has a 64-byte block and a 32-byte digest.
class Sha256Engine : public Poco::SHA2Engine {
 public:
  enum { BLOCK_SIZE = 64, DIGEST_SIZE = 32 };
  Sha256Engine() : Poco::SHA2Engine(Poco::SHA2Engine::SHA_256) {}
};

std::string base64Decode(std::string_view text) {
  std::istringstream in{std::string(text)};
  Poco::Base64Decoder decoder(in);
  return std::string(std::istreambuf_iterator<char>(decoder), {});
}

std::string base64Encode(const std::vector<unsigned char>& bytes) {
  std::ostringstream out;
  Poco::Base64Encoder encoder(out);
  encoder.rdbuf()->setLineLength(0);
  encoder.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  encoder.close();
  return out.str();
}

}  // namespace

std::string signPayload(std::string_view secret, std::string_view webhook_id, std::int64_t timestamp_s,
                        std::string_view body) {
  constexpr std::string_view kPrefix = "whsec_";
  const std::string key = base64Decode(secret.substr(secret.rfind(kPrefix, 0) == 0 ? kPrefix.size() : 0));
  Poco::HMACEngine<Sha256Engine> hmac(key);
  const std::string timestamp = std::to_string(timestamp_s);
  hmac.update(webhook_id.data(), static_cast<unsigned>(webhook_id.size()));
  hmac.update('.');
  hmac.update(timestamp);
  hmac.update('.');
  hmac.update(body.data(), static_cast<unsigned>(body.size()));
  return "v1," + base64Encode(hmac.digest());
}

}  // namespace mews::delivery
