#!/usr/bin/env bash
# Review of issue 22: a fenced claim whose COMMIT lands after another relay's
# acquisition leaves the row in_flight, stamped with an epoch nobody holds:
# the new owner's acquire released in_flight rows *before* the claim was
# visible, the new owner never claims in_flight rows, and the old owner's
# fenced release (claim = its current epoch) no longer matches. The row is
# stuck until the lease changes hands again.
#
# The claim runs in the writer's transaction (engine.cpp dispatchDue ->
# writer_.submit -> claimDelivery), so its statement and its COMMIT are
# separate round trips; a slow network or a busy writer stretches the gap.
# The SQL below is copied from lib/journal/queue.cpp (claimDelivery, fenced)
# and lib/journal/leases.cpp (acquireLease), with the binds filled in.
#
# Usage: repro/claim_commits_after_takeover.sh  (needs MEWS_TEST_PG_URL and
# PGPASSFILE from scripts/pg-throwaway start). Creates and drops schema r22a.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${MEWS_TEST_PG_URL:?start scripts/pg-throwaway first}"
url="$MEWS_TEST_PG_URL"
q() { psql "$url" -X -q -v ON_ERROR_STOP=1 -At -c "SET search_path TO r22a; $1"; }

psql "$url" -X -q -v ON_ERROR_STOP=1 -c "DROP SCHEMA IF EXISTS r22a CASCADE; CREATE SCHEMA r22a;"
{ echo "SET search_path TO r22a;"; cat migrations/postgresql/0001_journal.sql migrations/postgresql/0002_cluster.sql; } |
  psql "$url" -X -q -v ON_ERROR_STOP=1 >/dev/null
q "INSERT INTO batches (received_at, kind, event_count, body) VALUES ('2026-12-07T16:00:00.000Z', 'general', 1, 'x');"
q "INSERT INTO deliveries (batch_id, target, age_from, due_at, created_at, updated_at)
   SELECT id, 'hotel', '2026-12-07T16:00:00.000Z', '2026-12-07T16:00:00.000Z', '2026-12-07T16:00:00.000Z',
          '2026-12-07T16:00:00.000Z' FROM batches;" 2>/dev/null ||
  q "INSERT INTO deliveries (batch_id, target, age_from, due_at, updated_at)
     SELECT id, 'hotel', '2026-12-07T16:00:00.000Z', '2026-12-07T16:00:00.000Z', '2026-12-07T16:00:00.000Z' FROM batches;"
# relay-a holds the lease, epoch 5, unexpired for 2 s more.
q "INSERT INTO target_leases VALUES ('hotel', 'relay-a', 5, clock_timestamp() + interval '2 seconds');"

# relay-a's writer: BEGIN; the fenced claim (succeeds: the lease is unexpired).
fifo=$(mktemp -u); mkfifo "$fifo"
psql "$url" -X -q -v ON_ERROR_STOP=1 -At <"$fifo" >/tmp/r22a.out 2>&1 &
a_pid=$!
exec 3>"$fifo"
echo "SET search_path TO r22a; BEGIN;" >&3
# FIX=1: the proposed fix, the lease row locked FOR SHARE in the claim's transaction.
[ "${FIX:-0}" = 1 ] && echo "SELECT 1 FROM target_leases WHERE target = 'hotel' AND owner = 'relay-a'
      AND expires_at > clock_timestamp() FOR SHARE;" >&3
echo "UPDATE deliveries SET state = 'in_flight', updated_at = 'now', claim = l.epoch FROM target_leases l
      WHERE deliveries.id = 1 AND deliveries.state IN ('pending', 'retry_wait') AND l.target = deliveries.target
      AND l.owner = 'relay-a' AND l.expires_at > clock_timestamp() RETURNING 'relay-a claimed under epoch ' || claim;" >&3
# Time passes (the COMMIT is slow to arrive): the lease expires at the server.
sleep 2.5
# relay-b (the preferred owner) acquires: epoch 6, in_flight rows back to pending.
q "BEGIN;
   INSERT INTO target_leases (target, owner, epoch, expires_at) VALUES ('hotel', 'relay-b', 1, clock_timestamp() + 6000 * interval '1 millisecond')
   ON CONFLICT (target) DO UPDATE SET owner = excluded.owner, epoch = target_leases.epoch + 1, expires_at = excluded.expires_at
   WHERE target_leases.owner = excluded.owner OR target_leases.expires_at < clock_timestamp() - 0 * interval '1 millisecond'
   RETURNING 'relay-b acquired epoch ' || epoch;
   UPDATE deliveries SET state = 'pending', due_at = CASE WHEN age_from < due_at THEN age_from ELSE due_at END,
     updated_at = 'now' WHERE target = 'hotel' AND state = 'in_flight';
   COMMIT;" &
b_pid=$!
sleep 1
# relay-a's COMMIT arrives.
echo "COMMIT;" >&3
wait "$b_pid"
exec 3>&-
wait "$a_pid"
cat /tmp/r22a.out
# relay-a's attempt is cut (its local validity ended); its fenced release:
q "UPDATE deliveries SET state = 'pending', updated_at = 'now' WHERE state = 'in_flight' AND id = 1
   AND claim = (SELECT epoch FROM target_leases l WHERE l.target = deliveries.target AND l.owner = 'relay-a');"
# relay-b's dispatcher: selectDue sees nothing; its fenced claim cannot take the row.
echo "relay-b's selectDue: $(q "SELECT count(*) FROM deliveries WHERE target = 'hotel' AND state IN ('pending', 'retry_wait');") due"
echo "row: $(q "SELECT 'state=' || state || ' claim=' || claim FROM deliveries WHERE id = 1;")," \
  "lease: $(q "SELECT owner || ' epoch ' || epoch FROM target_leases;")"
stuck=$(q "SELECT count(*) FROM deliveries d JOIN target_leases l ON l.target = d.target WHERE d.state = 'in_flight' AND d.claim <> l.epoch;")
psql "$url" -X -q -c "DROP SCHEMA r22a CASCADE;"
rm -f "$fifo"
if [ "$stuck" != 0 ]; then echo "FAIL: $stuck acknowledged row(s) stuck in_flight under an epoch nobody holds"; exit 1; fi
echo "ok: no row stuck"
