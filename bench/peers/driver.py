#!/usr/bin/env python3
"""The driver behind scripts/bench-peers: ingest and drain, in alternating
rounds, for nginx `return 202` (ingest only), mews-relay, and the two Node
peers (bench/peers/bullmq on Redis, bench/peers/pgboss on PostgreSQL).

Each system's cost is counted over its whole process tree (the relay; node and
redis-server; node and every process of the throwaway PostgreSQL cluster):
utime+stime of the live processes plus cutime+cstime (the children they reaped,
e.g. PostgreSQL backends that ended), sampled at the start and end of a phase.
Memory is the sum of PSS over the tree (shared memory, e.g. PostgreSQL's
shared buffers, counted once), sampled every 0.5 s; the peak is reported.

Phases, each bounded in time:
- ingest: wrk -t2 -c64 -dDURATION with ~2 KB Mews General batches of 21
  events, the delivery side idle (relay: target on a closed port, so its
  circuit opens after 5 failures; Node peers: WORKER=off). A fresh store each time.
- drain: BACKLOG batches posted (each must be answered 202) while nothing is
  delivered, then delivery starts and the clock runs until BACKLOG deliveries
  were counted. Relay: the backlog is posted with its target on a gate that
  holds each delivery 5 s before answering 200 (8 batches per 5 s, no failure,
  no backoff, the circuit closed); then its config is rewritten to the sink, it
  gets SIGHUP, and the gate answers what it holds (those count as delivered).
  Node peers: WORKER=paused, SIGUSR2 starts the already connected worker.
The sink is one nginx `return 200` (1 worker) for everyone; its stub_status
`requests` counter, minus this driver's own polls, counts deliveries.

Settings come from the environment: ROUNDS, DURATION, BACKLOG, CONNECTIONS,
CONCURRENCY, RELAY_BIN, SYSTEMS (comma list), WORK_DIR (parent of the temp dir).
"""
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from mews_batch import write_body  # noqa: E402  the body every benchmark posts

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PEERS = os.path.join(ROOT, "bench", "peers")
PG_BIN = "/usr/lib/postgresql/15/bin"
TICK = os.sysconf("SC_CLK_TCK")

ROUNDS = int(os.environ.get("ROUNDS", "3"))
DURATION = int(os.environ.get("DURATION", "10"))
BACKLOG = int(os.environ.get("BACKLOG", "20000"))
CONNECTIONS = int(os.environ.get("CONNECTIONS", "64"))
CONCURRENCY = int(os.environ.get("CONCURRENCY", "8"))
RELAY_BIN = os.path.abspath(os.environ.get("RELAY_BIN", os.path.join(ROOT, "build/app/mews-relay")))
SYSTEMS = os.environ.get("SYSTEMS", "nginx,relay,bullmq,pgboss").split(",")
START_TIMEOUT = 60
# Slow enough for the slowest system seen here (pg-boss ~1k/s) with room to spare.
POST_TIMEOUT = 60 + BACKLOG / 100
DRAIN_TIMEOUT = 60 + BACKLOG / 100

NAMES = {"nginx": "nginx `return 202`", "relay": "mews-relay", "bullmq": "Node + Redis/BullMQ",
         "pgboss": "Node + PostgreSQL/pg-boss"}


class BenchError(Exception):
    pass


def log(line):
    print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc=None, timeout=START_TIMEOUT, what="server"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"{what} exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise BenchError(f"{what} not listening on 127.0.0.1:{port} after {timeout} s")


def run(cmd, timeout=120, **kw):
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if result.returncode != 0:
        raise BenchError(f"{' '.join(cmd)} exited {result.returncode}: {result.stderr.strip()[-500:]}")
    return result.stdout


# ---------------------------------------------------------------- process tree
def _stat(pid):
    """(ppid, CPU ticks of the process and of the children it reaped, command name)"""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    fields = text[text.rindex(")") + 2:].split()
    # fields[0] is state (field 3); ppid is field 4, utime..cstime 14..17.
    return int(fields[1]), sum(int(v) for v in fields[11:15]), text[text.index("(") + 1:text.rindex(")")]


def tree_pids(roots):
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parents[int(entry)] = _stat(entry)[0]
            except (OSError, ValueError):
                pass
    pids, frontier = set(), [p for p in roots if p in parents]
    while frontier:
        pid = frontier.pop()
        if pid not in pids:
            pids.add(pid)
            frontier.extend(child for child, parent in parents.items() if parent == pid)
    return pids


def tree_cpu_s(roots):
    """CPU seconds so far of the tree, by command name."""
    by_name = {}
    for pid in tree_pids(roots):
        try:
            _, ticks, name = _stat(pid)
        except (OSError, ValueError):
            continue
        by_name[name] = by_name.get(name, 0) + ticks / TICK
    return by_name


def cpu_delta(before, after):
    names = set(before) | set(after)
    return {name: after.get(name, 0) - before.get(name, 0) for name in names}


def cpu_split(by_name):
    total = sum(by_name.values()) or 1
    parts = sorted(by_name.items(), key=lambda item: -item[1])
    return " · ".join(f"{name} {100 * seconds / total:.0f}%" for name, seconds in parts if seconds > 0)


def tree_pss_kib(roots):
    total = 0
    for pid in tree_pids(roots):
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                total += int(re.search(r"^Pss:\s+(\d+)", f.read(), re.M).group(1))
        except (OSError, AttributeError):
            pass
    return total


class Meter:
    """CPU seconds and peak PSS of a system's process tree over one phase."""

    def __init__(self, roots):
        self.roots = roots  # callable -> root pids (PostgreSQL's postmaster is found late)
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self):
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, tree_pss_kib(self.roots()))
            self._stop.wait(0.5)

    def cpu(self):
        return tree_cpu_s(self.roots())

    def stop(self):
        self._stop.set()
        self._thread.join()
        self.peak_kib = max(self.peak_kib, tree_pss_kib(self.roots()))
        return self.peak_kib / 1024


# ---------------------------------------------------------------- processes
class Processes:
    """Every process this driver started; stop_all() ends them, newest first."""

    def __init__(self):
        self.procs = []
        self.stoppers = []

    def start(self, cmd, log_path, env=None, cwd=None):
        out = open(log_path, "ab")
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, cwd=cwd)
        out.close()
        self.procs.append(proc)
        return proc

    def stop(self, proc, sig=signal.SIGTERM, timeout=20):
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self):
        for proc in reversed(list(self.procs)):
            try:
                self.stop(proc)
            except Exception as err:  # keep cleaning up
                log(f"cleanup: {err}")
        for stopper in reversed(self.stoppers):
            try:
                stopper()
            except Exception as err:
                log(f"cleanup: {err}")
        self.stoppers.clear()


# ---------------------------------------------------------------- the shared sink
class Sink:
    """nginx `return 200`; deliveries counted from stub_status's `requests`."""

    def __init__(self, work, procs):
        self.port = free_port()
        self.status_port = free_port()
        self.dir = os.path.join(work, "sink")
        os.makedirs(self.dir)
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""worker_processes 1;
daemon off;
error_log {self.dir}/error.log;
pid {self.dir}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {self.dir}/body;
  keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{self.port}; location / {{ return 200; }} }}
  server {{ listen 127.0.0.1:{self.status_port}; location / {{ stub_status; }} }}
}}
""")
        self.proc = procs.start(["nginx", "-p", self.dir, "-c", conf], os.path.join(self.dir, "nginx.out"))
        wait_port(self.port, self.proc, what="sink nginx")
        wait_port(self.status_port, self.proc, what="sink nginx status")
        self.polls = 0  # each poll is itself one of the requests counted
        self.url = f"http://127.0.0.1:{self.port}/hook"

    def _requests(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.status_port}/", timeout=5) as answer:
            text = answer.read().decode()
        self.polls += 1
        return int(text.splitlines()[2].split()[2])

    def mark(self):
        return (self._requests(), self.polls)

    def delivered_since(self, mark):
        requests = self._requests()
        return requests - mark[0] - (self.polls - mark[1])


class Gate:
    """A slow target for the relay's backlog: each delivery is held HOLD_S (under
    the relay's default 10 s attempt timeout) and then answered 200, so while the
    backlog is posted the relay delivers 8 batches per HOLD_S, none fails, no
    backoff is scheduled and its circuit stays closed; open() answers at once."""
    HOLD_S = 5

    def __init__(self):
        import http.server
        gate = self
        self.count = 0
        self._lock = threading.Lock()
        self._open = threading.Event()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                gate._open.wait(Gate.HOLD_S)
                with gate._lock:
                    gate.count += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def open(self):
        self._open.set()

    def close(self):
        self._open.set()
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------- the load
def wrk(url, work, body_path):
    script = os.path.join(work, "post.lua")
    with open(script, "w") as f:
        f.write(f'local f = io.open("{body_path}", "rb")\nwrk.method = "POST"\nwrk.body = f:read("*a")\n'
                f'f:close()\nwrk.headers["Content-Type"] = "application/json"\n')
    out = subprocess.run(["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{DURATION}s", "--latency", "-s", script, url],
                         capture_output=True, text=True, timeout=DURATION + 60).stdout
    if "50%" not in out:
        raise BenchError("wrk gave no latency figures:\n" + out)

    def ms(v):
        m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", v)
        return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[m.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {"requests": int(re.search(r"(\d+) requests in", out).group(1)),
            "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p99": ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),
            "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": errors.group(0) if errors else ""}


def post_backlog(url, body_path):
    out = run(["node", os.path.join(PEERS, "post-backlog.js"), url, body_path, str(BACKLOG), "32"],
              timeout=POST_TIMEOUT)
    count, seconds = out.split()
    return int(count), float(seconds)


def wait_drained(sink, mark, elsewhere, started, what):
    deadline = started + DRAIN_TIMEOUT
    while True:
        delivered = sink.delivered_since(mark) + elsewhere()
        if delivered >= BACKLOG:
            return time.monotonic() - started
        if time.monotonic() > deadline:
            raise BenchError(f"{what}: {delivered} of {BACKLOG} delivered after {DRAIN_TIMEOUT:.0f} s")
        time.sleep(0.05)


# ---------------------------------------------------------------- the systems
class System:
    """One system under test; start() for a phase, roots() for its meter, stop()."""
    ingest_only = False

    def __init__(self, ctx):
        self.ctx = ctx
        self.token = "bench-peers-" + os.urandom(12).hex()
        self.port = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/webhooks/mews?token={self.token}"

    def delivered_elsewhere(self):
        """Backlog batches delivered somewhere else than the sink (the relay's gate)."""
        return 0


class Nginx(System):
    ingest_only = True

    def start(self, phase_dir, deliver):
        self.port = free_port()
        conf = os.path.join(phase_dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""worker_processes auto;
daemon off;
error_log {phase_dir}/error.log;
pid {phase_dir}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {phase_dir}/body;
  server {{ listen 127.0.0.1:{self.port}; location / {{ return 202; }} }}
}}
""")
        self.proc = self.ctx.procs.start(["nginx", "-p", phase_dir, "-c", conf], os.path.join(phase_dir, "out.log"))
        wait_port(self.port, self.proc, what="nginx")

    def roots(self):
        return [self.proc.pid]

    def stop(self):
        self.ctx.procs.stop(self.proc, signal.SIGQUIT)


class Relay(System):
    """mews-relay at its defaults (no --log-level), the target at CONCURRENCY."""

    def _config(self, target_url):
        with open(self.config, "w") as f:
            f.write(f"""[server]
listen = 127.0.0.1:{self.port}
tokens = {self.token}
[admin]
listen = 127.0.0.1:{self.admin_port}
[journal]
path = {self.dir}/relay.db
[target.sink]
url = {target_url}
concurrency = {CONCURRENCY}
""")

    def start(self, phase_dir, deliver):
        self.dir = phase_dir
        self.port, self.admin_port = free_port(), free_port()
        self.config = os.path.join(phase_dir, "relay.ini")
        self.gate = None
        if deliver:
            self.gate = Gate()
            self._config(self.gate.url)
        else:
            # Nothing listens there: deliveries fail fast and the circuit opens.
            self._config(f"http://127.0.0.1:{free_port()}/hook")
        self.proc = self.ctx.procs.start([RELAY_BIN, "-c", self.config, "serve"], os.path.join(phase_dir, "relay.log"),
                                         cwd=phase_dir)
        wait_port(self.port, self.proc, what="mews-relay")

    def start_delivering(self):
        # The next attempts go to the sink (a reload keeps the queue); the ones
        # the gate holds are answered now.
        self._config(self.ctx.sink.url)
        self.proc.send_signal(signal.SIGHUP)
        self.gate.open()

    def delivered_elsewhere(self):
        return self.gate.count if self.gate else 0

    def roots(self):
        return [self.proc.pid]

    def settings(self):
        db = os.path.join(self.dir, "relay.db")
        mode = subprocess.run(["sqlite3", db, "PRAGMA journal_mode"], capture_output=True, text=True).stdout.strip()
        return f"journal_mode={mode or '?'} (read back); synchronous=FULL is set by the relay on its connection"

    def stop(self):
        self.ctx.procs.stop(self.proc)
        if self.gate:
            self.gate.close()


class NodePeer(System):
    peer = None  # directory under bench/peers

    def _start_node(self, phase_dir, deliver, extra_env):
        self.port = free_port()
        env = dict(os.environ, PORT=str(self.port), TOKEN=self.token, SINK_URL=self.ctx.sink.url,
                   CONCURRENCY=str(CONCURRENCY), WORKER="paused" if deliver else "off", **extra_env)
        self.node = self.ctx.procs.start(["node", "index.js"], os.path.join(phase_dir, "node.log"), env=env,
                                         cwd=os.path.join(PEERS, self.peer))
        wait_port(self.port, self.node, what=f"{self.peer} peer")

    def start_delivering(self):
        self.node.send_signal(signal.SIGUSR2)

    def stop(self):
        self.ctx.procs.stop(self.node)
        self._stop_store()


class BullMQ(NodePeer):
    peer = "bullmq"

    def start(self, phase_dir, deliver):
        self.redis_port = free_port()
        data = os.path.join(phase_dir, "redis")
        os.makedirs(data)
        self.redis = self.ctx.procs.start(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.redis_port), "--dir", data,
             "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no",
             "--maxmemory-policy", "noeviction", "--logfile", ""],
            os.path.join(phase_dir, "redis.log"))
        wait_port(self.redis_port, self.redis, what="redis-server")
        self._start_node(phase_dir, deliver, {"REDIS_PORT": str(self.redis_port)})

    def roots(self):
        return [self.node.pid, self.redis.pid]

    def settings(self):
        def get(key):
            out = run(["redis-cli", "-p", str(self.redis_port), "CONFIG", "GET", key]).split()
            return f"{key}={out[1] if len(out) > 1 else '?'}"
        version = run(["redis-server", "--version"]).split()[2].removeprefix("v=")
        return f"{get('appendonly')} {get('appendfsync')} (redis-cli CONFIG GET; redis-server {version})"

    def _stop_store(self):
        self.ctx.procs.stop(self.redis)


class PgBoss(NodePeer):
    peer = "pgboss"

    def start(self, phase_dir, deliver):
        pg = self.ctx.postgres
        self.database = "peer_" + os.path.basename(phase_dir).replace("-", "_")
        pg.start()
        pg.psql(f"CREATE DATABASE {self.database}")
        self._start_node(phase_dir, deliver,
                         {"DATABASE_URL": f"postgres://postgres@127.0.0.1:{pg.port}/{self.database}"})

    def roots(self):
        return [self.node.pid] + self.ctx.postgres.roots()

    def settings(self):
        pg = self.ctx.postgres
        shown = " ".join(f"{k}={pg.psql(f'SHOW {k}').strip()}" for k in ("fsync", "synchronous_commit",
                                                                           "wal_sync_method"))
        return f"{shown} (psql SHOW; {pg.psql('SHOW server_version').strip()})"

    def _stop_store(self):
        self.ctx.postgres.psql(f"DROP DATABASE IF EXISTS {self.database}")
        self.ctx.postgres.stop()


class Postgres:
    """One throwaway cluster (initdb once), started for each pg-boss phase."""

    def __init__(self, work, procs):
        self.dir = os.path.join(work, "pg")
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self.running = False
        os.makedirs(self.dir)
        self.as_user = []
        if os.getuid() == 0:
            # initdb refuses root: the cluster belongs to an unprivileged user.
            user = "postgres" if subprocess.run(["id", "postgres"], capture_output=True).returncode == 0 else "nobody"
            shutil.chown(self.dir, user)
            os.chmod(os.path.dirname(self.dir), 0o755)
            self.as_user = ["runuser", "-u", user, "--"]
        run(self.as_user + [f"{PG_BIN}/initdb", "-D", self.data, "-U", "postgres", "--auth=trust",
                            "--no-instructions"], timeout=120)
        procs.stoppers.append(self.stop)

    def start(self):
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} -c fsync=on "
                   f"-c synchronous_commit=on")
        run(self.as_user + [f"{PG_BIN}/pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "server.log"),
                            "-o", options, "-w", "-t", str(START_TIMEOUT), "start"], timeout=START_TIMEOUT + 10)
        self.running = True

    def stop(self):
        if self.running:
            run(self.as_user + [f"{PG_BIN}/pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop"], timeout=60)
            self.running = False

    def psql(self, sql):
        return run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres",
                    "-Atc", sql], timeout=60)

    def roots(self):
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                return [int(f.readline())]
        except (OSError, ValueError):
            return []


# ---------------------------------------------------------------- phases
def ingest(ctx, system, name, round_no):
    phase_dir = os.path.join(ctx.work, f"{name}-ingest-{round_no}")
    os.makedirs(phase_dir)
    system.start(phase_dir, deliver=False)
    try:
        meter = Meter(system.roots)
        cpu0 = meter.cpu()
        result = wrk(system.url, phase_dir, ctx.body)
        cpu = cpu_delta(cpu0, meter.cpu())
        result["rss"] = meter.stop()
        result["cpu_ms_per_req"] = sum(cpu.values()) * 1000 / max(result["requests"], 1)
        result["cpu_split"] = cpu_split(cpu)
        if hasattr(system, "settings"):
            ctx.settings[name] = system.settings()
    finally:
        system.stop()
    if result["non2xx"] or result["socket_errors"]:
        log(f"{name} ingest: {result['non2xx']} non-2xx answers; {result['socket_errors']}")
    return result


def drain(ctx, system, name, round_no):
    phase_dir = os.path.join(ctx.work, f"{name}-drain-{round_no}")
    os.makedirs(phase_dir)
    system.start(phase_dir, deliver=True)
    try:
        meter = Meter(system.roots)
        posted, post_s = post_backlog(system.url, ctx.body)
        time.sleep(1)  # let anything still settling after the last 202 settle (not timed)
        mark = ctx.sink.mark()
        cpu0 = meter.cpu()
        started = time.monotonic()
        system.start_delivering()
        seconds = wait_drained(ctx.sink, mark, system.delivered_elsewhere, started, name)
        cpu = cpu_delta(cpu0, meter.cpu())
        time.sleep(1)  # anything beyond BACKLOG now is a duplicate delivery
        extra = ctx.sink.delivered_since(mark) + system.delivered_elsewhere() - BACKLOG
        rss = meter.stop()
    finally:
        system.stop()
    if extra:
        log(f"{name} drain: {extra} deliveries beyond the backlog (duplicates)")
    return {"posted": posted, "post_rps": posted / post_s, "seconds": seconds, "rate": BACKLOG / seconds,
            "cpu_ms_per_batch": sum(cpu.values()) * 1000 / BACKLOG, "cpu_split": cpu_split(cpu), "rss": rss,
            "extra": extra}


class Context:
    pass


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value, digits=0, suffix=""):
    if value is None:
        return "—"
    return f"{value:,.{digits}f}{suffix}"


def main():
    for tool in ("wrk", "nginx", "node"):
        if not shutil.which(tool):
            raise BenchError(f"{tool} is not installed (scripts/bench-peers installs it)")
    if "relay" in SYSTEMS and not os.access(RELAY_BIN, os.X_OK):
        raise BenchError(f"no relay binary at {RELAY_BIN} (RELAY_BIN)")
    ctx = Context()
    ctx.procs = Processes()
    ctx.settings = {}
    ctx.work = tempfile.mkdtemp(prefix="mews-bench-peers.", dir=os.environ.get("WORK_DIR", "/var/tmp"))
    run_started = time.monotonic()
    try:
        body_size = write_body(os.path.join(ctx.work, "body.json"))
        ctx.body = os.path.join(ctx.work, "body.json")
        ctx.sink = Sink(ctx.work, ctx.procs)
        if "pgboss" in SYSTEMS:
            ctx.postgres = Postgres(ctx.work, ctx.procs)
        classes = {"nginx": Nginx, "relay": Relay, "bullmq": BullMQ, "pgboss": PgBoss}
        systems = {name: classes[name](ctx) for name in SYSTEMS}
        results = {name: [] for name in SYSTEMS}
        for round_no in range(1, ROUNDS + 1):
            shift = (round_no - 1) % len(SYSTEMS)
            order = SYSTEMS[shift:] + SYSTEMS[:shift]
            log(f"round {round_no}/{ROUNDS}: {', '.join(order)}")
            for name in order:
                row = {"round": round_no, "ingest": ingest(ctx, systems[name], name, round_no), "drain": None}
                log(f"  {name} ingest: {row['ingest']['rps']:,.0f} req/s, p99 {row['ingest']['p99']:.1f} ms")
                results[name].append(row)
            for name in order:
                if systems[name].ingest_only:
                    continue
                row = results[name][-1]
                row["drain"] = drain(ctx, systems[name], name, round_no)
                log(f"  {name} drain: {row['drain']['rate']:,.0f} batches/s ({row['drain']['seconds']:.1f} s)")
        report(ctx, results, body_size, time.monotonic() - run_started)
    finally:
        ctx.procs.stop_all()
        if os.environ.get("KEEP_WORK"):
            log(f"work dir kept: {ctx.work}")
        else:
            shutil.rmtree(ctx.work, ignore_errors=True)


def report(ctx, results, body_size, elapsed):
    nginx_rps = median([r["ingest"]["rps"] for r in results.get("nginx", [])])
    print(f"machine: {os.cpu_count()} cores, {os.uname().release}; stores on "
          f"{run(['df', '--output=fstype', ctx.work]).split()[-1]} ({os.path.dirname(ctx.work)}); "
          f"wrk -t2 -c{CONNECTIONS} -d{DURATION}s; body {body_size} B (Mews General batch, 21 events); "
          f"backlog {BACKLOG}; {CONCURRENCY} deliveries in flight; {ROUNDS} round(s); run took {elapsed:.0f} s")
    print()
    print("| system | ingest req/s | × nginx | p99 ms | CPU ms/req | drain batches/s | CPU ms/delivered batch "
          "| peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for name, rows in results.items():
        rps = median([r["ingest"]["rps"] for r in rows])
        drains = [r["drain"] for r in rows if r["drain"]]
        print(f"| {NAMES[name]} | {fmt(rps)} | {fmt(rps / nginx_rps if nginx_rps else None, 3)} "
              f"| {fmt(median([r['ingest']['p99'] for r in rows]), 1)} "
              f"| {fmt(median([r['ingest']['cpu_ms_per_req'] for r in rows]), 3)} "
              f"| {fmt(median([d['rate'] for d in drains]))} "
              f"| {fmt(median([d['cpu_ms_per_batch'] for d in drains]), 3)} "
              f"| {fmt(max([r['ingest']['rss'] for r in rows] + [d['rss'] for d in drains]), 1)} |")
    print()
    print("Medians over the rounds (× nginx: median over median); peak RSS: the largest sum of PSS over the "
          "system's processes, ingest or drain.")
    print()
    print("| round | system | ingest req/s | p99 ms | CPU ms/req | non-2xx | backlog posted/s | drain s "
          "| drain batches/s | CPU ms/delivered batch | duplicates | peak RSS MiB ingest / drain |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for round_no in range(1, ROUNDS + 1):
        for name, rows in results.items():
            row = rows[round_no - 1]
            i, d = row["ingest"], row["drain"]
            print(f"| {round_no} | {NAMES[name]} | {fmt(i['rps'])} | {fmt(i['p99'], 1)} | {fmt(i['cpu_ms_per_req'], 3)} "
                  f"| {i['non2xx']} | {fmt(d and d['post_rps'])} | {fmt(d and d['seconds'], 2)} | {fmt(d and d['rate'])} "
                  f"| {fmt(d and d['cpu_ms_per_batch'], 3)} | {fmt(d and d['extra'])} "
                  f"| {fmt(i['rss'], 1)} / {fmt(d and d['rss'], 1)} |")
    print()
    print("Where each system's CPU went (share of its CPU time by process name):")
    print()
    print("| round | system | ingest | drain |")
    print("|---|---|---|---|")
    for round_no in range(1, ROUNDS + 1):
        for name, rows in results.items():
            row = rows[round_no - 1]
            print(f"| {round_no} | {NAMES[name]} | {row['ingest']['cpu_split']} "
                  f"| {row['drain']['cpu_split'] if row['drain'] else '—'} |")
    print()
    print("Durability, read back from the running servers:")
    for name, text in ctx.settings.items():
        print(f"- {NAMES[name]}: {text}")


if __name__ == "__main__":
    def stop_on_signal(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, stop_on_signal)
    signal.signal(signal.SIGINT, stop_on_signal)
    # The whole run is bounded: each phase has its own timeout, and so does the run.
    def out_of_time(_signum, _frame):
        raise BenchError("the run exceeded its time limit")
    signal.signal(signal.SIGALRM, out_of_time)
    per_round = len(SYSTEMS) * (DURATION + 30) + 3 * (2 * POST_TIMEOUT)
    signal.alarm(int(300 + ROUNDS * per_round))
    try:
        main()
    except BenchError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
