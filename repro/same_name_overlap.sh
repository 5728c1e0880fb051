#!/usr/bin/env bash
# Review of issue 22: two processes with one [relay] name both dispatch one
# target. Relay "same" (process 1) is paused with SIGSTOP (a VM freeze, a
# stop-the-world pause; a cut-off host behaves alike) long enough for its beat
# to go stale; a standby host with the same configuration file starts process
# 2: awaitNameFree lets it in, and it takes the lease at once (acquireLease:
# owner = excluded.owner, unexpired or not). Process 1 resumes. From then on
# each re-acquires from the other every round (same owner), and the fence
# (l.owner = the name) lets both claim: the target, concurrency = 1, sees
# overlapping requests. Nothing refuses either process after its start.
# SECOND_NAME=other: the negative control, process 2 named differently.
# Usage: repro/same_name_overlap.sh   (MEWS_TEST_PG_URL, PGPASSFILE set; build/app/mews-relay built)
set -euo pipefail
cd "$(dirname "$0")/.."
url="${MEWS_TEST_PG_URL:?start scripts/pg-throwaway first}"
bin=build/app/mews-relay
work=$(mktemp -d /tmp/r22same.XXXX)
psql "$url" -X -q -c "DROP SCHEMA IF EXISTS r22s CASCADE; CREATE SCHEMA r22s;" 2>/dev/null
journal_url="${url}?options=-csearch_path%3Dr22s"
base=$((20000 + RANDOM % 20000))
sink_port=$base
pids=()
cleanup() { for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null; kill "$p" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT

# The sink: each request held 300 ms; counts requests open at once.
cat >"$work/sink.py" <<'PY'
import http.server, sys, threading, time, json
lock = threading.Lock(); state = {"open": 0, "max": 0, "overlaps": 0, "requests": 0}
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with lock:
            state["open"] += 1; state["requests"] += 1
            if state["open"] > 1: state["overlaps"] += 1
            state["max"] = max(state["max"], state["open"])
        time.sleep(0.3)
        with lock: state["open"] -= 1
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def do_GET(self):
        with lock: body = json.dumps(state).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
python3 "$work/sink.py" "$sink_port" & pids+=($!)

config() {  # $1: ingest port, $2: admin port, $3: relay name
  cat <<INI
[server]
listen = 127.0.0.1:$1
path = /webhooks/mews
tokens = test-token-0123456789abcdef
[admin]
listen = 127.0.0.1:$2
[journal]
url = $journal_url
[relay]
name = $3
[target.pms]
url = http://127.0.0.1:$sink_port/hook
concurrency = 1
timeout = 5s
backoff = 10ms..50ms
INI
}
config $((base + 1)) $((base + 2)) same >"$work/one.ini"
config $((base + 3)) $((base + 4)) "${SECOND_NAME:-same}" >"$work/two.ini"
body='{"EnterpriseId":"851df8c8-90f2-4c4a-8e01-a4fc46b25178","IntegrationId":"c8bee838-7fb1-4f4e-8fac-ac87008b2f90","Events":[{"Discriminator":"ReservationUpdated","Value":{"Id":"00000000-0000-0000-0000-000000000001"}}]}'
post() { curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' --data "$body" \
  "http://127.0.0.1:$1/webhooks/mews?token=test-token-0123456789abcdef" || true; }

"$bin" -c "$work/one.ini" serve >"$work/one.log" 2>&1 & one=$!; pids+=($one)
for _ in $(seq 50); do grep -q "lease acquired" "$work/one.log" && break; sleep 0.2; done
for _ in $(seq 10); do post $((base + 1)) >/dev/null; done
kill -STOP "$one"; echo "process 1 paused (SIGSTOP)"
"$bin" -c "$work/two.ini" serve >"$work/two.log" 2>&1 & two=$!; pids+=($two)
for _ in $(seq 100); do grep -q "lease acquired" "$work/two.log" && break; sleep 0.2; done
grep -q "lease acquired" "$work/two.log" || { echo "process 2 never acquired"; tail "$work/two.log"; exit 2; }
echo "process 2 started with the same name and acquired the lease"
kill -CONT "$one"; echo "process 1 resumed"
# Load on both for 8 s.
end=$((SECONDS + 8))
while [ $SECONDS -lt $end ]; do post $((base + 1)) >/dev/null; post $((base + 3)) >/dev/null; sleep 0.05; done
sleep 3
stats=$(curl -s "http://127.0.0.1:$sink_port/")
a1=$(grep -c "lease acquired" "$work/one.log" || true); a2=$(grep -c "lease acquired" "$work/two.log" || true)
l1=$(grep -c "lease lost" "$work/one.log" || true); l2=$(grep -c "lease lost" "$work/two.log" || true)
echo "sink: $stats"
echo "process 1: $a1 acquisitions, $l1 losses; process 2: $a2 acquisitions, $l2 losses"
echo "epoch now: $(psql "$url" -X -At -c "SELECT epoch FROM r22s.target_leases" 2>/dev/null)"
echo "logs in $work"
max=$(echo "$stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["max"])')
if [ "$max" -gt 1 ]; then echo "FAIL: a concurrency = 1 target saw $max requests at once from two processes named 'same'"; exit 1; fi
echo "ok: never more than one request at once"
