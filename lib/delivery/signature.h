// Standard Webhooks signatures (standardwebhooks.com):
//   webhook-signature: v1,BASE64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))
// where key is the base64 text after "whsec_" in the target's secret, decoded.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace mews::delivery {

// `secret` must be a validated "whsec_..." value (see config).
std::string signPayload(std::string_view secret, std::string_view webhook_id, std::int64_t timestamp_s,
                        std::string_view body);

}  // namespace mews::delivery
