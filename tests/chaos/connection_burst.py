#!/usr/bin/env python3
"""N clients at once, each posting one small batch and keeping its connection
open (an idle keep-alive connection once answered); prints how they were
answered. For the capacity row of docs/reliability.md:

    tests/chaos/connection_burst.py PORT TOKEN 200

against a relay with `max_connections = 4`. Every client must read an answer
(202, or 503 with Retry-After): a reset, a close without an answer or a
timeout is a failure, and the exit status is 1.
"""
import collections
import socket
import sys
import threading
import time


def main():
    port, token, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    body = '{"Events":[]}'
    request = (f"POST /webhooks/mews?token={token} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode()
    outcomes = {}
    held = []

    def client(i):
        started = time.monotonic()
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=20)
            held.append(s)
            s.sendall(request)
            data = s.recv(4096)
            outcome = data.split(b"\r\n")[0].decode() if data else "closed without an answer"
        except ConnectionResetError:
            outcome = "reset"
        except OSError as e:
            outcome = type(e).__name__
        outcomes[i] = (outcome, round(time.monotonic() - started))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    tally = collections.Counter(outcomes.values())
    for (outcome, seconds), n in sorted(tally.items()):
        print(f"{n:5d}  {outcome}  (within {seconds} s)")
    answered = sum(n for (outcome, _), n in tally.items() if outcome.startswith("HTTP/1.1 "))
    return 0 if answered == count else 1


if __name__ == "__main__":
    sys.exit(main())
