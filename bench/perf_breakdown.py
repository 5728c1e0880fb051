#!/usr/bin/env python3
"""Where the relay's CPU goes: reads `perf script` output (perf record -g of
the relay) on stdin and prints the share of samples per stage, each sample
counted once, in the first stage of this list whose pattern its stack
matches (so fsync under a COMMIT counts as fsync, not SQLite), then per
thread. Used by scripts/bench-ingest and scripts/bench-delivery with PERF=1.
Stacks are unwound through frame pointers, which Debian's libraries mostly
lack: deep frames are often missing, so "other" holds what could not be told.
"""
import collections
import re
import sys

STAGES = [
    ("fsync", r"fdatasync|fsync|jbd2|ext4_sync"),
    ("logging", r"mews::log::"),
    ("SQLite", r"sqlite3|libsqlite"),
    ("JSON", r"json_scan|mews::json|outlineBatch|parseBatch|buildBody"),
    ("HTTP client (delivery)", r"HTTPClientSession|mews::delivery::TargetClient|mews::delivery::HttpClient|SecureSocket"),
    ("memory (malloc, page faults)", r"malloc|_int_free|cfree|operator new|operator delete|madvise|page_fault|do_anonymous_page"),
    ("locking, wake-ups, scheduling", r"futex|__lll_lock|pthread_cond|pthread_mutex|condition_variable|__schedule|finish_task_switch|try_to_wake_up"),
    ("HTTP server, sockets", r"Poco::Net|tcp_|__send|__recv|\brecv|\bsend|epoll|sock_|inet_|ip_|accept4|\bpoll"),
]
COMPILED = [(name, re.compile(pattern)) for name, pattern in STAGES]


def main():
    stages, threads = collections.Counter(), collections.Counter()
    total, frames, comm = 0, [], None

    def flush():
        nonlocal total
        if comm is None:
            return
        text = "\n".join(frames)
        stage = next((name for name, rx in COMPILED if rx.search(text)), "other")
        stages[stage] += 1
        threads[re.sub(r"[\d#:]+$", "", comm)] += 1
        total += 1

    for line in sys.stdin:
        if not line.strip():
            flush()
            frames, comm = [], None
        elif not line[0].isspace():
            comm = line.split()[0]
        else:
            frames.append(line.strip())
    flush()
    if total == 0:
        sys.exit("perf_breakdown: no samples")
    print(f"{total} samples")
    print("| stage | share of the relay's CPU |")
    print("|---|---|")
    for name in [n for n, _ in STAGES] + ["other"]:
        print(f"| {name} | {100 * stages[name] / total:.1f}% |")
    print("by thread: " + ", ".join(f"{t} {100 * n / total:.1f}%" for t, n in threads.most_common(6)))


if __name__ == "__main__":
    main()
