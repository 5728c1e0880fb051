#!/usr/bin/env python3
"""A test network of hosts on one machine, made of Linux network namespaces.

    with Lab() as lab:
        db, relay = lab.add_host("db"), lab.add_host("relay1")
        lab.run(db, ["true"])                           # a command in a host
        server = lab.spawn(relay, ["mews-relay", ...])  # a long-running process there
        lab.cut(relay, db)                              # relay and db no longer reach each other
        lab.heal(relay, db)

What it owns, and its invariants:
- Names. Every namespace is `<prefix><name>` with the prefix `mr<pid>-` (the
  harness's pid): a run never touches another run's namespaces. At start,
  namespaces with that pattern whose pid is no longer alive (a run killed
  with -9 leaves them behind) are removed, with any process still in them.
- The wiring. One namespace `<prefix>hub` holds a bridge `br0`; each host gets
  a veth pair made *inside the hub* (`ip -n HUB link add ... peer ... netns
  HOST`), so the root namespace's links are never touched. In the host the
  veth is `eth0`, with one address from 198.51.100.0/24 (TEST-NET-2, never
  routed) and no default route: nothing in a host can reach beyond the lab.
  Loopback is up in every host.
- Processes. spawn() starts `ip netns exec HOST argv` in a process group of
  its own; close() sends the group SIGTERM, then SIGKILL after `grace`
  seconds, then kills whatever is still inside a namespace (`ip netns pids`:
  daemons that double-forked, such as a postmaster) before deleting it.
- Cleanup. close() runs on leaving the `with` (normally or by an exception),
  at interpreter exit, and on SIGINT/SIGTERM (they become KeyboardInterrupt
  and SystemExit, so `finally` blocks run first). Afterwards no namespace,
  link or process it made remains. Every wait is bounded.
- Cuts. cut(a, b) makes a and b unreachable to each other and nothing else:
  an nftables table in a's namespace drops every packet from b's address on
  input and to it on output. Why nftables rather than a blackhole or
  prohibit route: a route acts only on what the host sends, and makes a new
  connect() fail at once with an error (EINVAL, EACCES), whereas a pulled
  cable or a dead switch port is silence in both directions: established
  sessions hang, new connections time out. That silence is what fencing must
  survive (a relay cut off from its database notices only through its own
  timeouts). The rule names one peer address, so the cut host still reaches
  every other host (the sink, in the relay-partition scenario).
- in_host(host) switches the *calling thread* into a host's network
  namespace (setns(2)); sockets made meanwhile stay there for their life.
  This is how the harness runs a sink or a sender "in" a host while keeping
  its accounting in one Python process.

Failure cases: not root, or no `ip`/`nft`: Lab() raises LabUnavailable with
what is missing. A failing `ip` or `nft` command raises LabError with its
command line and stderr. Needs: iproute2, nftables (scripts/setup), root.

Self-test (ctest netlab_test, label scenario):
    python3 tests/cluster/netlab.py --self-test
Not root: it fails with the reason, unless MEWS_TEST_NETLAB=skip says this
environment cannot run it (then it prints why and exits 0).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

SUBNET = "198.51.100"  # TEST-NET-2 (RFC 5737): documentation only, never routed
PREFIX_PATTERN = re.compile(r"^mr(\d+)-")
CLONE_NEWNET = 0x40000000
COMMAND_TIMEOUT = 30  # seconds for any one ip/nft command


class LabError(Exception):
    pass


class LabUnavailable(LabError):
    """This machine cannot build a lab (not root, a tool missing)."""


def missing_needs() -> list[str]:
    """What this machine lacks to build a lab; empty when it can."""
    needs = []
    if os.geteuid() != 0:
        needs.append("root (network namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN)")
    for tool, package in (("ip", "iproute2"), ("nft", "nftables")):
        if not shutil.which(tool):
            needs.append(f"`{tool}` (install {package}: scripts/setup)")
    return needs


def _command(argv: list[str], check: bool = True, timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess:
    process = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and process.returncode != 0:
        raise LabError(f"{' '.join(argv)}: exit {process.returncode}: {process.stderr.strip()}")
    return process


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def namespaces() -> list[str]:
    """Every named network namespace (`ip netns list`), names only."""
    listing = _command(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in listing.splitlines() if line.strip()]


def _kill_inside(namespace: str) -> None:
    """SIGKILL to every process in `namespace`, waiting (bounded) until none is left."""
    for _ in range(50):
        pids = [int(p) for p in _command(["ip", "netns", "pids", namespace], check=False).stdout.split() if p.isdigit()]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


def _delete_namespace(namespace: str) -> None:
    _kill_inside(namespace)
    _command(["ip", "netns", "delete", namespace], check=False)


def remove_stale(pattern: re.Pattern = PREFIX_PATTERN) -> list[str]:
    """Removes the namespaces a killed earlier run left: `mr<pid>-*` whose pid is gone."""
    removed = []
    for namespace in namespaces():
        match = pattern.match(namespace)
        if match and not _pid_alive(int(match.group(1))):
            _delete_namespace(namespace)
            removed.append(namespace)
    return removed


_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise LabError(f"setns: {os.strerror(error)}")


class Host:
    """One host: a namespace with one address on the lab's bridge."""

    def __init__(self, name: str, namespace: str, address: str):
        self.name = name
        self.namespace = namespace
        self.address = address

    def __repr__(self) -> str:
        return f"Host({self.name} {self.address})"


class Lab:
    def __init__(self, prefix: str | None = None, grace: float = 5.0):
        needs = missing_needs()
        if needs:
            raise LabUnavailable("the test network needs " + "; ".join(needs))
        self.prefix = prefix or f"mr{os.getpid()}-"
        self.grace = grace
        self.hosts: dict[str, Host] = {}
        self.processes: list[subprocess.Popen] = []
        self.cuts: set[tuple[str, str]] = set()
        self.closed = False
        self.lock = threading.Lock()
        self.stale_removed = remove_stale()
        self.hub = self.prefix + "hub"
        self._previous_handlers = {}
        self._install_signal_handlers()
        atexit.register(self.close)
        try:
            _command(["ip", "netns", "add", self.hub])
            self._in(self.hub, ["ip", "link", "set", "lo", "up"])
            self._in(self.hub, ["ip", "link", "add", "br0", "type", "bridge"])
            self._in(self.hub, ["ip", "link", "set", "br0", "up"])
        except BaseException:
            self.close()
            raise

    # --- building ---------------------------------------------------------------------------------

    def add_host(self, name: str) -> Host:
        """A new host `name` (letters, digits; at most 10 characters) at the next free address."""
        if not re.fullmatch(r"[a-z][a-z0-9]{0,9}", name) or name in self.hosts or name == "hub":
            raise LabError(f"bad or duplicate host name: {name!r}")
        number = len(self.hosts) + 2  # .1 is left for no one: a host is never mistaken for a gateway
        if number > 254:
            raise LabError("no address left in the lab's /24")
        host = Host(name, self.prefix + name, f"{SUBNET}.{number}")
        self.hosts[name] = host  # before the commands: close() removes a half-made host too
        peer = f"v-{name}"  # in the hub: at most 12 characters, under IFNAMSIZ
        _command(["ip", "netns", "add", host.namespace])
        self._in(self.hub, ["ip", "link", "add", peer, "type", "veth", "peer", "name", "eth0", "netns", host.namespace])
        self._in(self.hub, ["ip", "link", "set", peer, "master", "br0"])
        self._in(self.hub, ["ip", "link", "set", peer, "up"])
        self._in(host.namespace, ["ip", "link", "set", "lo", "up"])
        self._in(host.namespace, ["ip", "addr", "add", f"{host.address}/24", "dev", "eth0"])
        self._in(host.namespace, ["ip", "link", "set", "eth0", "up"])
        # The cut table: empty sets until cut() adds a peer (see the header: why nftables).
        self._in(host.namespace, ["nft", "-f", "-"], stdin=(
            "table inet netlab {\n"
            "  set cut { type ipv4_addr; }\n"
            "  chain input { type filter hook input priority 0; policy accept; ip saddr @cut drop; }\n"
            "  chain output { type filter hook output priority 0; policy accept; ip daddr @cut drop; }\n"
            "}\n"))
        return host

    # --- using ------------------------------------------------------------------------------------

    def run(self, host: Host, argv: list[str], timeout: float = 60, check: bool = True,
            env: dict | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
        """Runs `argv` in `host` to its end (at most `timeout` s); its output, text."""
        process = subprocess.run(["ip", "netns", "exec", host.namespace] + argv, capture_output=True, text=True,
                                 timeout=timeout, env=env, input=stdin)
        if check and process.returncode != 0:
            raise LabError(f"in {host.name}: {' '.join(argv)}: exit {process.returncode}: "
                           f"{(process.stderr or process.stdout).strip()[-500:]}")
        return process

    def spawn(self, host: Host, argv: list[str], **popen) -> subprocess.Popen:
        """Starts `argv` in `host` in a process group of its own; close() ends it."""
        with self.lock:
            if self.closed:
                raise LabError("the lab is closed")
            process = subprocess.Popen(["ip", "netns", "exec", host.namespace] + argv, start_new_session=True, **popen)
            self.processes.append(process)
        return process

    def stop(self, process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float | None = None) -> int | None:
        """Sends `sig` to the process's group and waits (bounded) for it; its exit code (None: still running)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            return process.wait(timeout=self.grace if timeout is None else timeout)
        except subprocess.TimeoutExpired:
            return None

    def cut(self, a: Host, b: Host) -> None:
        """a and b stop reaching each other (both directions, silently); a still reaches every other host."""
        self._in(a.namespace, ["nft", "add", "element", "inet", "netlab", "cut", "{", b.address, "}"])
        self.cuts.add((a.name, b.name))

    def heal(self, a: Host, b: Host) -> None:
        self._in(a.namespace, ["nft", "delete", "element", "inet", "netlab", "cut", "{", b.address, "}"])
        self.cuts.discard((a.name, b.name))

    @contextlib.contextmanager
    def in_host(self, host: Host):
        """The calling thread in `host`'s network namespace for the block (sockets made there stay there)."""
        with open(f"/var/run/netns/{host.namespace}") as target, open(f"/proc/thread-self/ns/net") as own:
            _setns(target.fileno())
            try:
                yield
            finally:
                _setns(own.fileno())

    def connect(self, source: Host, address: str, port: int, timeout: float = 5) -> socket.socket:
        """A TCP connection from `source` to address:port (raises OSError when it cannot be made)."""
        with self.in_host(source):
            return socket.create_connection((address, port), timeout=timeout)

    # --- removing ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Ends every process and removes every namespace (with its links) the lab made. Idempotent."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            processes, self.processes = self.processes, []
        for process in processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
        for process in processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=5)
        for host in list(self.hosts.values()):
            _delete_namespace(host.namespace)
        _delete_namespace(self.hub)
        self._restore_signal_handlers()
        atexit.unregister(self.close)

    def leftovers(self) -> list[str]:
        """What of this lab still exists (namespaces by name): empty after close()."""
        return [name for name in namespaces() if name.startswith(self.prefix)]

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- internals --------------------------------------------------------------------------------

    def _in(self, namespace: str, argv: list[str], stdin: str | None = None) -> None:
        process = subprocess.run(["ip", "netns", "exec", namespace] + argv, capture_output=True, text=True,
                                 timeout=COMMAND_TIMEOUT, input=stdin)
        if process.returncode != 0:
            raise LabError(f"in {namespace}: {' '.join(argv)}: exit {process.returncode}: {process.stderr.strip()}")

    def _install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT unwind the stack (finally blocks, then close()) instead of killing outright."""
        if threading.current_thread() is not threading.main_thread():
            return

        def terminate(signum, frame):
            raise SystemExit(128 + signum)

        for sig, handler in ((signal.SIGTERM, terminate), (signal.SIGINT, signal.default_int_handler)):
            self._previous_handlers[sig] = signal.signal(sig, handler)

    def _restore_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig, handler in self._previous_handlers.items():
            signal.signal(sig, handler)
        self._previous_handlers = {}


# --- self-test ------------------------------------------------------------------------------------

SERVER = """import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 7000)); s.listen(16); print("listening", flush=True)
while True:
    c, _ = s.accept(); c.sendall(b"hello"); c.close()
"""


def _reaches(lab: Lab, source: Host, target: Host | str) -> bool:
    """A TCP connect from source to target's test server, and its greeting read back."""
    address = target if isinstance(target, str) else target.address
    try:
        with lab.connect(source, address, 7000, timeout=1.5) as s:
            s.settimeout(1.5)
            return s.recv(5) == b"hello"
    except OSError:
        return False


def _root_links() -> str:
    """The root namespace's link names (what the lab must never change)."""
    return " ".join(sorted(re.findall(r"^\d+: ([^:@]+)", _command(["ip", "-o", "link"]).stdout, re.M)))


def self_test() -> int:
    needs = missing_needs()
    if needs:
        if os.environ.get("MEWS_TEST_NETLAB") == "skip":
            print("netlab self-test SKIPPED (MEWS_TEST_NETLAB=skip): needs " + "; ".join(needs))
            return 0
        print("netlab self-test FAILED: the test network needs " + "; ".join(needs) +
              " (CI runs as root; set MEWS_TEST_NETLAB=skip where this cannot run)", file=sys.stderr)
        return 1
    failures: list[str] = []

    def expect(condition: bool, what: str) -> None:
        print(("ok    " if condition else "FAIL  ") + what, flush=True)
        if not condition:
            failures.append(what)

    links_before = _root_links()
    # A namespace a killed run left behind (a pid above pid_max is never alive): removed at start.
    stale = "mr99999999-stale"
    _command(["ip", "netns", "add", stale])
    lab = Lab(grace=2)
    prefix = lab.prefix
    servers: list[int] = []
    try:
        expect(stale in lab.stale_removed and stale not in namespaces(), "a stale namespace of a killed run removed")
        a, b, c = lab.add_host("a"), lab.add_host("b"), lab.add_host("c")
        for host in (a, b, c):
            server = lab.spawn(host, [sys.executable, "-c", SERVER, host.address], stdout=subprocess.PIPE, text=True)
            servers.append(server.pid)
            expect(server.stdout.readline().strip() == "listening", f"a TCP server runs in {host.name}")
        pairs = [(a, b), (b, a), (a, c), (c, a), (b, c), (c, b)]
        expect(all(_reaches(lab, x, y) for x, y in pairs), "every host reaches every other")
        expect(lab.run(a, ["ip", "route"]).stdout.count("default") == 0, "no default route in a host")
        expect(not _reaches(lab, a, "192.0.2.1"), "nothing beyond the lab (192.0.2.1 unreachable)")
        lab.cut(a, b)
        expect(not _reaches(lab, a, b) and not _reaches(lab, b, a), "cut a|b: a and b no longer reach each other")
        expect(all(_reaches(lab, x, y) for x, y in [(a, c), (c, a), (b, c), (c, b)]),
               "cut a|b: a and b still reach c, and c both")
        lab.heal(a, b)
        expect(all(_reaches(lab, x, y) for x, y in pairs), "healed: every host reaches every other again")
    except (LabError, OSError, subprocess.TimeoutExpired) as e:
        expect(False, f"no error while testing: {e}")
    finally:
        lab.close()
    expect(lab.leftovers() == [], f"no namespace left with prefix {prefix} (ip netns list)")
    expect(_root_links() == links_before, "the root namespace's links unchanged (ip link)")
    expect(len(servers) == 3 and not any(os.path.exists(f"/proc/{pid}") for pid in servers),
           "no test server process left")

    # SIGTERM to a run mid-way: its namespaces and processes are removed all the same.
    child = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--hold"], stdout=subprocess.PIPE, text=True)
    held_prefix = child.stdout.readline().strip()
    expect(held_prefix.startswith("mr") and any(n.startswith(held_prefix) for n in namespaces()),
           "a second run built its hosts")
    child.send_signal(signal.SIGTERM)
    code = child.wait(timeout=30)
    expect(code == 128 + signal.SIGTERM and not any(n.startswith(held_prefix) for n in namespaces()),
           f"SIGTERM: that run exited {code} and left no namespace")
    expect(_root_links() == links_before, "the root namespace's links still unchanged")
    print("netlab self-test " + ("FAILED: " + "; ".join(failures) if failures else "passed"), flush=True)
    return 1 if failures else 0


def hold() -> int:
    """For the self-test: builds two hosts with a sleeper in each, prints the prefix, waits for a signal."""
    with Lab(grace=2) as lab:
        for name in ("x", "y"):
            lab.spawn(lab.add_host(name), ["sleep", "120"])
        print(lab.prefix, flush=True)
        time.sleep(60)
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--self-test"]:
        sys.exit(self_test())
    if sys.argv[1:] == ["--hold"]:
        sys.exit(hold())
    print("usage: netlab.py --self-test", file=sys.stderr)
    sys.exit(2)
