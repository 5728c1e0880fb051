#include <doctest/doctest.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "delivery/signature.h"

using namespace mews::delivery;

namespace {

// An independent implementation (OpenSSL directly) of the Standard Webhooks scheme.
std::string referenceSignature(const std::string& secret_base64, const std::string& content) {
  std::string key(secret_base64.size(), '\0');
  const int decoded = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(key.data()),
                                      reinterpret_cast<const unsigned char*>(secret_base64.data()),
                                      static_cast<int>(secret_base64.size()));
  std::size_t padding = 0;
  for (auto it = secret_base64.rbegin(); it != secret_base64.rend() && *it == '='; ++it) ++padding;
  key.resize(static_cast<std::size_t>(decoded) - padding);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_size = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(content.data()),
       content.size(), mac, &mac_size);
  std::string encoded(4 * ((mac_size + 2) / 3) + 1, '\0');
  const int length = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(encoded.data()), mac, static_cast<int>(mac_size));
  encoded.resize(static_cast<std::size_t>(length));
  return "v1," + encoded;
}

}  // namespace

TEST_CASE("the Standard Webhooks specification's example signature") {
  CHECK(signPayload("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                    R"({"test": 2432232314})") == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

TEST_CASE("signatures match an independent HMAC-SHA256 over id.timestamp.body") {
  const std::string secret = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  for (const std::string& body : {std::string("{}"), std::string(5000, 'x'), std::string("{\"a\":\"\xc3\xa9\"}")}) {
    const auto ours = signPayload("whsec_" + secret, "msg_abc_1", 1795860000, body);
    CHECK(ours == referenceSignature(secret, "msg_abc_1.1795860000." + body));
  }
  CHECK(signPayload("whsec_" + secret, "msg_abc_1", 1795860000, "{}") !=
        signPayload("whsec_" + secret, "msg_abc_2", 1795860000, "{}"));
}
