#include "http/server_socket.h"

#include <Poco/Net/Context.h>
#include <Poco/Net/SecureServerSocket.h>

namespace mews::http {

Poco::Net::ServerSocket serverSocket(const std::string& certificate, const std::string& private_key) {
  if (certificate.empty()) return Poco::Net::ServerSocket();
  Poco::Net::Context::Ptr context =
      new Poco::Net::Context(Poco::Net::Context::TLS_SERVER_USE, private_key, certificate, "",
                             Poco::Net::Context::VERIFY_NONE, 9, false, "HIGH:!aNULL:!eNULL:!MD5:!RC4:!3DES");
  context->requireMinimumProtocol(Poco::Net::Context::PROTO_TLSV1_2);
  return Poco::Net::SecureServerSocket(context);
}

}  // namespace mews::http
