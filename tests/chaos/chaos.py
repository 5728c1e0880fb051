#!/usr/bin/env python3
"""Fault scenarios against the real mews-relay binary, on loopback only.

Each scenario starts the relay (build/app/mews-relay) on 127.0.0.1 port 0 with
its own journal, posts uniquely numbered General webhooks from several threads,
records which got a 202, injects its fault, and at the end counts at a real
HTTP sink which acknowledged events arrived. It returns a Result, printed as
one line:

    kill-9: cycles 4, restart-to-ready ...; acked 4812 events, delivered 4812, lost 0, duplicates 37, integrity ok

and a table of every scenario's acked, delivered and lost ends the run.
Result.failures() alone decides: a scenario fails when it lost an acknowledged
event, when nothing was acknowledged, when the journal's integrity_check is not
ok, or when an expected effect of its fault was not seen (no 503 while the disk
was full, ...); the negative control (a build that acks before it commits)
fails when it did NOT lose. The harness's own test: test_chaos_harness.py.
Every wait is bounded; every loop is bounded in count.

Backends (--backend): sqlite (the default) runs every scenario on an SQLite
journal file. postgresql starts a throwaway PostgreSQL 15 (scripts/pg-throwaway:
fsync, synchronous_commit and full_page_writes on), gives each scenario a
fresh schema of its own, and stops the server at the end whatever happens
(a failure, Ctrl-C, SIGTERM). On postgresql, integrity is PostgreSQL's amcheck
(bt_index_check of every index, verify_heapam of every table of the schema)
instead of SQLite's integrity_check, and the scenarios are:
    kill-9, target-faults, clock-jumps, slow-clients   as on sqlite
    pg-restart   `pg_ctl restart -m immediate` of the server, several times,
                 under ingest load: every 202-acked batch delivered, 503s
                 while it is down counted, ingest back after each restart
    relay-kill, relay-partition, rolling-upgrade
                 several relays (--relays N, default 3) on one PostgreSQL
                 journal behind HAProxy, on a test network of namespaces with
                 a server of its own (tests/chaos/cluster.py; needs root)
Not applicable on postgresql, because they are about the SQLite file: disk-full
and watermark (a tmpfs under the journal file), io-errors (fiu fails the
relay's own fdatasync/pwrite of the file) and negative-control (its unsafe
build acks before the SQLite commit). They are not run there, and not listed
in the results; --only with one of them is a usage error.
"""

from __future__ import annotations

import argparse
import contextlib
import email.utils
import http.client
import http.server
import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOKEN = "chaos-token-5f3a9c1e7b2d4086"  # must never appear in a relay log (checked)
FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"


class ScenarioFailed(Exception):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise ScenarioFailed(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


# --- the downstream target ----------------------------------------------------------------------


class Sink:
    """A real HTTP server standing in for a target. `behaviour(index)` returns
    'ok', 'hang', 'reset', '429' or '500' for the index-th request."""

    def __init__(self, port: int = 0, behaviour=None):
        self.behaviour = behaviour or (lambda index: "ok")
        self.lock = threading.Lock()
        self.count = 0
        self.received: dict[str, int] = {}  # event id -> deliveries
        self.arrivals: dict[str, float] = {}  # event id -> first arrival (monotonic)
        self.request_times: list[float] = []
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without this, Nagle's
            # algorithm and the client's delayed ACK add 40 ms to every answer.
            disable_nagle_algorithm = True

            def do_POST(self):  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with sink.lock:
                    index = sink.count
                    sink.count += 1
                    sink.request_times.append(time.monotonic())
                action = sink.behaviour(index)
                if action == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    self.close_connection = True
                    return
                if action == "hang":
                    time.sleep(3)
                    self.close_connection = True
                    return
                if action in ("429", "500"):
                    self.send_response(int(action))
                    if action == "429":
                        self.send_header("Retry-After", "1")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                now = time.monotonic()
                with sink.lock:
                    for event in json.loads(body).get("Events", []):
                        event_id = event["Value"]["Id"]
                        sink.received[event_id] = sink.received.get(event_id, 0) + 1
                        sink.arrivals.setdefault(event_id, now)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            allow_reuse_address = True

            def handle_error(self, request, client_address):
                pass  # a relay killed mid-request breaks its connections: expected here

        self.server = Server(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            return dict(self.received)


# --- the journal's PostgreSQL server (--backend postgresql) ------------------------------------


PG_THROWAWAY = os.path.join(ROOT, "scripts/pg-throwaway")


class PgServer:
    """A throwaway PostgreSQL 15 (scripts/pg-throwaway) for one run: started by
    start(), removed by stop() (also when start() failed half-way). Each
    scenario gets a fresh schema (new_journal): the relay keeps one journal,
    and its advisory lock, per schema."""

    def __init__(self):
        # Under /tmp: the postgres user must reach it (pg-throwaway runs the server as postgres under root).
        self.directory = tempfile.mkdtemp(prefix="mews-chaos-pg-", dir="/tmp")
        self.url = ""
        self.passfile = ""
        self.password = ""
        self.schemas = 0

    def start(self) -> None:
        process = subprocess.run([PG_THROWAWAY, "start", self.directory], capture_output=True, text=True, timeout=180)
        check(process.returncode == 0, f"the PostgreSQL server did not start: {process.stderr.strip()}")
        started = dict(line.split("=", 1) for line in process.stdout.splitlines() if "=" in line)
        self.url, self.passfile = started["MEWS_TEST_PG_URL"], started["PGPASSFILE"]
        with open(self.passfile) as f:
            self.password = f.read().strip().rsplit(":", 1)[1]  # host:port:db:user:password
        # amcheck (contrib, shipped with the server): the integrity check of a schema.
        self.psql("CREATE EXTENSION IF NOT EXISTS amcheck")

    def psql(self, sql: str) -> str:
        """Runs `sql` as the server's superuser in the relay's database; its rows, unaligned."""
        process = subprocess.run([PG_THROWAWAY, "psql", self.directory, "-d", "mews", "-At", "-c", sql],
                                 capture_output=True, text=True, timeout=120)
        check(process.returncode == 0, f"psql failed ({sql[:60]}...): {process.stderr.strip()}")
        return process.stdout.strip()

    def settings(self) -> str:
        names = ("server_version", "fsync", "synchronous_commit", "full_page_writes", "wal_sync_method")
        values = self.psql("SELECT " + ", ".join(f"current_setting('{name}')" for name in names)).split("|")
        return " ".join(f"{name}={value}" for name, value in zip(names, values))

    def new_journal(self, label: str) -> "PgJournal":
        self.schemas += 1
        schema = re.sub(r"[^a-z0-9]", "_", f"chaos_{self.schemas}_{label}".lower())
        self.psql(f"CREATE SCHEMA {schema} AUTHORIZATION mews")
        return PgJournal(self, schema)

    def restart_immediate(self) -> float:
        """`pg_ctl restart -m immediate`: the server stops without a checkpoint (as
        if it crashed) and comes back through crash recovery; the seconds it took."""
        started = time.monotonic()
        process = subprocess.run([PG_THROWAWAY, "ctl", self.directory, "restart", "-m", "immediate", "-w", "-t", "60"],
                                 capture_output=True, text=True, timeout=120)
        check(process.returncode == 0, f"pg_ctl restart failed: {process.stderr.strip()}")
        return time.monotonic() - started

    def keep_log(self, destination: str) -> str:
        """Copies the server's log to `destination` (before stop() removes it); its path."""
        os.makedirs(destination, exist_ok=True)
        kept = os.path.join(destination, "postgresql.log")
        with contextlib.suppress(OSError):
            shutil.copy(os.path.join(self.directory, "server.log"), kept)
        return kept

    def stop(self) -> None:
        subprocess.run([PG_THROWAWAY, "stop", self.directory], capture_output=True, timeout=120)


@dataclass
class PgJournal:
    """One scenario's journal: a schema of its own on the run's server."""

    server: PgServer
    schema: str

    @property
    def url(self) -> str:
        return f"{self.server.url}?options=-csearch_path%3D{self.schema}"

    def env(self) -> dict[str, str]:
        return {"PGPASSFILE": self.server.passfile}

    def integrity(self) -> str:
        """amcheck over the schema: "ok", or what it found. bt_index_check raises
        an error on a damaged index; verify_heapam returns a row per damaged tuple."""
        relations = ("FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace{lateral} "
                     f"WHERE n.nspname = '{self.schema}' AND c.relkind = ")
        try:
            indexes = self.server.psql(f"SELECT count(bt_index_check(c.oid, true)) {relations.format(lateral='')}'i' "
                                       "AND c.relam = (SELECT oid FROM pg_am WHERE amname = 'btree')")
            damage = self.server.psql(f"SELECT c.relname || ': ' || v.msg "
                                      f"{relations.format(lateral=', LATERAL verify_heapam(c.oid) v')}'r' LIMIT 3")
        except ScenarioFailed as e:
            return "amcheck: " + " ".join(str(e).split())
        if damage:
            return "amcheck: " + damage.replace("\n", "; ")
        return "ok" if int(indexes) > 0 else "amcheck: no index in the schema"


# --- the relay under test ---------------------------------------------------------------------


class Relay:
    def __init__(self, binary: str, workdir: str, extra_config: str, targets: dict[str, str], journal: str | None = None,
                 min_free: str = "0B", pg: "PgJournal | None" = None):
        """`pg`: the journal is that PostgreSQL schema; otherwise the SQLite file `journal`."""
        self.binary = binary
        self.workdir = workdir
        self.pg = pg
        self.journal = journal or os.path.join(workdir, "relay.db")
        self.config = os.path.join(workdir, "relay.ini")
        self.log_path = os.path.join(workdir, "relay.log")
        sections = "".join(
            f"[target.{name}]\nurl = {url}\ntimeout = 1s\nbackoff = 100ms..1s\nmax_attempts = 1000\nmax_age = 1h\n"
            for name, url in targets.items()
        )
        with open(self.config, "w") as f:
            f.write(
                f"[server]\nlisten = 127.0.0.1:0\ntokens = ${{system.env.CHAOS_RELAY_TOKEN}}\n"
                f"[admin]\nlisten = 127.0.0.1:0\n[journal]\n" +
                (f"url = {pg.url}\n" if pg else f"path = {self.journal}\nmin_free = {min_free}\n") +
                f"[delivery]\nworkers = 8\n{extra_config}\n{sections}"
            )
        self.process: subprocess.Popen | None = None
        self.port = 0
        self.admin_port = 0

    def start(self, prefix: list[str] | None = None, env: dict[str, str] | None = None, timeout: float = 20) -> float:
        """Starts `serve` and waits for /readyz; returns the milliseconds from spawn to ready."""
        started = time.monotonic()
        offset = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        log = open(self.log_path, "a")
        environment = dict(os.environ, CHAOS_RELAY_TOKEN=TOKEN, **(self.pg.env() if self.pg else {}), **(env or {}))
        self.process = subprocess.Popen(
            (prefix or []) + [self.binary, "-c", self.config, "serve"], stderr=log, stdout=log, env=environment,
            cwd=self.workdir)
        log.close()

        def serving() -> bool:
            with open(self.log_path) as f:
                f.seek(offset)
                match = re.search(r"msg=serving .* port=(\d+) .*admin=127\.0\.0\.1:(\d+)", f.read())
            if match:
                self.port, self.admin_port = int(match.group(1)), int(match.group(2))
            return bool(match)

        check(wait_until(lambda: serving() or self.process.poll() is not None, timeout) and self.process.poll() is None,
              f"relay did not start; see {self.log_path}")
        check(wait_until(lambda: self.get("/readyz")[0] == 200, timeout), "relay never became ready")
        return (time.monotonic() - started) * 1000

    def get(self, path: str) -> tuple[int, str]:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=5)
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read().decode()
        except OSError:
            return 0, ""

    def date_offset_days(self) -> float:
        """How far the relay process's wall clock is from ours, read off the
        Date header Poco stamps on each answer (clock_gettime per response)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=5)
        connection.request("GET", "/healthz")
        response = connection.getresponse()
        response.read()
        theirs = email.utils.parsedate_to_datetime(response.getheader("Date")).timestamp()
        return (theirs - time.time()) / 86400

    def kill9(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                raise ScenarioFailed("relay did not stop within 30 s of SIGTERM")
            check(self.process.returncode == 0, f"relay exited {self.process.returncode} on SIGTERM")

    def integrity(self) -> str:
        if self.pg:
            return self.pg.integrity()
        connection = sqlite3.connect(f"file:{self.journal}?mode=ro", uri=True)
        try:
            return connection.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            connection.close()

    def log_text(self) -> str:
        with open(self.log_path) as f:
            return f.read()


# --- the sender ---------------------------------------------------------------------------------


@dataclass
class Load:
    """Posts batches of `events_per_batch` uniquely numbered events from `threads`
    threads until stopped or `max_batches` were sent."""

    relay: Relay
    prefix: str
    threads: int = 8
    events_per_batch: int = 3
    max_batches: int = 100_000
    pause: float = 0.0
    acked: set = field(default_factory=set)
    ack_times: dict = field(default_factory=dict)
    statuses: dict = field(default_factory=dict)
    retry_after_seen: int = 0

    def __post_init__(self):
        self.lock = threading.Lock()
        self.next = 0
        self.stopping = threading.Event()
        self.workers: list[threading.Thread] = []

    def body(self, number: int) -> tuple[bytes, list[str]]:
        ids = [f"{self.prefix}-{number}-{k}" for k in range(self.events_per_batch)]
        events = [{"Discriminator": "ReservationUpdated", "Value": {"Id": i}} for i in ids]
        payload = {"EnterpriseId": "chaos", "IntegrationId": "chaos", "Events": events}
        return json.dumps(payload).encode(), ids

    def post_one(self, connection_holder: list) -> int | None:
        """Posts the next batch; its status (0: no answer), or None when all were sent."""
        with self.lock:
            if self.next >= self.max_batches:
                return None
            number = self.next
            self.next += 1
        body, ids = self.body(number)
        status = 0
        try:
            if connection_holder[0] is None:
                connection_holder[0] = http.client.HTTPConnection("127.0.0.1", self.relay.port, timeout=10)
            connection = connection_holder[0]
            connection.request("POST", f"/webhooks/mews?token={TOKEN}", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            status = response.status
            if status == 503 and response.getheader("Retry-After"):
                with self.lock:
                    self.retry_after_seen += 1
            if response.getheader("Connection", "").lower() == "close":
                connection.close()
                connection_holder[0] = None
        except (OSError, http.client.HTTPException):
            if connection_holder[0] is not None:
                connection_holder[0].close()
            connection_holder[0] = None
        with self.lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if status == 202:
                now = time.monotonic()
                for i in ids:
                    self.acked.add(i)
                    self.ack_times[i] = now
        return status

    def run_thread(self) -> None:
        holder = [None]
        while not self.stopping.is_set() and self.post_one(holder) is not None:
            if self.pause:
                time.sleep(self.pause)
        if holder[0] is not None:
            holder[0].close()

    def start(self) -> "Load":
        self.stopping.clear()
        self.workers = [threading.Thread(target=self.run_thread, daemon=True) for _ in range(self.threads)]
        for worker in self.workers:
            worker.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        for worker in self.workers:
            worker.join(timeout=30)

    def wait(self, timeout: float) -> None:
        for worker in self.workers:
            worker.join(timeout=timeout)


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# --- the verdict --------------------------------------------------------------------------------


@dataclass
class Delivery:
    """What became of the acknowledged events at the sink. With several targets
    (`combine`), `delivered`, `lost` and `duplicates` count (event, target) pairs."""

    acked: int  # events that got a 202
    delivered: int
    lost: int  # acknowledged and never arrived
    duplicates: int
    missing: list = field(default_factory=list)  # the lost event ids
    targets: int = 1

    @staticmethod
    def combine(parts: list["Delivery"]) -> "Delivery":
        return Delivery(acked=max((part.acked for part in parts), default=0),
                        delivered=sum(part.delivered for part in parts), lost=sum(part.lost for part in parts),
                        duplicates=sum(part.duplicates for part in parts),
                        missing=[event_id for part in parts for event_id in part.missing],
                        targets=sum(part.targets for part in parts))


def settle(sink: Sink, acked: set, timeout: float) -> Delivery:
    """Waits (at most `timeout` s) until every acknowledged event reached the sink, then counts."""
    wait_until(lambda: acked.issubset(sink.snapshot().keys()), timeout, 0.2)
    received = sink.snapshot()
    missing = sorted(acked - received.keys())
    duplicates = sum(count - 1 for event_id, count in received.items() if event_id in acked)
    return Delivery(len(acked), len(acked) - len(missing), len(missing), duplicates, missing)


@dataclass
class Result:
    """A scenario's outcome. Whether the run passes is decided by `failures()`
    and nowhere else: a scenario reports what it measured and which effects of
    its fault it saw; it cannot leave out the loss check, which is here."""

    name: str
    delivery: Delivery
    integrity: str  # PRAGMA integrity_check of the journal once the relay stopped
    facts: str = ""  # the scenario's own figures, for its line
    expected: dict = field(default_factory=dict)  # an effect the fault must have -> whether it was seen
    expect_loss: bool = False  # the negative control: loss MUST be seen

    def failures(self) -> list[str]:
        delivery = self.delivery
        problems = []
        if self.expect_loss:
            if delivery.lost == 0:
                problems.append("the suite did NOT detect loss")
        elif delivery.lost:
            problems.append(f"lost {delivery.lost} acknowledged events (first: {', '.join(delivery.missing[:3])})")
        if delivery.acked == 0:
            problems.append("nothing was acknowledged: the load did not run")
        if self.integrity != "ok":
            problems.append(f"journal integrity_check: {self.integrity}")
        problems += [f"did not see: {effect}" for effect, seen in self.expected.items() if not seen]
        return problems

    def line(self) -> str:
        delivery = self.delivery
        over = f" over {delivery.targets} targets" if delivery.targets > 1 else ""
        text = (f"{self.name}: " + (f"{self.facts}; " if self.facts else "") +
                f"acked {delivery.acked} events, delivered {delivery.delivered}{over}, lost {delivery.lost}, "
                f"duplicates {delivery.duplicates}, integrity {self.integrity}")
        if self.expect_loss and delivery.lost:
            text += " -> loss detected, as it must be"
        return text

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @staticmethod
    def from_json(text: str) -> "Result":
        data = json.loads(text)
        data["delivery"] = Delivery(**data["delivery"])
        return Result(**data)


def stop_relay(relay: Relay) -> str:
    """Stops the relay (it must exit 0 on SIGTERM), checks that its log holds no
    token; returns the journal's integrity_check."""
    relay.stop()
    no_token_in(relay)
    return relay.integrity()


def finish(relay: Relay, sink: Sink, acked: set, settle_seconds: float) -> tuple[Delivery, str]:
    """The common end of a scenario: wait for the deliveries, stop the relay,
    check the log and the journal."""
    delivery = settle(sink, acked, settle_seconds)
    return delivery, stop_relay(relay)


def teardown(relay: Relay, *sinks: Sink) -> None:
    """Whatever happened: stop the sinks, and kill a relay still running."""
    for sink in sinks:
        sink.stop()
    if relay.process and relay.process.poll() is None:
        relay.process.kill()
        relay.process.wait(timeout=10)


def no_token_in(relay: Relay) -> None:
    check(TOKEN not in relay.log_text(), f"the token appears in {relay.log_path}")
    if relay.pg:
        check(relay.pg.server.password not in relay.log_text(),
              f"the journal database's password appears in {relay.log_path}")


# --- scenarios ----------------------------------------------------------------------------------


def pg_journal(args, label: str) -> PgJournal | None:
    """On --backend postgresql, a fresh schema on the run's server for the scenario's relay."""
    server = getattr(args, "pg", None)
    return server.new_journal(label) if server else None


def scenario_kill9(args, workdir: str, binary: str | None = None, cycles: int | None = None,
                   name: str = "kill-9", expect_loss: bool = False) -> Result:
    """kill -9 at random moments under concurrent load, restart each time; at the end
    every batch that got a 202 must reach the sink."""
    cycles = cycles or args.cycles
    sink = Sink()
    relay = Relay(binary or args.binary, workdir, "", {"pms": sink.url()}, pg=pg_journal(args, name))
    ready_ms = []
    acked: set = set()
    try:
        for cycle in range(cycles):
            ready_ms.append(relay.start())
            load = Load(relay, f"k{cycle}", threads=16 if binary else 8).start()
            time.sleep(random.uniform(0.2, 1.2))
            relay.kill9()
            load.stop()
            acked |= load.acked
        ready_ms.append(relay.start())
        delivery, integrity = finish(relay, sink, acked, args.settle)
    finally:
        teardown(relay, sink)
    facts = (f"cycles {cycles}, restart-to-ready p50 {percentile(ready_ms, 0.5):.0f} ms "
             f"max {max(ready_ms):.0f} ms")
    return Result(name, delivery, integrity, facts, expect_loss=expect_loss)


def scenario_negative_control(args, workdir: str) -> Result:
    """The kill -9 scenario against a build that answers 202 before the commit:
    it must report loss, or the suite could not tell a broken relay from a good one."""
    check(os.path.exists(args.unsafe_binary), f"no unsafe build at {args.unsafe_binary}")
    return scenario_kill9(args, workdir, binary=args.unsafe_binary, cycles=max(3, args.cycles // 4),
                          name="negative-control (ack before commit)", expect_loss=True)


RESULT_PREFIX = "RESULT "  # how a scenario run in a mount namespace hands its Result back


def in_mount_namespace(args, workdir: str, name: str) -> Result | None:
    """Runs scenario `name` again in a private mount namespace (where it may
    mount a tmpfs) and returns its Result, for the runner to judge; None when
    already inside."""
    if args.inside_namespace:
        return None
    process = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, __file__,
                              "--inside-namespace", "--only", name, "--binary", args.binary,
                              "--workdir", workdir, "--settle", str(args.settle)],
                             capture_output=True, text=True, timeout=300)
    sys.stderr.write(process.stderr)
    lines = [line for line in process.stdout.splitlines() if line.strip()]
    results = [line[len(RESULT_PREFIX):] for line in lines if line.startswith(RESULT_PREFIX)]
    check(bool(results), f"{name} (in its mount namespace, exit {process.returncode}): " + " | ".join(lines))
    return Result.from_json(results[-1])


def small_disk(workdir: str) -> str:
    """A 16 MiB tmpfs for the journal: room for the WAL to grow to its checkpoint
    size (1,000 pages) once space returns. (On 4 MiB the WAL filled the disk
    again and the last batches rightly waited, undelivered, beyond the settle.)"""
    mount = os.path.join(workdir, "small-disk")
    os.makedirs(mount, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", mount], check=True)
    return mount


def release_small_disk(workdir: str, mount: str) -> None:
    for name in os.listdir(mount):  # the journal outlives the tmpfs, for a post-mortem
        if name.startswith("relay.db"):
            shutil.copy(os.path.join(mount, name), workdir)
    subprocess.run(["umount", mount], check=False)


def fill(mount: str, leave_bytes: int) -> str:
    filler = os.path.join(mount, "filler")
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, shutil.disk_usage(mount).free - leave_bytes))
    return filler


def scenario_disk_full(args, workdir: str) -> Result:
    """The journal on a 16 MiB tmpfs (its own mount namespace), filled up: 503 with
    Retry-After, never a 202 for what could not be stored; space freed while the
    relay runs: it takes writes again by itself."""
    result = in_mount_namespace(args, workdir, "disk-full")
    if result:
        return result
    mount = small_disk(workdir)
    sink = Sink()
    relay = Relay(args.binary, workdir, "", {"pms": sink.url()}, journal=os.path.join(mount, "relay.db"))
    try:
        relay.start()
        filler = fill(mount, 400 * 1024)
        load = Load(relay, "d", threads=4, events_per_batch=40, max_batches=3000)
        load.start()
        filled = wait_until(lambda: load.statuses.get(503, 0) >= 50, 30)
        load.stop()
        check(filled, f"disk-full: no 503 while the disk was full (statuses {load.statuses})")
        refused = load.statuses.get(503, 0)
        ready_while_full = relay.get("/readyz")[0]
        os.remove(filler)  # space returns; the relay is not restarted
        recovery_started = time.monotonic()
        after = Load(relay, "r", threads=1, max_batches=200, pause=0.02)
        after.start()
        recovered = wait_until(lambda: after.statuses.get(202, 0) > 0, 20)
        recovered_ms = (time.monotonic() - recovery_started) * 1000
        after.wait(30)
        ready_after = relay.get("/readyz")[0]
        delivery, integrity = finish(relay, sink, load.acked | after.acked, args.settle)
    finally:
        teardown(relay, sink)
        release_small_disk(workdir, mount)
    facts = (f"refused 503 {refused} (Retry-After on {load.retry_after_seen}), /readyz {ready_while_full} while full, "
             f"writes again {recovered_ms:.0f} ms after space returned, /readyz {ready_after} then")
    # While SQLite reports the disk full, a small write may still fit into WAL
    # space that failed commits left allocated, so /readyz may say either; the
    # watermark scenario checks its flip deterministically.
    return Result("disk-full", delivery, integrity, facts, expected={
        "Retry-After on every 503": load.retry_after_seen == refused,
        "writes taken again after the space returned": recovered,
        "/readyz 200 after the space returned": ready_after == 200,
    })


def scenario_watermark(args, workdir: str) -> Result:
    """`min_free = 8MiB` on a 16 MiB tmpfs: a file takes the free space below the
    watermark while the relay runs, then is deleted. /readyz and the posts must
    follow: 200/202, then 503 (reason min_free), then 200/202 again."""
    result = in_mount_namespace(args, workdir, "watermark")
    if result:
        return result
    mount = small_disk(workdir)
    sink = Sink()
    relay = Relay(args.binary, workdir, "", {"pms": sink.url()}, journal=os.path.join(mount, "relay.db"),
                  min_free="8MiB")
    try:
        relay.start()
        phases = []
        acked: set = set()
        for phase, leave in (("above", None), ("below", 4 << 20), ("above again", None)):
            filler = fill(mount, leave) if leave else None
            load = Load(relay, f"w{len(phases)}", threads=1, max_batches=20).start()
            load.wait(30)
            ready, reason = relay.get("/readyz")
            phases.append((phase, ready, dict(load.statuses), reason))
            acked |= load.acked
            if filler:
                os.remove(filler)
        delivery, integrity = finish(relay, sink, acked, args.settle)
    finally:
        teardown(relay, sink)
        release_small_disk(workdir, mount)
    facts = "; ".join(f"{phase}: /readyz {ready}, posts {statuses}" for phase, ready, statuses, _ in phases)
    following = [(200, {202: 20}), (503, {503: 20}), (200, {202: 20})]
    return Result("watermark", delivery, integrity, facts, expected={
        "/readyz and posts 200/202, then 503/503, then 200/202":
            [(ready, statuses) for _, ready, statuses, _ in phases] == following,
        "/readyz naming min_free below the watermark": "min_free" in phases[1][3],
    })


def scenario_io_errors(args, workdir: str) -> Result:
    """fiu-run injects one failing fdatasync or pwrite at a time, k times, under load."""
    sink = Sink()
    relay = Relay(args.binary, workdir, "", {"pms": sink.url()})
    injected = {"posix/io/sync/fdatasync": 0, "posix/io/rw/pwrite": 0}
    acked: set = set()
    refused = 0
    try:
        relay.start(prefix=["fiu-run", "-x"])
        for n in range(args.injections):
            point = list(injected)[n % 2]
            load = Load(relay, f"io{n}", threads=2, max_batches=10 + n).start()
            load.wait(30)
            subprocess.run(["fiu-ctrl", "-c", f"enable name={point},onetime", str(relay.process.pid)], check=True)
            injected[point] += 1
            after = Load(relay, f"io{n}b", threads=2, max_batches=10).start()
            after.wait(30)
            acked |= load.acked | after.acked
            refused += load.statuses.get(503, 0) + after.statuses.get(503, 0)
        delivery, integrity = finish(relay, sink, acked, args.settle)
        reopened = relay.log_text().count("journal reopened after a failed commit")
    finally:
        teardown(relay, sink)
    facts = (f"injected {sum(injected.values())} (fdatasync {injected['posix/io/sync/fdatasync']}, "
             f"pwrite {injected['posix/io/rw/pwrite']}), refused 503 {refused}, journal reopened {reopened}")
    return Result("io-errors", delivery, integrity, facts, expected={
        "a 503 for a failed commit": refused >= 1,
        "the journal reopened after a failed commit": reopened >= 1,
    })


def scenario_target_faults(args, workdir: str) -> Result:
    """Three targets: healthy; flaky (a 5xx storm, then hangs past the timeout,
    resets and 429 with Retry-After for as long as the load runs); down for the
    whole load, then back. Nothing lost, no stuck worker, and the healthy target
    is not held up by the others."""
    storm_until = time.monotonic() + 4
    faults = {"on": True}  # the flaky target's faults last as long as the load

    def flaky(index: int) -> str:
        if time.monotonic() < storm_until:
            return "500"
        if not faults["on"]:
            return "ok"
        return ["hang", "reset", "429", "ok", "ok", "ok"][index % 6]

    healthy = Sink()
    flaky_sink = Sink(behaviour=flaky)
    down_port = free_port()
    sinks = {"healthy": healthy, "flaky": flaky_sink}
    relay = Relay(args.binary, workdir, "", {"healthy": healthy.url(), "flaky": flaky_sink.url(),
                                             "down": f"http://127.0.0.1:{down_port}/hook"},
                  pg=pg_journal(args, "target_faults"))
    try:
        relay.start()
        load = Load(relay, "t", threads=4, max_batches=args.batches, pause=0.01).start()
        load.wait(120)
        acked = load.acked
        healthy_first = settle(healthy, acked, args.settle)
        faults["on"] = False
        latencies = [(healthy.arrivals[i] - load.ack_times[i]) * 1000 for i in acked if i in healthy.arrivals]
        sinks["down"] = Sink(port=down_port)  # the target comes back
        per_target = {name: settle(sink, acked, args.settle) for name, sink in sinks.items()}
        status_ok = wait_until(lambda: "mews_relay_deliveries_in_flight{target=\"flaky\"} 0" in relay.get("/metrics")[1],
                               10)
        integrity = stop_relay(relay)
    finally:
        teardown(relay, *sinks.values())
    facts = ("delivered " + ", ".join(f"{name} {delivery.delivered}" for name, delivery in per_target.items()) +
             f"; healthy target while the others failed: p50 {percentile(latencies, 0.5):.0f} ms "
             f"p99 {percentile(latencies, 0.99):.0f} ms (flaky target answered {flaky_sink.count} requests)")
    return Result("target-faults", Delivery.combine(list(per_target.values())), integrity, facts, expected={
        "everything at the healthy target while the others failed": healthy_first.lost == 0,
        "no delivery left in flight at the flaky target": status_ok,
        "the healthy target not held up (p99 under 1 s)": percentile(latencies, 0.99) < 1000,
    })


def scenario_clock_jumps(args, workdir: str) -> Result:
    """libfaketime steps the wall clock +2 days, then back 1 day, while deliveries
    wait for a failing target (max_age 1h): no dead letter, no stampede."""
    failing = {"on": True}
    sink = Sink(behaviour=lambda index: "500" if failing["on"] else "ok")
    clock_file = os.path.join(workdir, "faketime")
    with open(clock_file, "w") as f:
        f.write("+0\n")
    env = {"LD_PRELOAD": FAKETIME_LIB, "FAKETIME_TIMESTAMP_FILE": clock_file, "FAKETIME_NO_CACHE": "1",
           "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    relay = Relay(args.binary, workdir, "", {"pms": sink.url()}, pg=pg_journal(args, "clock_jumps"))

    def requests_in(seconds: float) -> int:
        start = time.monotonic()
        time.sleep(seconds)
        with sink.lock:
            return sum(1 for t in sink.request_times if t >= start)

    def dead_letters() -> int:
        return int(re.search(r'mews_relay_dead_letters\{target="pms"\} (\d+)', relay.get("/metrics")[1]).group(1))

    try:
        relay.start(env=env)
        load = Load(relay, "c", threads=2, max_batches=50).start()
        load.wait(30)
        time.sleep(2)
        before = requests_in(2)
        with open(clock_file, "w") as f:
            f.write("+2d\n")
        forward = requests_in(2)
        jumped_days = relay.date_offset_days()
        dead_after_forward = dead_letters()
        with open(clock_file, "w") as f:
            f.write("-1d\n")
        backward = requests_in(2)
        failing["on"] = False
        delivery = settle(sink, load.acked, args.settle)
        dead = dead_letters()
        integrity = stop_relay(relay)
    finally:
        teardown(relay, sink)
    facts = (f"+2d then -1d (the process's clock read {jumped_days:+.1f} days), max_age 1h, dead letters "
             f"{dead_after_forward} after the jump / {dead} at the end, requests to the failing target per 2 s: "
             f"before {before}, after +2d {forward}, after -1d {backward}")
    # A stampede would send all 50 waiting deliveries at once; backoff keeps the pace.
    return Result("clock-jumps", delivery, integrity, facts, expected={
        "the relay's clock moved by faketime": jumped_days > 1.9,
        "no dead letter after the jump": dead_after_forward == 0,
        "no dead letter at the end": dead == 0,
        "no stampede after +2d": forward <= max(10, 3 * before),
        "no stampede after -1d": backward <= max(10, 3 * before),
    })


def scenario_slow_clients(args, workdir: str) -> Result:
    """slowhttptest holds 100 slow-header and 100 slow-body connections while a
    normal client posts every 50 ms: the normal client is served throughout."""
    sink = Sink()
    relay = Relay(args.binary, workdir, "[server]\nrequest_timeout = 5s\n", {"pms": sink.url()},
                  pg=pg_journal(args, "slow_clients"))
    attackers = []
    try:
        relay.start()
        url = f"http://127.0.0.1:{relay.port}/webhooks/mews"
        # Slow heads need no token (the head is read before it is checked); slow
        # bodies carry it, or the relay would answer 401 without reading them.
        for mode, target in (("-H", url), ("-B", f"{url}?token={TOKEN}")):
            attackers.append(subprocess.Popen(
                ["slowhttptest", mode, "-c", "100", "-r", "100", "-i", "1", "-l", str(args.slow_seconds), "-t", "POST",
                 "-u", target, "-s", "8192", "-x", "16", "-p", "3"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(2)  # the slow connections are open
        latencies = []
        statuses: dict[int, int] = {}
        load = Load(relay, "s", threads=1, max_batches=10_000)
        holder = [None]
        deadline = time.monotonic() + args.slow_seconds - 4
        while time.monotonic() < deadline:
            started = time.monotonic()
            status = load.post_one(holder)
            statuses[status] = statuses.get(status, 0) + 1
            latencies.append((time.monotonic() - started) * 1000)
            time.sleep(0.05)
        log = relay.log_text()
        slow_heads = log.count("reason=\"request head not received in time\"")
        slow_bodies = log.count("reason=\"body not received in time")
        delivery = settle(sink, load.acked, args.settle)
        for attacker in attackers:
            attacker.kill()
            attacker.wait()
        integrity = stop_relay(relay)
    finally:
        for attacker in attackers:
            if attacker.poll() is None:
                attacker.kill()
                attacker.wait()
        teardown(relay, sink)
    sent = sum(statuses.values())
    facts = (f"100 slow-header + 100 slow-body connections; normal client {statuses.get(202, 0)}/{sent} accepted, "
             f"p50 {percentile(latencies, 0.5):.1f} ms p99 {percentile(latencies, 0.99):.1f} ms "
             f"max {max(latencies, default=0):.0f} ms; cut off with 408: {slow_heads} slow heads, "
             f"{slow_bodies} slow bodies")
    return Result("slow-clients", delivery, integrity, facts, expected={
        "every post of the normal client accepted": sent > 0 and statuses.get(202, 0) == sent,
        "408 for the 100 slow heads": slow_heads >= 100,
        "408 for the 100 slow bodies": slow_bodies >= 100,
    })


def scenario_pg_restart(args, workdir: str) -> Result:
    """PostgreSQL only: `pg_ctl restart -m immediate` of the journal's server,
    `args.restarts` times, at random moments under ingest load. The relay stays
    up: while the server is down it answers 503 (counted), and takes posts again
    by itself once it is back; every batch that got a 202 must be delivered."""
    server = getattr(args, "pg", None)
    check(server is not None, "pg-restart needs --backend postgresql")
    sink = Sink()
    relay = Relay(args.binary, workdir, "", {"pms": sink.url()}, pg=pg_journal(args, "pg_restart"))
    restart_s: list[float] = []
    back_ms: list[float] = []
    try:
        relay.start()
        load = Load(relay, "p", threads=8, pause=0.005).start()
        for _ in range(args.restarts):
            time.sleep(random.uniform(0.5, 1.5))
            restart_s.append(server.restart_immediate())
            up = time.monotonic()
            acked_before = load.statuses.get(202, 0)
            if wait_until(lambda: load.statuses.get(202, 0) > acked_before, 30):
                back_ms.append((time.monotonic() - up) * 1000)
        time.sleep(1)  # some load after the last restart
        load.stop()
        reconnects = relay.log_text().count("msg=\"reconnected to the journal database\"")
        delivery, integrity = finish(relay, sink, load.acked, args.settle)
    finally:
        teardown(relay, sink)
    statuses = dict(sorted(load.statuses.items()))
    refused = statuses.get(503, 0)
    facts = (f"restarts {len(restart_s)} (immediate, each {percentile(restart_s, 0.5):.1f} s), "
             f"refused 503 {refused} (Retry-After on {load.retry_after_seen}), posts by status {statuses}, "
             f"ingest back after the server was up: p50 {percentile(back_ms, 0.5):.0f} ms "
             f"max {max(back_ms, default=0):.0f} ms, writer reconnected {reconnects} times")
    return Result("pg-restart", delivery, integrity, facts, expected={
        "posts accepted again after every restart": len(back_ms) == args.restarts,
        "a 503 while the server was down": refused >= 1,
        "Retry-After on every 503": load.retry_after_seen == refused,
        "every post answered 202 or 503": set(statuses) <= {202, 503},
    })


def cluster_scenario(name: str):
    """A scenario of tests/chaos/cluster.py, imported when it runs (it needs this module as `chaos`)."""
    def run(args, workdir: str) -> Result:
        sys.modules.setdefault("chaos", sys.modules[__name__])
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import cluster  # noqa: PLC0415 (cluster imports chaos: only once chaos is whole)
        return cluster.SCENARIOS[name](args, workdir)
    return run


# Several relays on one PostgreSQL journal, on their own network and server (cluster.py).
CLUSTER = ("relay-kill", "relay-partition", "rolling-upgrade")

SCENARIOS = {
    "kill-9": scenario_kill9,
    "disk-full": scenario_disk_full,
    "watermark": scenario_watermark,
    "io-errors": scenario_io_errors,
    "target-faults": scenario_target_faults,
    "clock-jumps": scenario_clock_jumps,
    "slow-clients": scenario_slow_clients,
    "negative-control": scenario_negative_control,
    "pg-restart": scenario_pg_restart,
    **{name: cluster_scenario(name) for name in CLUSTER},
}
# The scenarios about the SQLite file (see the header): not applicable on postgresql.
SQLITE_ONLY = ("disk-full", "watermark", "io-errors", "negative-control")
POSTGRESQL_ONLY = ("pg-restart",) + CLUSTER


def scenarios_for(backend: str) -> list[str]:
    excluded = SQLITE_ONLY if backend == "postgresql" else POSTGRESQL_ONLY
    return [name for name in SCENARIOS if name not in excluded]


# --- the runner ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    name: str
    result: Result | None  # None when the scenario could not finish
    failures: list


def run_scenarios(names: list[str], scenarios: dict, args) -> list[Outcome]:
    """Runs each scenario and judges it: its Result's failures(), or the error
    that stopped it. Prints one line per scenario, and FAILED with the reasons."""
    outcomes = []
    for name in names:
        workdir = args.workdir or tempfile.mkdtemp(prefix=f"mews-chaos-{name}-")
        result = None
        try:
            returned = scenarios[name](args, workdir)
            if not isinstance(returned, Result):
                raise TypeError(f"scenario {name} returned {type(returned).__name__}, not a Result")
            result = returned
            print(result.line(), flush=True)
            failures = result.failures()
        except ScenarioFailed as e:
            failures = [str(e)]
        except Exception as e:  # a harness error fails the run too, with its cause
            failures = [f"{type(e).__name__}: {e}"]
        if result and result.delivery.missing:
            with open(os.path.join(workdir, "lost.txt"), "w") as f:
                f.write("\n".join(result.delivery.missing) + "\n")
        if failures:
            print(f"FAILED {name}: " + "; ".join(failures), flush=True)
            print(f"       (relay log and journal kept in {workdir})", flush=True)
        elif not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        outcomes.append(Outcome(name, result, failures))
    return outcomes


def summary(outcomes: list[Outcome]) -> str:
    """The table after the lines: every scenario's acked, delivered and lost."""
    rows = [("scenario", "acked", "delivered", "lost", "duplicates", "integrity", "verdict")]
    for outcome in outcomes:
        verdict = "FAILED" if outcome.failures else "ok"
        if outcome.result is None:
            rows.append((outcome.name, "-", "-", "-", "-", "-", verdict))
            continue
        delivery = outcome.result.delivery
        if outcome.result.expect_loss and not outcome.failures:
            verdict = "ok (loss detected, as it must be)"
        rows.append((outcome.name, str(delivery.acked), str(delivery.delivered), str(delivery.lost),
                     str(delivery.duplicates), outcome.result.integrity, verdict))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.path.join(ROOT, "build/app/mews-relay"))
    parser.add_argument("--unsafe-binary", default=os.path.join(ROOT, "build-unsafe/app/mews-relay"))
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite",
                        help="the relay's journal: an SQLite file, or a schema on a throwaway PostgreSQL 15")
    parser.add_argument("--full", action="store_true", help="the long run: 20 kill cycles, more injections and load")
    parser.add_argument("--only", choices=SCENARIOS, action="append", help="run only these scenarios")
    parser.add_argument("--settle", type=float, default=60, help="seconds to wait for deliveries at the end")
    parser.add_argument("--relays", type=int, default=3,
                        help="relays in the cluster scenarios (relay-kill, relay-partition, rolling-upgrade)")
    parser.add_argument("--separate-journals", action="store_true",
                        help="cluster scenarios' negative control: a schema per relay, so overlapping sends must show")
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--inside-namespace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    applicable = scenarios_for(args.backend)
    for name in args.only or []:
        if name not in applicable:
            why = ("it is about the SQLite file" if name in SQLITE_ONLY else
                   "its relays share one PostgreSQL journal" if name in CLUSTER else "it restarts the PostgreSQL server")
            parser.error(f"scenario {name} does not apply to --backend {args.backend}: {why}")
    args.cycles = 20 if args.full else 4
    args.injections = 10 if args.full else 4
    args.batches = 1000 if args.full else 300
    args.slow_seconds = 30 if args.full else 14
    args.restarts = 10 if args.full else 3
    args.pg = None

    # SIGTERM ends the run like Ctrl-C: through the finally below, which stops the server.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    failed = True
    names = args.only or applicable
    try:
        # The cluster scenarios start a server of their own, in their network: the run's is for the others.
        if args.backend == "postgresql" and any(name not in CLUSTER for name in names):
            args.pg = PgServer()
            args.pg.start()
            print(f"backend postgresql: a throwaway server ({args.pg.settings()}), a schema per scenario; "
                  f"not applicable here (about the SQLite file): {', '.join(SQLITE_ONLY)}", flush=True)
        outcomes = run_scenarios(names, SCENARIOS, args)
        failed = any(outcome.failures for outcome in outcomes)
    finally:
        if args.pg:
            if failed:
                kept = args.pg.keep_log(tempfile.mkdtemp(prefix="mews-chaos-pg-log-"))
                print(f"       (the PostgreSQL server's log kept in {kept})", flush=True)
            args.pg.stop()
    if args.inside_namespace:
        # The parent judges the same Result again (in_mount_namespace).
        for outcome in outcomes:
            if outcome.result:
                print(RESULT_PREFIX + outcome.result.to_json(), flush=True)
    else:
        print("\n" + summary(outcomes), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
