#!/usr/bin/env bash
# Review of issue 22: the lease keeper renews each target in its own
# transaction (cluster.cpp round -> leases.cpp renewLease), so a round costs
# one durable COMMIT (a WAL flush) per held target, every second, per relay.
# This times N such renewals on one connection, as the keeper sends them, on
# the throwaway server (fsync = on, synchronous_commit = on).
# Usage: repro/keeper_round_cost.sh [N]   (MEWS_TEST_PG_URL, PGPASSFILE set)
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-300}"
url="${MEWS_TEST_PG_URL:?start scripts/pg-throwaway first}"
psql "$url" -X -q -v ON_ERROR_STOP=1 -c "DROP SCHEMA IF EXISTS r22k CASCADE; CREATE SCHEMA r22k;
  CREATE TABLE r22k.target_leases (target TEXT COLLATE \"C\" PRIMARY KEY, owner TEXT COLLATE \"C\" NOT NULL,
    epoch BIGINT NOT NULL, expires_at TIMESTAMPTZ NOT NULL);
  INSERT INTO r22k.target_leases SELECT 'target' || i, 'relay-a', 1, clock_timestamp() + interval '6 s'
    FROM generate_series(1, $n) i;" 2>/dev/null
sql=$(for i in $(seq 1 "$n"); do
  echo "BEGIN; UPDATE r22k.target_leases SET expires_at = clock_timestamp() + 6000 * interval '1 millisecond'"
  echo "  WHERE target = 'target$i' AND owner = 'relay-a' AND epoch = 1; COMMIT;"
done)
start=$(date +%s%N)
echo "$sql" | psql "$url" -X -q -v ON_ERROR_STOP=1 >/dev/null
ms=$(( ($(date +%s%N) - start) / 1000000 ))
batched_start=$(date +%s%N)
psql "$url" -X -q -v ON_ERROR_STOP=1 -c "UPDATE r22k.target_leases SET expires_at = clock_timestamp() + interval '6 s'
  WHERE owner = 'relay-a' AND target = ANY (SELECT 'target' || i FROM generate_series(1, $n) i);" >/dev/null
batched_ms=$(( ($(date +%s%N) - batched_start) / 1000000 ))
psql "$url" -X -q -c "DROP SCHEMA r22k CASCADE;" 2>/dev/null
echo "$n renewals, one transaction each (the keeper's round): ${ms} ms; in one statement: ${batched_ms} ms"
echo "the keeper renews every ${n} targets within kRenewEvery = 1000 ms; a lease's local validity is 4000 ms"
