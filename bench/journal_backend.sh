# shellcheck shell=bash disable=SC2034 # journal_ini, journal_where: read by the sourcing script
# The journal backend of a benchmark run (sourced by scripts/bench-ingest and
# scripts/bench-delivery): BACKEND=sqlite (the default: a journal file in the
# run's directory) or BACKEND=postgresql (a throwaway PostgreSQL 15 from
# scripts/pg-throwaway, with the tests' durable settings: fsync,
# synchronous_commit and full_page_writes on; its own directory under
# /var/tmp, on the same disk as the SQLite runs).
#
#   journal_backend_start WORK   starts what the backend needs; sets
#                                journal_ini (the [journal] key to write) and
#                                journal_where (where the journal's bytes live)
#   journal_backend_settings     one line: the server's durability and memory settings
#   journal_sql SQL              runs SQL on the journal; rows as `a|b` lines
#   journal_backend_cpu_ticks    CPU ticks of the server (postmaster, its
#                                backends and the reaped ones); 0 for sqlite
#   journal_backend_stop         stops and removes the server (for the caller's
#                                EXIT trap; harmless when nothing was started)
# The password of the server's role stays in its passfile (PGPASSFILE).

backend="${BACKEND:-sqlite}"
case "$backend" in
  sqlite | postgresql) ;;
  *) echo "error: BACKEND must be sqlite or postgresql, not '$backend'" >&2; exit 2 ;;
esac
pg_dir=""

journal_backend_start() {
  local work="$1"
  if [[ "$backend" == sqlite ]]; then
    journal_db="$work/relay.db"
    journal_ini="path = $journal_db"
    journal_where="$work"
    return
  fi
  # Not inside WORK: pg-throwaway hands its directory to the postgres user, and WORK is 0700 root.
  pg_dir="$(mktemp -d /var/tmp/mews-bench-pg.XXXXXX)"
  local started
  started="$(scripts/pg-throwaway start "$pg_dir")" || { echo "error: the PostgreSQL server did not start" >&2; exit 1; }
  while IFS= read -r assignment; do export "${assignment?}"; done <<<"$started"
  journal_ini="url = ${MEWS_TEST_PG_URL:?}"
  journal_where="$pg_dir"
}

journal_backend_settings() {
  if [[ "$backend" == sqlite ]]; then
    echo "journal: SQLite $(sqlite3 --version | cut -d' ' -f1) (the relay sets journal_mode=wal, synchronous=FULL)"
    return
  fi
  local name line version
  version="$(journal_sql "SHOW server_version" | cut -d' ' -f1)"
  line="journal: PostgreSQL $version on 127.0.0.1 (TCP, scram-sha-256):"
  for name in fsync synchronous_commit shared_buffers wal_level full_page_writes max_wal_size wal_sync_method; do
    line+=" $name=$(journal_sql "SHOW $name")"
  done
  echo "$line"
}

journal_sql() {
  if [[ "$backend" == sqlite ]]; then
    sqlite3 "$journal_db" "$@"
  else
    psql "$MEWS_TEST_PG_URL" -X -q -A -t -v ON_ERROR_STOP=1 -c "$1"
  fi
}

journal_backend_cpu_ticks() {
  if [[ "$backend" == sqlite ]]; then
    echo 0
    return
  fi
  local postmaster
  postmaster="$(head -n 1 "$pg_dir/data/postmaster.pid")"
  # The postmaster's own and reaped children's time (fields 14-17), plus each live child's.
  awk '{print $14 + $15 + $16 + $17}' "/proc/$postmaster/stat" |
    cat - <(for pid in $(pgrep -P "$postmaster"); do awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || true; done) |
    awk '{total += $1} END {print total}'
}

journal_backend_stop() {
  if [[ -n "$pg_dir" ]]; then
    scripts/pg-throwaway stop "$pg_dir" || true
    pg_dir=""
  fi
}
