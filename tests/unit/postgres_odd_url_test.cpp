// journal.url as a careless operator writes it: a password holding '@', '/'
// or '?' not percent-encoded, or a URI given as dbname. libpq parses these
// differently from what was meant and puts a piece of the password in the
// host, port or database name, which every log line about the journal shows
// (conninfoForDisplay) and libpq's own errors echo ("could not translate host
// name ..."); and maskConninfo, ending the user information where libpq does
// not, left a password with '?' unmasked in check-config.
#include <doctest/doctest.h>

#include "journal/postgres.h"

using mews::journal::conninfoForDisplay;
using mews::journal::conninfoProblem;
using mews::journal::maskConninfo;

namespace {

constexpr const char* kSecret = "Zq9secretpart";

}  // namespace

TEST_CASE("a URI whose password would leak into host, port or database is refused, without echoing it") {
  for (const std::string& given : {
           std::string("postgresql://mews:ab@") + kSecret + "@db:5432/mews",         // '@' in the password
           std::string("postgresql://mews:ab/") + kSecret + "@db:5432/mews",         // '/' in the password
           std::string("postgresql://mews:") + kSecret + "/x@db/mews",               // '/' in the password
           std::string("host=db dbname=postgresql://mews:") + kSecret + "@db/mews",  // a URI as dbname
           std::string("host=db dbname='user=mews password=") + kSecret + "'",       // key=value as dbname
       }) {
    CAPTURE(given);
    const std::string problem = conninfoProblem(given);
    CHECK_FALSE(problem.empty());
    CHECK(problem.find(kSecret) == std::string::npos);
    // Nor is it shown where a log line names the journal.
    CHECK(conninfoForDisplay(given).find(kSecret) == std::string::npos);
  }
  // What was accepted before still is: an '@' in a parameter value, encoded passwords.
  CHECK(conninfoProblem("postgresql://mews@db/mews?application_name=a@b").empty());
  CHECK(conninfoProblem("postgresql://mews:s3cr%40t%2Fx@db:5432/mews").empty());
  CHECK(conninfoProblem("postgresql://mews:pw@h1:5432,h2:5433/mews").empty());
  CHECK(conninfoProblem("host=db port=5433 dbname=mews").empty());
}

TEST_CASE("a password with '?' is masked where libpq reads it, and kept out of the display") {
  const std::string given = std::string("postgresql://mews:ab?") + kSecret + "@db:5432/mews";
  CHECK(conninfoProblem(given).empty());  // libpq reads it as the password
  CHECK(maskConninfo(given) == "postgresql://mews:***@db:5432/mews");
  CHECK(conninfoForDisplay(given) == "postgresql://mews@db:5432/mews");
  const std::string with_query = std::string("postgresql://mews:ab?") + kSecret + "@db/mews?password=x&sslmode=require";
  CHECK(maskConninfo(with_query) == "postgresql://mews:***@db/mews?password=***&sslmode=require");
}
