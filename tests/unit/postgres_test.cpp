// The PostgreSQL connection string as the operator sees it: its password
// masked in check-config, never shown in a log line (journal/postgres.h).
#include <doctest/doctest.h>

#include "journal/postgres.h"

using mews::journal::conninfoForDisplay;
using mews::journal::conninfoProblem;
using mews::journal::maskConninfo;

TEST_CASE("maskConninfo hides a password in every form libpq takes, and nothing else") {
  struct Case {
    const char* given;
    const char* shown;
  };
  for (const auto& c : std::initializer_list<Case>{
           {"postgresql://mews@db:5432/mews", "postgresql://mews@db:5432/mews"},
           {"postgresql://mews:s3cr%40t@db:5432/mews", "postgresql://mews:***@db:5432/mews"},
           {"postgres://mews:pw@h1:5432,h2:5433/mews?target_session_attrs=read-write",
            "postgres://mews:***@h1:5432,h2:5433/mews?target_session_attrs=read-write"},
           {"postgresql://mews@db/mews?sslmode=require&password=pw&application_name=x",
            "postgresql://mews@db/mews?sslmode=require&password=***&application_name=x"},
           {"postgresql://db/mews?password=pw", "postgresql://db/mews?password=***"},
           {"host=db user=mews password=pw dbname=mews", "host=db user=mews password=*** dbname=mews"},
           {"host=db password = 'p w\\' x' dbname=mews", "host=db password = *** dbname=mews"},
           {"host=db passfile=/etc/mews/pgpass dbname=mews", "host=db passfile=/etc/mews/pgpass dbname=mews"},
       }) {
    CAPTURE(c.given);
    CHECK(maskConninfo(c.given) == c.shown);
  }
}

TEST_CASE("conninfoForDisplay names user, hosts, port and database only") {
  CHECK(conninfoForDisplay("postgresql://mews:pw@db:5432/mews?sslmode=require") == "postgresql://mews@db:5432/mews");
  CHECK(conninfoForDisplay("host=db port=5433 user=mews password=pw dbname=j") == "postgresql://mews@db:5433/j");
  CHECK(conninfoForDisplay("postgresql://h1:1,h2:2/j") == "postgresql://h1,h2:1,2/j");
}

TEST_CASE("conninfoProblem refuses what libpq cannot parse, without echoing it") {
  CHECK(conninfoProblem("postgresql://mews@db/mews").empty());
  CHECK(conninfoProblem("host=db dbname=mews").empty());
  CHECK_FALSE(conninfoProblem("").empty());
  const std::string problem = conninfoProblem("host=db secretpassword");
  CHECK_FALSE(problem.empty());
  CHECK(problem.find("secretpassword") == std::string::npos);
  CHECK_FALSE(conninfoProblem("postgresql://db/mews?nosuchoption=1").empty());
}
