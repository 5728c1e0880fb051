// The listening socket of both HTTP listeners, the public one (ingest/server.h)
// and the admin one (admin/admin_server.h): plain TCP, or TLS when a
// certificate is configured. Here, in the listener's own module, so that one
// place sets the TLS rules ([server] and [admin] tls_certificate in README):
// TLS 1.2 at least, no client certificates, no weak ciphers. lib/common would
// be below both too, but it does not use Poco::Net.
#pragma once

#include <Poco/Net/ServerSocket.h>

#include <string>

namespace mews::http {

// A plain socket when `certificate` is empty, else a TLS server socket with
// that chain and `private_key` (PEM files). Neither is bound yet. Throws
// (Poco::Exception) on a key or certificate that cannot be read or does not
// match, so that a bad one fails start-up.
Poco::Net::ServerSocket serverSocket(const std::string& certificate, const std::string& private_key);

}  // namespace mews::http
