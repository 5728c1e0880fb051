// common/form: URL-encoded text, as the console's forms and the admin API's
// query strings carry it.
#include <doctest/doctest.h>

#include "common/form.h"

using namespace mews;

TEST_CASE("forms and query strings: + is a space, %XX decoded, repeated names kept in order") {
  const auto values = form::parseUrlEncoded("id=1&csrf=a%2Bb&id=2&empty=&flag&next=%2Fconsole%2F%3Fx%3D1+2&bad=%zz");
  const form::Params params(values);
  CHECK(params.all("id") == std::vector<std::string>{"1", "2"});
  CHECK(params.get("csrf") == "a+b");
  CHECK_FALSE(params.get("empty"));
  CHECK_FALSE(params.get("flag"));
  CHECK(params.get("next") == "/console/?x=1 2");
  CHECK(params.get("bad") == "%zz");
  CHECK(form::urlEncode("a b/c?d=é") == "a%20b%2Fc%3Fd%3D%C3%A9");
}

TEST_CASE("encode writes what parseUrlEncoded reads back, repeated names and odd bytes included") {
  const form::Pairs pairs{{"id", "1"}, {"target", "a&b=c d+e%"}, {"id", "2"}, {"é", ""}};
  CHECK(form::encode(pairs) == "id=1&target=a%26b%3Dc%20d%2Be%25&id=2&%C3%A9=");
  CHECK(form::parseUrlEncoded(form::encode(pairs)) == pairs);
  CHECK(form::Params(pairs).has("é"));
  CHECK_FALSE(form::Params(pairs).has("flag"));
}
