#!/usr/bin/env python3
"""The cluster scenarios' own checks (tests/chaos/cluster.py), on loopback and
without a relay: the sink counts two relays' requests to one target at once as
an overlapping send (and nothing else), an acknowledged batch that arrived under
another batch's webhook-id is missing, and the Mews-like sender drops a batch
after four failures but not one a retry got in. Each check is shown to fail on
the case it exists for. Run by ctest (label unit) in scripts/test.
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster  # noqa: E402 (found through the path above)


def post(sink: cluster.ClusterSink, source: str, target: str, webhook_id: str, events: list[str]) -> None:
    """A relay's delivery: from `source` (a loopback address of its own) to the sink's `target`."""
    body = json.dumps({"Events": [{"Discriminator": "ReservationUpdated", "Value": {"Id": e}} for e in events]})
    connection = http.client.HTTPConnection("127.0.0.1", sink.port, timeout=5, source_address=(source, 0))
    try:
        connection.request("POST", f"/{target}", body, {"Content-Type": "application/json", "webhook-id": webhook_id})
        response = connection.getresponse()
        response.read()
        assert response.status == 200, response.status
    finally:
        connection.close()


def at_once(*calls) -> None:
    threads = [threading.Thread(target=post, args=call) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)


class Overlaps(unittest.TestCase):
    def setUp(self):
        self.sink = cluster.ClusterSink(None, None, delay=0.3)

    def tearDown(self):
        self.sink.stop()

    def test_two_relays_sending_to_one_target_at_once_overlap(self):
        at_once((self.sink, "127.0.0.2", "t1", "msg_j_1", ["a"]), (self.sink, "127.0.0.3", "t1", "msg_j_2", ["b"]))
        overlaps = self.sink.overlaps()
        self.assertEqual(len(overlaps), 1)
        self.assertEqual({overlaps[0][0].source, overlaps[0][1].source}, {"127.0.0.2", "127.0.0.3"})

    def test_one_relay_at_once_two_targets_at_once_or_two_relays_in_turn_do_not(self):
        at_once((self.sink, "127.0.0.2", "t1", "msg_j_1", ["a"]), (self.sink, "127.0.0.2", "t1", "msg_j_2", ["b"]))
        at_once((self.sink, "127.0.0.2", "t1", "msg_j_3", ["c"]), (self.sink, "127.0.0.3", "t2", "msg_j_3", ["c"]))
        post(self.sink, "127.0.0.3", "t1", "msg_j_4", ["d"])
        self.assertEqual(self.sink.overlaps(), [])
        self.assertEqual(self.sink.owner("t1", 0), "127.0.0.3")  # the latest sender to t1

    def test_a_pause_counts_from_the_last_request_before_the_window(self):
        post(self.sink, "127.0.0.2", "t1", "msg_j_1", ["a"])
        window = time.monotonic()
        time.sleep(0.5)
        post(self.sink, "127.0.0.2", "t1", "msg_j_2", ["b"])
        self.assertGreaterEqual(self.sink.longest_pause("t1", window, time.monotonic()), 0.5)
        self.assertEqual(self.sink.longest_pause("t2", window, time.monotonic()), 0.0)


class WebhookIds(unittest.TestCase):
    def setUp(self):
        self.sink = cluster.ClusterSink(None, None, delay=0)
        self.batch = cluster.Batch(0, b"", ["e1", "e2"], batch_id=7)

    def tearDown(self):
        self.sink.stop()

    def test_a_batch_at_every_target_with_its_webhook_id_is_delivered(self):
        for target in ("t1", "t2"):
            post(self.sink, "127.0.0.2", target, "msg_abc_7", ["e1", "e2"])
        self.assertEqual(cluster.missing_deliveries(self.sink, [self.batch], ("t1", "t2")), [])

    def test_its_events_under_another_webhook_id_or_at_one_target_only_are_missing(self):
        post(self.sink, "127.0.0.2", "t1", "msg_abc_17", ["e1", "e2"])  # another batch's id (17 ends in 7)
        post(self.sink, "127.0.0.2", "t2", "msg_abc_7", ["e1"])
        self.assertEqual(cluster.missing_deliveries(self.sink, [self.batch], ("t1", "t2")),
                         ["t1:e1", "t1:e2", "t2:e2"])


class FakeRelay:
    """Answers the sender's posts: `statuses` in turn (202 with a batch id), then 202."""

    def __init__(self, statuses: list[int]):
        self.statuses, self.count = list(statuses), 0
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                fake.count += 1
                status = fake.statuses.pop(0) if fake.statuses else 202
                body = json.dumps({"batch": fake.count, "events": 3}).encode() if status == 202 else b"{}"
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def send_one(statuses: list[int]) -> cluster.MewsSender:
    relay = FakeRelay(statuses)
    try:
        sender = cluster.MewsSender(None, None, "127.0.0.1", relay.server.server_address[1], threads=1, pause=0,
                                    retry_delays=(0.1, 0.3, 0.6), max_batches=1).start()
        sender.stop(drain=5)
    finally:
        relay.stop()
    return sender


class Sender(unittest.TestCase):
    def test_four_failures_drop_the_batch(self):
        sender = send_one([503, 503, 503, 503])
        self.assertEqual((len(sender.acked), len(sender.dropped), sender.statuses), (0, 1, {503: 4}))

    def test_a_retry_that_gets_in_is_acked_not_dropped(self):
        started = time.monotonic()
        sender = send_one([503, 502, 503])
        self.assertEqual((len(sender.acked), len(sender.dropped), sender.statuses), (1, 0, {503: 2, 502: 1, 202: 1}))
        self.assertEqual(sender.acked[0].batch_id, 4)
        self.assertGreaterEqual(time.monotonic() - started, 0.6)  # the last retry waited its turn
        self.assertGreaterEqual(sender.longest_gap(), 0.5)  # from the start to the only 202


if __name__ == "__main__":
    unittest.main()
