#!/usr/bin/env python3
"""The chaos harness's own test: its verdict must fail a scenario that lost one
acknowledged event, whatever the scenario, and pass one where all arrived.

The events travel for real: a POST on loopback to chaos.Sink, counted by
chaos.settle, judged by chaos.run_scenarios (the runner scripts/chaos uses).
No relay is started; run by ctest (label unit) in scripts/test.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chaos  # noqa: E402 (found through the path above)

ACKED = {"k0-0-0", "k0-0-1", "k0-0-2"}  # three events of one batch got a 202


def post_to(sink: chaos.Sink, event_ids: list[str]) -> None:
    """What the relay does on delivery: one General batch, POSTed to the sink."""
    body = json.dumps({"EnterpriseId": "chaos", "IntegrationId": "chaos",
                       "Events": [{"Discriminator": "ReservationUpdated", "Value": {"Id": i}} for i in event_ids]})
    connection = http.client.HTTPConnection("127.0.0.1", sink.port, timeout=5)
    try:
        connection.request("POST", "/hook", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        assert response.status == 200, response.status
    finally:
        connection.close()


SINK: chaos.Sink | None = None  # one for the module: stopping a sink takes up to 0.5 s


def setUpModule():  # noqa: N802 (unittest's name)
    global SINK
    SINK = chaos.Sink()


def tearDownModule():  # noqa: N802
    SINK.stop()


def delivered_at_sink(*batches: list[str]) -> chaos.Delivery:
    """The sink, emptied, receives `batches`; settle counts them against ACKED
    (waiting 0.3 s at most for what is missing)."""
    with SINK.lock:
        SINK.received.clear()
    for event_ids in batches:
        post_to(SINK, event_ids)
    return chaos.settle(SINK, ACKED, timeout=0.3)


def run(scenarios: dict, workdir: str | None) -> tuple[list[chaos.Outcome], str]:
    """The real runner over `scenarios`; its outcomes and what it printed."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        outcomes = chaos.run_scenarios(list(scenarios), scenarios, argparse.Namespace(workdir=workdir))
        print(chaos.summary(outcomes))
    return outcomes, printed.getvalue()


class OneLostEventFailsTheRun(unittest.TestCase):
    def test_kill9_with_one_acknowledged_event_missing_at_the_sink_fails(self):
        delivery = delivered_at_sink(["k0-0-0", "k0-0-1"])
        self.assertEqual((delivery.acked, delivery.delivered, delivery.lost), (3, 2, 1))
        self.assertEqual(delivery.missing, ["k0-0-2"])
        with tempfile.TemporaryDirectory() as workdir:
            outcomes, printed = run({"kill-9": lambda args, _: chaos.Result("kill-9", delivery, "ok", "cycles 1")},
                                    workdir)
            with open(os.path.join(workdir, "lost.txt")) as f:
                self.assertEqual(f.read(), "k0-0-2\n")
        self.assertEqual(len(outcomes), 1)
        self.assertTrue(outcomes[0].failures, printed)
        self.assertIn("lost 1 acknowledged events (first: k0-0-2)", outcomes[0].failures[0])
        self.assertIn("kill-9: cycles 1; acked 3 events, delivered 2, lost 1,", printed)
        self.assertIn("FAILED kill-9", printed)
        self.assertRegex(printed, r"kill-9\s+3\s+2\s+1\s+0\s+ok\s+FAILED")  # the summary table's row

    def test_every_scenario_is_judged_the_same_way(self):
        delivery = delivered_at_sink(["k0-0-0", "k0-0-1"])
        for name in chaos.SCENARIOS:
            if name == "negative-control":
                continue  # it expects loss: see NegativeControl
            result = chaos.Result(name, delivery, "ok", expected={"the fault's effect": True})
            self.assertTrue(result.failures(), f"{name} passed with one lost event")

    def test_the_verdict_survives_the_trip_out_of_a_mount_namespace(self):
        delivery = delivered_at_sink(["k0-0-0"])
        result = chaos.Result.from_json(chaos.Result("disk-full", delivery, "ok").to_json())
        self.assertEqual(result.delivery.lost, 2)
        self.assertTrue(result.failures())


class AllArrivedPasses(unittest.TestCase):
    def test_kill9_with_every_acknowledged_event_at_the_sink_passes(self):
        delivery = delivered_at_sink(sorted(ACKED))
        self.assertEqual((delivery.acked, delivery.delivered, delivery.lost), (3, 3, 0))
        outcomes, printed = run({"kill-9": lambda args, _: chaos.Result("kill-9", delivery, "ok", "cycles 1")}, None)
        self.assertEqual(outcomes[0].failures, [], printed)
        self.assertIn("acked 3 events, delivered 3, lost 0, duplicates 0, integrity ok", printed)
        self.assertNotIn("FAILED", printed)

    def test_duplicates_are_counted_and_not_a_failure(self):
        delivery = delivered_at_sink(sorted(ACKED), ["k0-0-1"])
        self.assertEqual((delivery.lost, delivery.duplicates), (0, 1))
        self.assertEqual(chaos.Result("kill-9", delivery, "ok").failures(), [])


class OtherFailures(unittest.TestCase):
    def setUp(self):
        self.delivery = delivered_at_sink(sorted(ACKED))

    def test_an_expected_effect_not_seen_fails(self):
        result = chaos.Result("disk-full", self.delivery, "ok", expected={"Retry-After on every 503": False})
        self.assertEqual(result.failures(), ["did not see: Retry-After on every 503"])

    def test_a_damaged_journal_fails(self):
        self.assertTrue(chaos.Result("kill-9", self.delivery, "*** in database main ***").failures())

    def test_nothing_acknowledged_fails(self):
        empty = chaos.Delivery(acked=0, delivered=0, lost=0, duplicates=0)
        self.assertIn("nothing was acknowledged: the load did not run", chaos.Result("kill-9", empty, "ok").failures())

    def test_a_scenario_that_returns_no_result_fails(self):
        outcomes, printed = run({"kill-9": lambda args, _: "kill-9: lost 0"}, None)
        self.assertTrue(outcomes[0].failures)
        self.assertIn("not a Result", printed)

    def test_a_scenario_that_stops_early_fails(self):
        def stops(args, workdir):
            raise chaos.ScenarioFailed("relay did not start")

        with tempfile.TemporaryDirectory() as workdir:
            outcomes, printed = run({"kill-9": stops}, workdir)
        self.assertEqual(outcomes[0].failures, ["relay did not start"])
        self.assertRegex(printed, r"kill-9\s+-\s+-\s+-\s+-\s+-\s+FAILED")


class NegativeControl(unittest.TestCase):
    def test_loss_is_what_it_must_show(self):
        lossy = delivered_at_sink(["k0-0-0", "k0-0-1"])
        result = chaos.Result("negative-control (ack before commit)", lossy, "ok", expect_loss=True)
        self.assertEqual(result.failures(), [])
        self.assertTrue(result.line().endswith("lost 1, duplicates 0, integrity ok -> loss detected, as it must be"))

    def test_no_loss_fails_it(self):
        whole = delivered_at_sink(sorted(ACKED))
        result = chaos.Result("negative-control (ack before commit)", whole, "ok", expect_loss=True)
        self.assertEqual(result.failures(), ["the suite did NOT detect loss"])


class Backends(unittest.TestCase):
    def test_postgresql_runs_no_scenario_about_the_sqlite_file(self):
        on_postgresql = chaos.scenarios_for("postgresql")
        self.assertEqual(set(on_postgresql) & {"disk-full", "watermark", "io-errors", "negative-control"}, set())
        self.assertIn("kill-9", on_postgresql)
        self.assertIn("target-faults", on_postgresql)
        self.assertIn("pg-restart", on_postgresql)

    def test_sqlite_runs_every_scenario_but_the_server_restart_and_the_cluster(self):
        self.assertEqual(set(chaos.SCENARIOS) - set(chaos.scenarios_for("sqlite")),
                         {"pg-restart", "relay-kill", "relay-partition", "rolling-upgrade"})

    def test_asking_postgresql_for_a_sqlite_file_scenario_is_a_usage_error(self):
        process = subprocess.run([sys.executable, chaos.__file__, "--backend", "postgresql", "--only", "disk-full"],
                                 capture_output=True, text=True, timeout=30)
        self.assertEqual(process.returncode, 2, process.stderr)
        self.assertIn("scenario disk-full does not apply to --backend postgresql: it is about the SQLite file",
                      process.stderr)
        self.assertEqual(process.stdout, "")  # nothing printed as run, let alone passed


if __name__ == "__main__":
    unittest.main()
