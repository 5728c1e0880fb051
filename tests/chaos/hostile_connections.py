#!/usr/bin/env python3
"""COUNT hostile connections to a relay on 127.0.0.1 while a real client posts,
for the slow-connections row of docs/reliability.md:

    tests/chaos/hostile_connections.py PORT TOKEN 1000 [SECONDS=10] [PID]

The hostile connections, in five equal parts: connected and silent; one byte
sent; a head trickled a byte every 0.5 s; a whole head with the token, then a
body trickled a byte every 0.5 s; whole posts without the token, sent again
on a new connection as soon as each is answered. Meanwhile a real post (a new
connection each, the token, a small batch) every 100 ms. Prints how long the
real posts waited (p50, p99, max), how many took 1 s or more, what the hostile
connections read, and, given the relay's PID, its peak resident memory. Exit 1
when a real post was not answered 202 within 1 s. Loopback only; bounded by
SECONDS (and at most COUNT + 1 connections open at once from here).
"""
import collections
import socket
import sys
import threading
import time


def main():
    port, token, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 10.0
    pid = sys.argv[5] if len(sys.argv) > 5 else None
    body = '{"Events":[]}'

    def post(with_token):
        query = f"?token={token}" if with_token else ""
        return (f"POST /webhooks/mews{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode()

    stop_at = time.monotonic() + seconds
    part = count // 5
    sockets = []  # (socket, bytes to trickle)
    answers = collections.Counter()
    lock = threading.Lock()

    def connect():
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.setblocking(False)
        return s

    for _ in range(part):
        sockets.append((connect(), b""))
    for _ in range(part):
        s = connect()
        s.send(b"P")
        sockets.append((s, b""))
    head = post(True)
    for _ in range(part):
        s = connect()
        s.send(head[:1])
        sockets.append((s, head[1:]))
    slow_body = (f"POST /webhooks/mews?token={token} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 f"Content-Length: 100000\r\n\r\n").encode()
    for _ in range(part):
        s = connect()
        s.send(slow_body)
        sockets.append((s, b"x" * 100000))

    def trickle():
        position = [0] * len(sockets)
        while time.monotonic() < stop_at:
            for i, (s, rest) in enumerate(sockets):
                if position[i] < len(rest):
                    try:
                        s.send(rest[position[i]:position[i] + 1])
                        position[i] += 1
                    except OSError:
                        position[i] = len(rest)
            time.sleep(0.5)

    def no_token():
        request = post(False)
        while time.monotonic() < stop_at:
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.sendall(request)
                status = s.recv(4096).split(b"\r\n")[0].decode()
                s.close()
            except OSError as e:
                status = type(e).__name__
            with lock:
                answers["no token: " + status] += 1

    waits = []
    failures = collections.Counter()

    def real():
        request = post(True)
        while time.monotonic() < stop_at:
            started = time.monotonic()
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
                s.sendall(request)
                status = s.recv(4096).split(b"\r\n")[0].decode()
                s.close()
            except OSError as e:
                status = type(e).__name__
            waited = time.monotonic() - started
            waits.append(waited)
            if not status.startswith("HTTP/1.1 202 ") or waited >= 1.0:
                failures[f"{status} after {waited:.1f} s"] += 1
            time.sleep(max(0.0, 0.1 - waited))

    threads = [threading.Thread(target=trickle), threading.Thread(target=real)]
    threads += [threading.Thread(target=no_token) for _ in range(max(1, min(part, 8)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s, _ in sockets:
        try:
            data = s.recv(4096)
            answers["hostile: " + (data.split(b"\r\n")[0].decode() if data else "closed")] += 1
        except BlockingIOError:
            answers["hostile: still open"] += 1
        except OSError as e:
            answers["hostile: " + type(e).__name__] += 1
        s.close()
    waits.sort()
    ms = lambda q: round(1000 * waits[min(len(waits) - 1, int(q * len(waits)))], 1)
    print(f"hostile connections {4 * part} held + {part} no-token posters; real posts {len(waits)}: "
          f"p50 {ms(0.5)} ms p99 {ms(0.99)} ms max {ms(1.0)} ms; 1 s or more, or not 202: {sum(failures.values())}")
    for what, n in sorted(failures.items()):
        print(f"  {n:5d}  {what}")
    for what, n in sorted(answers.items()):
        print(f"  {n:5d}  {what}")
    if pid:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(("VmHWM", "VmRSS", "Threads")):
                    print("  relay " + " ".join(line.split()))
    return 0 if waits and not failures else 1


if __name__ == "__main__":
    sys.exit(main())
