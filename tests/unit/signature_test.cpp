#include <doctest/doctest.h>

#include "delivery/signature.h"
#include "support/test_support.h"

using namespace mews::delivery;

TEST_CASE("the Standard Webhooks specification's example signature") {
  CHECK(signPayload("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                    R"({"test": 2432232314})") == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

TEST_CASE("signatures match an independent HMAC-SHA256 over id.timestamp.body") {
  const std::string secret = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  for (const std::string& body : {std::string("{}"), std::string(5000, 'x'), std::string("{\"a\":\"\xc3\xa9\"}")}) {
    const auto ours = signPayload("whsec_" + secret, "msg_abc_1", 1795860000, body);
    CHECK(ours == mews::test::referenceSignature(secret, "msg_abc_1", "1795860000", body));
  }
  CHECK(signPayload("whsec_" + secret, "msg_abc_1", 1795860000, "{}") !=
        signPayload("whsec_" + secret, "msg_abc_2", 1795860000, "{}"));
}
