#!/usr/bin/env python3
"""Cluster scenarios (issue 22): several relays on one PostgreSQL journal,
behind HAProxy, on a test network of namespaces (tests/cluster/netlab.py).

The network, built and removed by each scenario:

    db      198.51.100.2   PostgreSQL 15 (scripts/pg-throwaway start --listen)
    sink    198.51.100.3   the targets: one HTTP sink, a path per target
    lb      198.51.100.4   HAProxy (examples/haproxy.cfg, addresses put in) and
                           the Mews-like sender, posting to HAProxy's frontend
    relayN  198.51.100.5+  one relay each: ingest on :8080, admin on :9090,
                           its own config file, all on the same [journal] url

Each relay only needs "N relays serve the same [journal] url": nothing here
knows how they share the work. Who dispatches a target is read off the sink
(the source address of its latest request).

The sender behaves like Mews: a post that gets no 2xx within 5 s (an error
status, a timeout, no connection) is sent again, the same bytes, 10, 30 and
60 s after the first failure; after the fourth failure it is dropped and
counted "dropped by the sender". It records every attempt's status and the
longest gap between two successive 202s.

The sink records, per request, the sending relay (source address), the target
(path), the webhook-id header, the events, and when the request started and
ended; two requests to one target from different relays whose [start, end]
intervals intersect are an *overlapping send*.

Scenarios (--relays N, default 3; the short form for CI, --full the long one):
    relay-kill       each relay in turn killed with -9 under load, left down
                     12 s (past the 10 s takeover), restarted (--full: three
                     rounds); with two relays or more, no target may go
                     without a request for more than 11 s meanwhile
    relay-partition  the relay dispatching the busy target t1 cut off from
                     the database (not from the sink) for 30 s, then healed
                     (--full: three times, each time the then owner)
    rolling-upgrade  each relay in turn stopped with SIGTERM (must exit 0) and
                     started again under load, as an upgrade would
Every scenario fails when an acknowledged batch did not reach every target
with its webhook-id (msg_<journal>_<batch>), when the sender dropped a batch,
or when two relays sent to one target at once (overlapping sends), besides
chaos.Result's own checks (the journal's amcheck). rolling-upgrade also fails
on any non-2xx the sender saw: with two relays or more, HAProxy's checks and
its retries on refused connections leave none (examples/haproxy.cfg).

With --relays 1 the harness runs the same way; then relay-kill and
rolling-upgrade must see errors while the only relay is down (the sender's
retries still get them in, unless it stays down past a minute).

The negative control, --separate-journals: each relay gets a schema of its
own, so nothing coordinates who dispatches a target; with two relays or more
the overlap check must fail (this works today, before relays can share one).

Run: scripts/chaos --backend postgresql [--only relay-kill] [--relays 3] [--full]
or this file alone: python3 tests/chaos/cluster.py [--only relay-kill] [--relays 1].
Needs root, iproute2, nftables, haproxy and postgresql-15 (scripts/setup chaos).
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import http.client
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "cluster"))
import chaos  # noqa: E402 (chaos.py, when it runs as a script, registers itself as "chaos" first)
import netlab  # noqa: E402

# [relay] name: the relay's name in the journal's registry and on its leases
# (relay/cluster.h). Every relay gets its host's name.
RELAY_NAME_KEY = True

ROOT = chaos.ROOT
TOKEN = chaos.TOKEN
INGEST_PORT, ADMIN_PORT, LB_PORT = 8080, 9090, 8080
TARGETS = ("t1", "t2", "t3")
TAKEOVER_LIMIT = 11.0  # issue 22: another relay takes a dead owner's targets over within 10 s  # t1 is the busy one relay-partition cuts the owner of
HAPROXY_EXAMPLE = os.path.join(ROOT, "examples/haproxy.cfg")
check = chaos.check
ScenarioFailed = chaos.ScenarioFailed


def in_host(lab: netlab.Lab | None, host: netlab.Host | None):
    """The calling thread in `host` (lab.in_host), or where it is when there is no lab (the harness's tests)."""
    return lab.in_host(host) if lab else contextlib.nullcontext()


def http_get(lab: netlab.Lab, source: netlab.Host, address: str, port: int, path: str,
             timeout: float = 3) -> tuple[int, str]:
    """GET from `source`'s namespace; (status, body), or (0, "") without an answer."""
    try:
        with lab.in_host(source):
            connection = http.client.HTTPConnection(address, port, timeout=timeout)
            connection.connect()
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read().decode(errors="replace")
        connection.close()
        return response.status, body
    except (OSError, http.client.HTTPException):
        return 0, ""


# --- the sink host ------------------------------------------------------------------------------


@dataclass
class SinkRequest:
    source: str  # the sending relay's address
    target: str  # the path without its slash
    webhook_id: str
    events: list
    start: float
    end: float  # when its answer was sent (or the connection broke); inf while it is in progress


class ClusterSink:
    """The targets, in the sink host: answers 200 to every POST after `delay`
    seconds (a target that takes its time, so two senders' requests can meet).
    Without a lab: on 127.0.0.1 (the harness's own tests)."""

    def __init__(self, lab: netlab.Lab | None, host: netlab.Host | None, delay: float = 0.01):
        self.delay = delay
        self.lock = threading.Lock()
        self.requests: list[SinkRequest] = []
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self):  # noqa: N802 (http.server's name)
                started = time.monotonic()
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    events = [event["Value"]["Id"] for event in json.loads(body).get("Events", [])]
                except (ValueError, KeyError, TypeError, AttributeError):
                    events = []
                request = SinkRequest(self.client_address[0], self.path.strip("/"),
                                      self.headers.get("webhook-id", ""), events, started, float("inf"))
                with sink.lock:  # recorded before the answer: whoever sees the 200 finds it here
                    sink.requests.append(request)
                try:
                    time.sleep(sink.delay)
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                    self.wfile.flush()
                finally:
                    request.end = time.monotonic()

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            allow_reuse_address = True
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a relay killed mid-request breaks its connection: expected here

        address = host.address if host else "127.0.0.1"
        with in_host(lab, host):  # the listening socket lives in the sink host for good
            self.server = Server((address, 0), Handler)
        self.port = self.server.server_address[1]
        self.url_base = f"http://{address}:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def snapshot(self) -> list[SinkRequest]:
        with self.lock:
            return list(self.requests)

    def delivered(self) -> dict[tuple[str, str], set]:
        """(target, event id) -> the webhook-ids it arrived with."""
        seen: dict[tuple[str, str], set] = {}
        for request in self.snapshot():
            for event_id in request.events:
                seen.setdefault((request.target, event_id), set()).add(request.webhook_id)
        return seen

    def owner(self, target: str, since: float) -> str | None:
        """The address that sent the latest request to `target` after `since` (its dispatcher)."""
        latest = [r for r in self.snapshot() if r.target == target and r.start >= since]
        return max(latest, key=lambda r: r.start).source if latest else None

    def overlaps(self) -> list[tuple[SinkRequest, SinkRequest]]:
        """Pairs of requests to one target from two relays at once (intervals intersecting)."""
        found = []
        by_target: dict[str, list[SinkRequest]] = {}
        for request in self.snapshot():
            by_target.setdefault(request.target, []).append(request)
        for requests in by_target.values():
            requests.sort(key=lambda r: r.start)
            open_requests: list[SinkRequest] = []
            for request in requests:
                open_requests = [r for r in open_requests if r.end >= request.start]
                found += [(r, request) for r in open_requests if r.source != request.source]
                open_requests.append(request)
        return found

    def longest_pause(self, target: str, start: float, end: float) -> float:
        """The longest time between two successive requests to `target` that overlaps [start, end] (a dispatch
        pause): the one from the last request before `start` counts too."""
        times = sorted(r.start for r in self.snapshot() if r.target == target)
        return max((b - a for a, b in zip(times, times[1:]) if b >= start and a <= end), default=0.0)


def missing_deliveries(sink: ClusterSink, acked: list["Batch"], targets: tuple) -> list[str]:
    """`target:event` for each event of an acknowledged batch that did not reach a
    target in a request carrying its batch's webhook-id (msg_<journal>_<batch>)."""
    delivered = sink.delivered()
    gone = []
    for batch in acked:
        suffix = f"_{batch.batch_id}"
        for target in targets:
            for event_id in batch.events:
                if not any(w.endswith(suffix) for w in delivered.get((target, event_id), ())):
                    gone.append(f"{target}:{event_id}")
    return gone


def settle(sink: ClusterSink, sender: "MewsSender", targets: tuple, timeout: float) -> chaos.Delivery:
    """Waits (at most `timeout` s) until every acknowledged batch reached every
    target with its webhook-id; then counts (event, target) pairs."""
    acked = lambda: list(sender.acked.values())  # noqa: E731
    chaos.wait_until(lambda: not missing_deliveries(sink, acked(), targets), timeout, 0.5)
    lost = missing_deliveries(sink, acked(), targets)
    events = sum(len(batch.events) for batch in acked())
    deliveries = [(r.target, e) for r in sink.snapshot() for e in r.events]
    duplicates = len(deliveries) - len(set(deliveries))
    return chaos.Delivery(acked=events, delivered=events * len(targets) - len(lost), lost=len(lost),
                          duplicates=duplicates, missing=lost, targets=len(targets))


# --- the Mews-like sender, in the lb host ---------------------------------------------------------


@dataclass
class Batch:
    number: int
    body: bytes
    events: list
    attempts: int = 0
    first_failure: float = 0.0  # when its first attempt failed (the retries count from it)
    batch_id: int | None = None  # from the 202's {"batch":ID}


class MewsSender:
    """Posts uniquely numbered General batches to `address:port` from `threads`
    threads in `host`, as Mews does (see the header): 5 s timeout, the same
    bytes again `retry_delays` after the first failure, then dropped."""

    def __init__(self, lab: netlab.Lab | None, host: netlab.Host | None, address: str, port: int, threads: int = 4,
                 pause: float = 0.03, timeout: float = 5, retry_delays: tuple = (10, 30, 60),
                 prefix: str = "m", max_batches: int = 200_000):
        self.lab, self.host, self.address, self.port = lab, host, address, port
        self.threads, self.pause, self.timeout = threads, pause, timeout
        self.retry_delays, self.prefix, self.max_batches = retry_delays, prefix, max_batches
        self.lock = threading.Lock()
        self.next_number = 0
        self.retries: list[tuple[float, int, Batch]] = []  # (due, number, batch): a heap
        self.acked: dict[int, Batch] = {}
        self.dropped: list[Batch] = []
        self.statuses: dict[int, int] = {}  # per attempt; 0: timeout or no connection
        self.ack_times: list[float] = []
        self.stopping = threading.Event()
        self.deadline = float("inf")  # no attempt starts after this (set by stop)
        self.workers: list[threading.Thread] = []

    def _new_batch(self, number: int) -> Batch:
        events = [f"{self.prefix}-{number}-{k}" for k in range(3)]
        payload = {"EnterpriseId": "cluster", "IntegrationId": "cluster",
                   "Events": [{"Discriminator": "ReservationUpdated", "Value": {"Id": i}} for i in events]}
        return Batch(number, json.dumps(payload).encode(), events)

    def _take(self) -> Batch | None:
        """The next thing to send: a retry that is due, else a new batch; None when done."""
        for _ in range(100_000):
            with self.lock:
                now = time.monotonic()
                if now >= self.deadline:
                    return None
                if self.retries and self.retries[0][0] <= now:
                    return heapq.heappop(self.retries)[2]
                if not self.stopping.is_set() and self.next_number < self.max_batches:
                    self.next_number += 1
                    return self._new_batch(self.next_number - 1)
                if not self.retries:
                    return None
                wait = min(self.retries[0][0] - now, 0.2)
            time.sleep(max(wait, 0.01))
        return None

    def _post(self, connection_holder: list, batch: Batch) -> int:
        status = 0
        # A connection idle for a while may be closed by HAProxy (timeout http-keep-alive) just as the
        # post goes out, which would fail it for the harness's sake: a fresh one instead.
        if connection_holder[0] is not None and time.monotonic() - connection_holder[1] > 1:
            connection_holder[0].close()
            connection_holder[0] = None
        try:
            if connection_holder[0] is None:
                connection_holder[0] = http.client.HTTPConnection(self.address, self.port, timeout=self.timeout)
            connection = connection_holder[0]
            connection.request("POST", f"/webhooks/mews?token={TOKEN}", batch.body,
                               {"Content-Type": "application/json"})
            response = connection.getresponse()
            answer = response.read()
            status = response.status
            if status == 202:
                batch.batch_id = int(json.loads(answer)["batch"])
            if response.getheader("Connection", "").lower() == "close":
                connection.close()
                connection_holder[0] = None
        except (OSError, http.client.HTTPException, ValueError, KeyError):
            if connection_holder[0] is not None:
                connection_holder[0].close()
            connection_holder[0] = None
            status = 0 if status in (0, 202) else status
        connection_holder[1] = time.monotonic()
        return status

    def _run(self) -> None:
        holder = [None, 0.0]  # the keep-alive connection, when it was last used
        with in_host(self.lab, self.host):  # this thread's sockets are the lb host's
            while True:
                batch = self._take()
                if batch is None:
                    break
                status = self._post(holder, batch)
                with self.lock:
                    self.statuses[status] = self.statuses.get(status, 0) + 1
                    batch.attempts += 1
                    if 200 <= status < 300 and batch.batch_id is not None:
                        self.acked[batch.number] = batch
                        self.ack_times.append(time.monotonic())
                    elif batch.attempts <= len(self.retry_delays):
                        if batch.attempts == 1:
                            batch.first_failure = time.monotonic()
                        due = batch.first_failure + self.retry_delays[batch.attempts - 1]
                        heapq.heappush(self.retries, (due, batch.number, batch))
                    else:
                        self.dropped.append(batch)
                if self.pause:
                    time.sleep(self.pause)
            if holder[0] is not None:
                holder[0].close()

    def start(self) -> "MewsSender":
        self.started = time.monotonic()
        self.workers = [threading.Thread(target=self._run, daemon=True) for _ in range(self.threads)]
        for worker in self.workers:
            worker.start()
        return self

    def stop(self, drain: float) -> None:
        """No new batch; retries go on until none is left, for at most `drain` s."""
        self.stopped = time.monotonic()
        self.stopping.set()
        with self.lock:
            self.deadline = time.monotonic() + drain
        for worker in self.workers:
            worker.join(timeout=drain + 2 * self.timeout + 5)

    def pending(self) -> int:
        with self.lock:
            return len(self.retries)

    def non_2xx(self) -> int:
        with self.lock:
            return sum(count for status, count in self.statuses.items() if not 200 <= status < 300)

    def longest_gap(self) -> float:
        """The longest time between two successive 202s (from the start to the first one too)."""
        with self.lock:
            times = sorted([self.started] + self.ack_times)
        return max((b - a for a, b in zip(times, times[1:])), default=0.0)


# --- the database host --------------------------------------------------------------------------


class LabPgServer(chaos.PgServer):
    """chaos.PgServer, its server listening on the db host's address (pg-throwaway --listen).
    Administered over its unix socket, which every namespace shares."""

    def __init__(self, lab: netlab.Lab, host: netlab.Host):
        super().__init__()
        self.lab, self.host = lab, host

    def start(self) -> None:
        process = self.lab.run(self.host, [chaos.PG_THROWAWAY, "start", self.directory, "--listen", self.host.address],
                               timeout=180, check=False)
        check(process.returncode == 0, f"the PostgreSQL server did not start in the db host: {process.stderr.strip()}")
        started = dict(line.split("=", 1) for line in process.stdout.splitlines() if "=" in line)
        self.url, self.passfile = started["MEWS_TEST_PG_URL"], started["PGPASSFILE"]
        with open(self.passfile) as f:
            self.password = f.read().strip().rsplit(":", 1)[1]
        self.psql("CREATE EXTENSION IF NOT EXISTS amcheck")


# --- a relay host ---------------------------------------------------------------------------------


class RelayNode:
    def __init__(self, cluster: "Cluster", host: netlab.Host, journal: chaos.PgJournal, targets: dict[str, str]):
        self.cluster, self.host, self.journal = cluster, host, journal
        self.workdir = os.path.join(cluster.workdir, host.name)
        os.makedirs(self.workdir, exist_ok=True)
        self.config = os.path.join(self.workdir, "relay.ini")
        self.log_path = os.path.join(self.workdir, "relay.log")
        self.process: subprocess.Popen | None = None
        sections = "".join(
            f"[target.{name}]\nurl = {url}\ntimeout = 2s\nbackoff = 100ms..1s\nmax_attempts = 1000\nmax_age = 1h\n"
            for name, url in targets.items())
        with open(self.config, "w") as f:
            f.write((f"[relay]\nname = {host.name}\n" if RELAY_NAME_KEY else "") +
                    f"[server]\nlisten = {host.address}:{INGEST_PORT}\ntokens = ${{system.env.CHAOS_RELAY_TOKEN}}\n"
                    f"[admin]\nlisten = {host.address}:{ADMIN_PORT}\nunready_before_stop = 3s\n"
                    f"[journal]\nurl = {journal.url}\n[delivery]\nworkers = 8\n{sections}")

    @property
    def address(self) -> str:
        return self.host.address

    def start(self, timeout: float = 30) -> float:
        """Starts `serve` in its host and waits for /readyz 200; the seconds it took."""
        started = time.monotonic()
        with open(self.log_path, "a") as log:
            self.process = self.cluster.lab.spawn(
                self.host, [self.cluster.binary, "-c", self.config, "serve"], stdout=log, stderr=log,
                cwd=self.workdir, env=dict(os.environ, CHAOS_RELAY_TOKEN=TOKEN, **self.journal.env()))
        ready = chaos.wait_until(lambda: self.process.poll() is not None or self.ready() == 200, timeout, 0.1)
        if self.process.poll() is not None:
            raise ScenarioFailed(f"{self.host.name} exited {self.process.returncode} at start: {self.last_log_line()}")
        check(ready, f"{self.host.name} not ready within {timeout:.0f} s: {self.last_log_line()}")
        return time.monotonic() - started

    def ready(self) -> int:
        return http_get(self.cluster.lab, self.cluster.lb, self.address, ADMIN_PORT, "/readyz", timeout=2)[0]

    def kill9(self) -> None:
        self.cluster.lab.stop(self.process, signal.SIGKILL, timeout=10)

    def stop(self) -> int | None:
        """SIGTERM; its exit code (None: still running 30 s later, then killed)."""
        if not self.process or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        code = self.cluster.lab.stop(self.process, signal.SIGTERM, timeout=30)
        if code is None:
            self.kill9()
        return code

    def log_text(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def last_log_line(self) -> str:
        lines = [line for line in self.log_text().splitlines() if line.strip()]
        return lines[-1] if lines else f"(nothing in {self.log_path})"


# --- the whole network ----------------------------------------------------------------------------


def haproxy_config(example: str, bind: str, relays: list[RelayNode], stats_socket: str) -> str:
    """examples/haproxy.cfg with the lab's addresses: its frontend's bind, one
    server line per relay (the example's server options kept), and, for a run
    in the foreground, logs to stderr and a stats socket of the run's own."""
    lines, servers_done = [], False
    for line in example.splitlines():
        stripped = line.strip()
        indent = line[:len(line) - len(line.lstrip())]
        if stripped.startswith("server "):
            if not servers_done:
                options = stripped.split(None, 3)[3]  # after "server NAME ADDR:PORT"
                options = re.sub(r"\bport \d+", f"port {ADMIN_PORT}", options)
                lines += [f"{indent}server {relay.host.name} {relay.address}:{INGEST_PORT} {options}"
                          for relay in relays]
                servers_done = True
        elif stripped.startswith("bind "):
            lines.append(f"{indent}bind {bind}")
        elif stripped.startswith("log /dev/log"):
            lines.append(f"{indent}log stderr format short local0 info")
        elif stripped.startswith("stats socket "):
            lines.append(f"{indent}stats socket {stats_socket} mode 600 level admin")
        elif stripped == "daemon":
            continue
        else:
            lines.append(line)
    check(servers_done, "examples/haproxy.cfg has no server line to put the relays in")
    return "\n".join(lines) + "\n"


class Cluster:
    """The network of the header, built by start() and removed by close() whatever happens."""

    def __init__(self, args, workdir: str, name: str, relays: int):
        self.args, self.workdir, self.name, self.relay_count = args, workdir, name, relays
        self.binary = args.binary
        self.lab: netlab.Lab | None = None
        self.pg: LabPgServer | None = None
        self.sink: ClusterSink | None = None
        self.haproxy: subprocess.Popen | None = None
        self.relays: list[RelayNode] = []
        self.senders: list[MewsSender] = []

    def start(self) -> "Cluster":
        check(1 <= self.relay_count <= 9, f"--relays must be 1..9, not {self.relay_count}")
        check(shutil.which("haproxy") is not None, "no haproxy (scripts/setup chaos installs it)")
        self.lab = netlab.Lab()
        self.db, self.sink_host, self.lb = (self.lab.add_host(n) for n in ("db", "sink", "lb"))
        relay_hosts = [self.lab.add_host(f"relay{i + 1}") for i in range(self.relay_count)]
        self.pg = LabPgServer(self.lab, self.db)
        self.pg.start()
        # --separate-journals, the negative control: a schema per relay, so nothing coordinates who
        # dispatches a target, and overlapping sends must be reported.
        separate = getattr(self.args, "separate_journals", False)
        shared = None if separate else self.pg.new_journal(self.name)
        self.journals = [self.pg.new_journal(f"{self.name}_{host.name}") if separate else shared
                         for host in relay_hosts]
        self.sink = ClusterSink(self.lab, self.sink_host)
        targets = {name: f"{self.sink.url_base}/{name}" for name in TARGETS}
        self.relays = [RelayNode(self, host, journal, targets) for host, journal in zip(relay_hosts, self.journals)]
        for relay in self.relays:
            relay.start()
        self.stats_socket = os.path.join(self.workdir, "haproxy.sock")
        config = os.path.join(self.workdir, "haproxy.cfg")
        with open(HAPROXY_EXAMPLE) as f:
            text = haproxy_config(f.read(), f"{self.lb.address}:{LB_PORT}", self.relays, self.stats_socket)
        with open(config, "w") as f:
            f.write(text)
        with open(os.path.join(self.workdir, "haproxy.log"), "a") as log:
            self.haproxy = self.lab.spawn(self.lb, ["haproxy", "-db", "-f", config], stdout=log, stderr=log)
        check(chaos.wait_until(lambda: set(self.server_states().values()) == {"UP"} and
                               len(self.server_states()) == self.relay_count, 15, 0.2),
              f"HAProxy did not see every relay UP: {self.server_states()} (see {self.workdir}/haproxy.log)")
        return self

    def server_states(self) -> dict[str, str]:
        """HAProxy's view of each relay (`show stat`: UP, DOWN, ...) through its stats socket."""
        if self.haproxy is None or self.haproxy.poll() is not None:
            return {}
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(2)
                s.connect(self.stats_socket)
                s.sendall(b"show stat\n")
                data = b""
                for _ in range(1000):
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
        except OSError:
            return {}
        rows = [line.split(",") for line in data.decode(errors="replace").splitlines() if line and line[0] != "#"]
        return {row[1]: row[17].split()[0] for row in rows if len(row) > 17 and row[0] == "relays"
                and row[1].startswith("relay")}

    def sender(self, prefix: str) -> MewsSender:
        sender = MewsSender(self.lab, self.lb, self.lb.address, LB_PORT, threads=4, pause=0.03, prefix=prefix)
        self.senders.append(sender)
        return sender

    def relay_by_address(self, address: str | None) -> RelayNode | None:
        return next((relay for relay in self.relays if relay.address == address), None)

    def settle(self, sender: MewsSender, timeout: float) -> chaos.Delivery:
        return settle(self.sink, sender, TARGETS, timeout)

    def finish(self, name: str, sender: MewsSender, facts: list[str], expected: dict) -> chaos.Result:
        """The common end: deliveries counted, relays stopped, logs checked, journal checked; the Result."""
        delivery = self.settle(sender, self.args.settle)
        overlaps = self.sink.overlaps()
        for relay in self.relays:
            relay.stop()
            check(TOKEN not in relay.log_text(), f"the token appears in {relay.log_path}")
            check(self.pg.password not in relay.log_text(), f"the database password appears in {relay.log_path}")
        with open(os.path.join(self.workdir, "haproxy.log"), errors="replace") as f:
            check(TOKEN not in f.read(), f"the token appears in {self.workdir}/haproxy.log")
        checked = [journal.integrity() for journal in {id(j): j for j in self.journals}.values()]
        integrity = next((result for result in checked if result != "ok"), "ok")
        statuses = dict(sorted(sender.statuses.items()))
        if overlaps:
            first = overlaps[0]
            facts.append(f"first overlap: {first[0].target} from {first[0].source} and {first[1].source}")
        shared = len({id(j) for j in self.journals}) == 1
        facts = [f"relays {self.relay_count}" + ("" if shared else " (each its own journal: the negative control)")] + facts + [
            f"sender: batches acked {len(sender.acked)}, attempts by status {statuses} (0: timeout/no connection), "
            f"dropped by the sender {len(sender.dropped)}, still retrying {sender.pending()}, "
            f"longest gap between 202s {sender.longest_gap():.2f} s",
            f"overlapping sends {len(overlaps)}"]
        expected = dict(expected)
        expected["dropped by the sender: 0"] = not sender.dropped and sender.pending() == 0
        expected["overlapping sends to one target by two relays: 0"] = not overlaps
        return chaos.Result(name, delivery, integrity, "; ".join(facts), expected=expected)

    def close(self) -> None:
        """Whatever happened: sender, relays, HAProxy, sink, database, namespaces, all gone."""
        for sender in self.senders:
            if sender.workers and not sender.stopping.is_set():
                sender.stop(drain=0)  # a scenario that failed half-way: its threads end with it
        for relay in self.relays:
            with contextlib.suppress(Exception):
                if relay.process and relay.process.poll() is None:
                    relay.kill9()
        if self.sink:
            self.sink.stop()
        if self.pg:
            self.pg.stop()
        if self.lab:
            self.lab.close()


@contextlib.contextmanager
def cluster(args, workdir: str, name: str):
    built = Cluster(args, workdir, name, args.relays)
    try:
        yield built.start()
    except BaseException:
        if built.pg:
            kept = built.pg.keep_log(workdir)
            print(f"       (the PostgreSQL server's log kept in {kept})", flush=True)
        raise
    finally:
        built.close()


def pauses(built: Cluster, start: float, end: float) -> str:
    return ", ".join(f"{t} {built.sink.longest_pause(t, start, end):.1f} s" for t in TARGETS)


# --- scenarios ------------------------------------------------------------------------------------


def scenario_relay_kill(args, workdir: str) -> chaos.Result:
    """Each relay in turn killed with -9 under load, down past the 10 s takeover, restarted."""
    down = 12
    rounds = 3 if args.full else 1
    with cluster(args, workdir, "relay_kill") as built:
        sender = built.sender("k").start()
        time.sleep(3)
        restart_s, down_states = [], []
        load_start = time.monotonic()
        for _ in range(rounds):
            for relay in built.relays:
                relay.kill9()
                time.sleep(down)
                down_states.append(built.server_states().get(relay.host.name, "?"))
                restart_s.append(relay.start())
                time.sleep(2)
        load_end = time.monotonic()
        sender.stop(drain=sum(sender.retry_delays) + 30)
        facts = [f"kills {len(restart_s)} (each down {down} s), restart-to-ready max {max(restart_s):.1f} s, "
                 f"HAProxy saw the killed relay {'/'.join(sorted(set(down_states)))}",
                 f"longest pause per target while relays died: {pauses(built, load_start, load_end)}"]
        expected = {"HAProxy marked each killed relay DOWN": set(down_states) == {"DOWN"}}
        if built.relay_count > 1:
            # Its targets go on from another relay before it is back: takeover within 10 s, plus 1 s for
            # the first attempt to reach the sink.
            longest = max(built.sink.longest_pause(t, load_start, load_end) for t in TARGETS)
            expected[f"every target dispatched again within {TAKEOVER_LIMIT:.0f} s of a relay's death"] = (
                longest <= TAKEOVER_LIMIT)
        return built.finish("relay-kill", sender, facts, expected)


def scenario_relay_partition(args, workdir: str) -> chaos.Result:
    """The relay dispatching t1 cut off from the database (not the sink) for 30 s, then healed."""
    cut_seconds = 30
    rounds = 3 if args.full else 1
    with cluster(args, workdir, "relay_partition") as built:
        sender = built.sender("p").start()
        time.sleep(4)
        cut_relays, not_ready_after, ready_again, states = [], [], [], set()
        readyz: dict[int, int] = {}  # the cut relay's /readyz answers during the cuts (0: none within 2 s)
        load_start = time.monotonic()
        for _ in range(rounds):
            owner = built.relay_by_address(built.sink.owner("t1", time.monotonic() - 2))
            check(owner is not None, "no relay delivered to t1 in the last 2 s: nothing to cut off")
            cut_relays.append(owner.host.name)
            built.lab.cut(owner.host, built.db)
            cut_at = time.monotonic()
            first_not_ready = None
            for _ in range(cut_seconds * 4):  # watched from the lb host, as HAProxy does
                if time.monotonic() - cut_at >= cut_seconds:
                    break
                answer = owner.ready()
                readyz[answer] = readyz.get(answer, 0) + 1
                if answer != 200 and first_not_ready is None:
                    first_not_ready = time.monotonic() - cut_at
                states.add(built.server_states().get(owner.host.name, "?"))
                time.sleep(0.5)
            not_ready_after.append(first_not_ready)
            built.lab.heal(owner.host, built.db)
            healed_at = time.monotonic()
            ready_again.append(time.monotonic() - healed_at if chaos.wait_until(lambda: owner.ready() == 200, 30, 0.2)
                               else None)
            time.sleep(4)
        load_end = time.monotonic()
        sender.stop(drain=sum(sender.retry_delays) + 30)
        shown = lambda seconds: "never" if seconds is None else f"{seconds:.1f} s"  # noqa: E731
        facts = [f"cut off from the database {rounds} x {cut_seconds} s: {', '.join(cut_relays)}; "
                 f"not ready after {', '.join(map(shown, not_ready_after))}, /readyz answers during the cut "
                 f"{dict(sorted(readyz.items()))} (0: none within 2 s), HAProxy saw it {'/'.join(sorted(states))}, "
                 f"ready again {', '.join(map(shown, ready_again))} after the heal",
                 f"longest pause per target: {pauses(built, load_start, load_end)}"]
        return built.finish("relay-partition", sender, facts, {
            "the cut relay not ready during the cut": None not in not_ready_after,
            "HAProxy marked the cut relay DOWN": "DOWN" in states,
            "the cut relay ready again after the heal": None not in ready_again,
        })


def scenario_rolling_upgrade(args, workdir: str) -> chaos.Result:
    """Each relay in turn stopped (SIGTERM, exit 0) and started again under load."""
    rounds = 3 if args.full else 1
    with cluster(args, workdir, "rolling_upgrade") as built:
        sender = built.sender("u").start()
        time.sleep(3)
        exits, restart_s = [], []
        for _ in range(rounds):
            for relay in built.relays:
                exits.append(relay.stop())
                restart_s.append(relay.start())
                # The next one goes only once HAProxy sends to this one again (rise 2).
                chaos.wait_until(lambda: built.server_states().get(relay.host.name) == "UP", 10, 0.2)
                time.sleep(1)
        sender.stop(drain=sum(sender.retry_delays) + 30)
        non_2xx = sender.non_2xx()
        facts = [f"restarts {len(exits)} (exit codes {sorted(set(map(str, exits)))}), "
                 f"restart-to-ready max {max(restart_s):.1f} s, non-2xx seen by the sender {non_2xx} "
                 f"(allowed: 0 with two relays or more)"]
        return built.finish("rolling-upgrade", sender, facts, {
            "every relay exited 0 on SIGTERM": all(code == 0 for code in exits),
            "no non-2xx seen by the sender": non_2xx == 0,
        })


SCENARIOS = {
    "relay-kill": scenario_relay_kill,
    "relay-partition": scenario_relay_partition,
    "rolling-upgrade": scenario_rolling_upgrade,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.path.join(ROOT, "build/app/mews-relay"))
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--only", choices=SCENARIOS, action="append")
    parser.add_argument("--settle", type=float, default=60)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--relays", type=int, default=3, help="relays in the cluster")
    parser.add_argument("--separate-journals", action="store_true",
                        help="negative control: each relay its own schema; overlapping sends must be reported")
    args = parser.parse_args()
    needs = netlab.missing_needs()
    if needs:
        print("the cluster scenarios need " + "; ".join(needs), file=sys.stderr)
        return 1
    outcomes = chaos.run_scenarios(args.only or list(SCENARIOS), SCENARIOS, args)
    print("\n" + chaos.summary(outcomes), flush=True)
    return 1 if any(outcome.failures for outcome in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
