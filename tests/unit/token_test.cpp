#include <doctest/doctest.h>

#include "auth/token.h"

using namespace mews::auth;

TEST_CASE("any configured token is accepted, nothing else") {
  const TokenSet tokens({"first-token-aaaaaaaaaa", "second-token-bbbbbbbbb"});
  CHECK(tokens.accepts("first-token-aaaaaaaaaa"));
  CHECK(tokens.accepts("second-token-bbbbbbbbb"));
  CHECK_FALSE(tokens.accepts(""));
  CHECK_FALSE(tokens.accepts("first-token-aaaaaaaaab"));
  CHECK_FALSE(tokens.accepts("first-token-aaaaaaaaa"));
  CHECK_FALSE(tokens.accepts("first-token-aaaaaaaaaaa"));
}

TEST_CASE("the token is read from the query string, percent-decoded") {
  CHECK(queryParameter("token=abc", "token") == "abc");
  CHECK(queryParameter("a=1&token=a%2Fb&c=2", "token") == "a/b");
  CHECK(queryParameter("tokenx=1&xtoken=2", "token").empty());
  CHECK(queryParameter("", "token").empty());
  CHECK(queryParameter("token", "token").empty());
  CHECK(queryParameter("token=", "token").empty());
}
