#!/usr/bin/env python3
"""The operator console in a real browser (Debian's chromium, headless, CDP).

Starts the real relay on 127.0.0.1 with a real sink that refuses what it gets
(HTTP 422), posts webhooks (one carrying <script> and an <img onerror> in its
payload and event type), and then, as an operator would in the browser:
signs in (after one wrong password), finds the dead letter from the overview,
opens it, reads the attempt history, fixes the sink, clicks Replay and watches
the item become delivered; checks that the hostile payload is shown as text
and ran nothing; checks from outside the browser that a request without the
session, without the CSRF token, with a foreign Origin or with a foreign Host
is refused (each beside the same request that passes); signs out.

  console_browser_test.py --relay build/app/mews-relay [--screenshots DIR] [--demo]

--screenshots writes PNGs of the pages; --demo adds hours of synthetic history
(charts with an outage), more targets and more dead letters: what
scripts/screenshots uses for the README. Exit 0 when every check held.
"""

import argparse
import http.client
import http.server
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from datetime import datetime, timedelta, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cdp  # noqa: E402

TOKEN = "browser-test-token-5f1d2c3b4a"
PASSWORD = "browser-test-password-7e3a9d"
WRONG_PASSWORD = "wrong-browser-password-41c8"
HOSTILE_EVENT = "<img src=x onerror=window.__pwned=2>"
HOSTILE_VALUE = "<script>window.__pwned=1</script>"

checks = []


def check(condition, what):
    checks.append(what)
    if not condition:
        raise AssertionError(f"FAILED: {what}")
    print(f"ok - {what}", flush=True)


def iso(moment):
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# --- a real downstream ---------------------------------------------------------
class Sink:
    """An HTTP target on 127.0.0.1:0: answers `status` with `body` to every POST."""

    def __init__(self, status=200, body=b'{"ok":true}'):
        self.status, self.body, self.received = status, body, 0
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length", "0"))
                self.rfile.read(length)
                sink.received += 1
                self.send_response(sink.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(sink.body)))
                self.end_headers()
                self.wfile.write(sink.body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# --- the relay -------------------------------------------------------------------
class Relay:
    def __init__(self, binary, work, targets, extra=""):
        self.binary, self.work = binary, work
        self.journal = os.path.join(work, "relay.db")
        self.config = os.path.join(work, "relay.ini")
        lines = [
            "[server]", "listen = 127.0.0.1:0", f"tokens = {TOKEN}",
            "[admin]", "listen = 127.0.0.1:0",
            "[console]", "password = ${system.env.MEWS_RELAY_CONSOLE_PASSWORD}",
            "[journal]", f"path = {self.journal}", "min_free = 0B",
        ]
        for name, settings in targets.items():
            lines.append(f"[target.{name}]")
            lines += [f"{key} = {value}" for key, value in settings.items()]
        with open(self.config, "w") as out:
            out.write("\n".join(lines) + "\n" + extra)
        self.env = dict(os.environ, MEWS_RELAY_CONSOLE_PASSWORD=PASSWORD)

    def cli(self, *args):
        return subprocess.run([self.binary, "-c", self.config, *args], env=self.env, capture_output=True, text=True,
                              timeout=60)

    def start(self):
        self.log_path = os.path.join(self.work, "relay.log")
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen([self.binary, "-c", self.config, "serve"], env=self.env,
                                        stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with open(self.log_path) as log:
                match = re.search(r'msg=serving .*port=(\d+) .*admin=([\d.:]+)', log.read())
            if match:
                self.ingest_port = int(match.group(1))
                self.admin = match.group(2)
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"the relay exited: {open(self.log_path).read()}")
            time.sleep(0.05)
        raise RuntimeError("the relay did not start within 30 s")

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.log.close()

    def post(self, body):
        connection = http.client.HTTPConnection("127.0.0.1", self.ingest_port, timeout=10)
        connection.request("POST", f"/webhooks/mews?token={TOKEN}", body=body,
                           headers={"Content-Type": "application/json"})
        answer = connection.getresponse()
        answer.read()
        connection.close()
        if answer.status != 202:
            raise RuntimeError(f"ingest answered {answer.status}")

    def dead_letters(self):
        listed = self.cli("dlq", "list", "--json", "--limit", "1000")
        if listed.returncode != 0:
            raise RuntimeError(listed.stderr)
        return json.loads(listed.stdout)


def admin_request(relay, method, path, headers=None, body=None):
    """A request to the admin listener from outside the browser: (status, headers, body)."""
    host, port = relay.admin.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request(method, path, body=body, headers=headers or {})
    answer = connection.getresponse()
    data = answer.read().decode(errors="replace")
    connection.close()
    return answer.status, dict(answer.getheaders()), data


def general_batch(discriminators, value_id="c2f1d888-232e-49eb-87ac-5f75363af13b", name=None):
    events = []
    for d in discriminators:
        value = {"Id": value_id}
        if name:
            value["Name"] = name
        events.append({"Discriminator": d, "Value": value})
    return json.dumps({"EnterpriseId": "851df8c8-90f2-4c4a-8e01-a4fc46b25178",
                       "IntegrationId": "c8bee838-7fb1-4f4e-8fac-ac87008b2f90", "Events": events}, indent=4)


def wait_until(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"FAILED: timed out after {timeout} s waiting for {what}")


# --- synthetic history for the screenshots (--demo) -------------------------------
def seed_history(journal, now):
    """Six hours of deliveries in the journal before the relay starts: pms with a
    40-minute outage three hours ago, crm steady. Written as the relay writes them."""
    db = sqlite3.connect(journal)
    body = general_batch(["ReservationUpdated"])
    with db:
        for minute in range(6 * 60, 0, -1):
            moment = now - timedelta(minutes=minute)
            batch = db.execute(
                "INSERT INTO batches (received_at, kind, event_count, content_type, body) VALUES (?, 'general', 1,"
                " 'application/json', ?)", (iso(moment), body)).lastrowid
            db.execute("INSERT INTO events (batch_id, seq, discriminator) VALUES (?, 0, 'ReservationUpdated')",
                       (batch,))
            busy = 1 + (minute % 7 == 0) + (60 < minute < 150) + (minute % 3 == 0)
            outage = 170 <= minute <= 210
            for target in ("pms", "crm"):
                for _ in range(busy if target == "pms" else 1):
                    delivery = db.execute(
                        "INSERT INTO deliveries (batch_id, target, state, attempts, created_at, due_at, updated_at,"
                        " age_from, last_status) VALUES (?, ?, 'delivered', 1, ?, ?, ?, ?, 200)",
                        (batch, target, iso(moment), iso(moment), iso(moment), iso(moment))).lastrowid
                    if target == "pms" and outage:
                        for retry in range(2):
                            db.execute(
                                "INSERT INTO attempts (delivery_id, started_at, duration_ms, status, error,"
                                " response_excerpt, outcome, request_headers) VALUES (?, ?, 3, 503, 'HTTP 503',"
                                " 'upstream unavailable', 'retry', '{}')",
                                (delivery, iso(moment + timedelta(seconds=retry * 20))))
                        continue
                    started = moment + timedelta(minutes=45) if target == "pms" and minute > 170 and minute < 215 \
                        else moment
                    db.execute(
                        "INSERT INTO attempts (delivery_id, started_at, duration_ms, status, response_excerpt, outcome,"
                        " request_headers) VALUES (?, ?, 12, 200, 'ok', 'delivered', '{}')", (delivery, iso(started)))
    db.close()


# --- the scenario ------------------------------------------------------------------
def run(args):
    work = tempfile.mkdtemp(prefix="mews-console-test-", dir=args.work)
    crm = Sink(status=422, body=b'{"error":"unknown customer"}')
    pms = Sink()
    targets = {
        "pms": {"url": pms.url, "events": "ReservationUpdated, CustomerAdded"},
        "crm": {"url": crm.url, "max_attempts": "3", "backoff": "100ms..200ms"},
    }
    if args.demo:
        targets["pos"] = {"url": "http://127.0.0.1:9/pos", "backoff": "1s..2s", "events": "ServiceOrderUpdated"}
    relay = Relay(args.relay, work, targets)
    if args.demo:
        migrated = relay.cli("migrate")
        if migrated.returncode != 0:
            raise RuntimeError(migrated.stderr)
        seed_history(relay.journal, datetime.now(timezone.utc))
    relay.start()
    browser = None
    try:
        base = f"http://{relay.admin}"
        relay.post(general_batch(["CustomerAdded", "CustomerUpdated"]))
        relay.post(general_batch([HOSTILE_EVENT], value_id=HOSTILE_VALUE, name=HOSTILE_VALUE))
        if args.demo:
            for i in range(6):
                relay.post(general_batch(["ServiceOrderUpdated", "CustomerUpdated"]))
            for i in range(5):
                relay.post(general_batch(["CustomerUpdated"]))
        expected = 7 if args.demo else 2
        letters = wait_until(lambda: len(relay.dead_letters()) >= expected and relay.dead_letters(), 30,
                             f"{expected} dead letters from the refusing sink")
        hostile = next(l for l in letters if HOSTILE_EVENT in l["event_types"])
        plain = next(l for l in letters if l["event_types"] == "CustomerAdded,CustomerUpdated")
        check(plain["target"] == "crm" and plain["reason"] == "rejected", "the refusing sink made a dead letter")
        if args.demo:
            time.sleep(6)  # pos: enough failed attempts for its circuit to open

        browser = cdp.Browser(width=1280, height=900, log_path=os.path.join(work, "chromium.log"))

        # Signing in: the console answers nothing else without a session.
        browser.goto(f"{base}/", "/console/sign-in")
        check("Sign in" in browser.text("h1"), "/ leads a signed-out browser to the sign-in page")
        help_text = browser.text("main")
        check("[console] password" in help_text and "password_hash" not in help_text,
              "the sign-in help names the credential in use ([console] password), not password_hash")
        if args.screenshots:
            browser.screenshot(os.path.join(args.screenshots, "sign-in.png"), full_page=False)
        browser.type_into("#password", WRONG_PASSWORD)
        browser.click("button[type=submit]")
        browser.wait_for("document.readyState === 'complete' && document.body.innerText.includes('Wrong password')",
                         what="the wrong password refused")
        check(True, "a wrong password is refused")
        browser.type_into("#password", PASSWORD)
        browser.press_enter()
        browser.wait_for("location.pathname === '/console/' && document.readyState === 'complete'",
                         what="the overview after signing in")
        check(browser.text("h1") == "Overview", "signing in shows the overview")
        session_cookie = next(c for c in browser.cookies() if c["name"] == "mews_console")
        check(session_cookie["httpOnly"] and session_cookie["sameSite"] == "Strict",
              "the session cookie is HttpOnly and SameSite=Strict")
        overview = browser.text("main")
        check("crm" in overview and "Dead letters" in overview and browser.evaluate(
            "document.querySelectorAll('svg.chart').length") == len(targets), "the overview has a chart per target")
        if args.screenshots:
            browser.screenshot(os.path.join(args.screenshots, "overview.png"))

        # Finding the dead letter the way a newcomer would: the overview's call to action.
        browser.click("a.button.primary[href='/console/dead-letters']")
        browser.loaded("/console/dead-letters")
        browser.wait_for("document.querySelectorAll('table.letters tbody tr').length >= 2", what="the list")
        check(browser.evaluate("document.querySelector('[data-selection-button]').disabled") is True,
              "with the script, 'Replay selected' waits for a selection")
        if args.screenshots:
            browser.screenshot(os.path.join(args.screenshots, "dead-letters.png"))
        browser.click(f"a[href='/console/dead-letters/{plain['id']}']")
        browser.loaded("/console/deliveries/")
        browser.wait_for("!!document.querySelector('table.attempts')", what="the attempt history")
        history = browser.text("table.attempts")
        check("422" in history and "unknown customer" in history and "webhook-id" in browser.evaluate(
            "Array.from(document.querySelectorAll('pre.headers')).map(p => p.textContent).join()"),
            "the dead letter shows its attempt history: status, the target's answer, the headers sent")
        if args.screenshots:
            browser.screenshot(os.path.join(args.screenshots, "dead-letter.png"))

        # The downstream is fixed; replay from the page and watch it go out.
        crm.status, crm.body = 200, b'{"ok":true}'
        browser.click("form[action='/console/replay'] button[type=submit]")
        browser.loaded("/console/actions/")
        check("Replayed 1 dead letter" in browser.text("h1"), "replay reports how many it replayed")
        browser.wait_for("document.readyState === 'complete' && !!document.querySelector('.states .state-delivered')"
                         " && document.querySelector('td.live').dataset.state === 'delivered'", timeout=30,
                         what="the replayed item delivered")
        check("delivered" in browser.text("main"), "the replayed dead letter is shown delivered")
        if args.screenshots:
            browser.screenshot(os.path.join(args.screenshots, "replayed.png"), full_page=False)

        # A hostile payload is text: shown, never run.
        browser.goto(f"{base}/console/dead-letters/{hostile['id']}", "/console/deliveries/")
        payload_text = browser.evaluate("document.querySelector('pre.payload').textContent")
        check(HOSTILE_VALUE in payload_text and HOSTILE_EVENT in browser.text("main"),
              "a payload holding <script> is shown as text")
        check(browser.evaluate("window.__pwned === undefined"), "nothing from the payload ran")
        check(browser.evaluate("document.scripts.length") == 1 and browser.evaluate(
            "document.querySelectorAll('main img, main script').length") == 0,
            "the page holds only the console's own script and no element from the payload")
        if args.screenshots:
            browser.screenshot(os.path.join(args.screenshots, "dead-letter-hostile.png"))

        # Usable at 1024 px and on a phone (no sideways scrolling of the page),
        # without the script, and from the keyboard.
        for width, height, mobile in ((1024, 768, False), (390, 844, True)):
            browser.viewport(width, height, mobile=mobile)
            for path in ("/console/", "/console/dead-letters", f"/console/dead-letters/{hostile['id']}"):
                browser.goto(base + path, "/console/")
                # Against the device width: a phone widens its layout viewport to fit what overflows.
                page_width = browser.evaluate("document.documentElement.scrollWidth")
                check(page_width <= width, f"{path} fits {width} px without sideways scrolling ({page_width} px)")
            # Nor inside the overview's targets table: every figure of a row in view, nothing cut off.
            browser.goto(base + "/console/", "/console/")
            cells = browser.evaluate(
                "JSON.stringify(Array.from(document.querySelectorAll('table.targets tbody tr > *')).map(c => "
                "[c.getBoundingClientRect().right, c.textContent.trim().slice(0, 20)]))")
            wraps = browser.evaluate("Array.from(document.querySelectorAll('.table-wrap')).every("
                                     "w => w.scrollWidth <= w.clientWidth)")
            outside = [text for right, text in json.loads(cells) if right > width]
            check(cells != "[]" and not outside and wraps,
                  f"the overview's targets table shows every column at {width} px without scrolling "
                  f"(cut off: {outside})")
        browser.viewport(1280, 900)
        browser.send("Emulation.setScriptExecutionDisabled", {"value": True})
        browser.goto(f"{base}/console/dead-letters", "/console/dead-letters")
        check(browser.evaluate("!document.querySelector('[data-selection-button]').disabled && "
                               "document.querySelectorAll('input[name=id]:not(:disabled)').length >= 1"),
              "without the script the list still offers its rows and 'Replay selected'")
        browser.send("Emulation.setScriptExecutionDisabled", {"value": False})
        browser.goto(f"{base}/console/dead-letters", "/console/dead-letters")
        for _ in range(40):
            if browser.evaluate("(document.activeElement.getAttribute('href') || '').startsWith("
                                "'/console/dead-letters/')"):
                break
            browser.send("Input.dispatchKeyEvent", {"type": "keyDown", "key": "Tab", "code": "Tab",
                                                    "windowsVirtualKeyCode": 9})
            browser.send("Input.dispatchKeyEvent", {"type": "keyUp", "key": "Tab", "code": "Tab",
                                                    "windowsVirtualKeyCode": 9})
        browser.press_enter()
        browser.loaded("/console/deliveries/")
        check(browser.text("h1").startswith("Dead letter"), "the keyboard alone reaches and opens a dead letter")

        # Refusals, each beside the same request that passes.
        csrf = browser.evaluate("document.querySelector('input[name=csrf]').value")
        cookie = f"mews_console={session_cookie['value']}"
        origin = base
        form = f"csrf={csrf}&id={hostile['id']}"
        no_session = admin_request(relay, "GET", "/console/dead-letters")
        check(no_session[0] == 303 and "/console/sign-in" in no_session[1].get("Location", ""),
              "a page without the session is refused (sent to sign in)")
        check(admin_request(relay, "GET", "/console/deliveries/1/payload")[0] == 303,
              "a payload download without the session is refused")
        posts = {
            "no session": ({"Origin": origin, "Content-Type": "application/x-www-form-urlencoded"}, form),
            "no CSRF token": ({"Cookie": cookie, "Origin": origin,
                               "Content-Type": "application/x-www-form-urlencoded"}, f"id={hostile['id']}"),
            "a wrong CSRF token": ({"Cookie": cookie, "Origin": origin,
                                    "Content-Type": "application/x-www-form-urlencoded"},
                                   f"csrf={'0' * len(csrf)}&id={hostile['id']}"),
            "no Origin": ({"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"}, form),
            "a foreign Origin": ({"Cookie": cookie, "Origin": "http://evil.example",
                                  "Content-Type": "application/x-www-form-urlencoded"}, form),
        }
        for what, (headers, body) in posts.items():
            status = admin_request(relay, "POST", "/console/replay", headers, body)[0]
            check(status == 403, f"a replay with {what} is refused (403)")
        check(hostile["state"] == "dead" and all(l["state"] == "dead" for l in relay.dead_letters()
                                                 if l["id"] == hostile["id"]), "the refused replays changed nothing")
        rebinding = admin_request(relay, "GET", "/console/", {"Host": "attacker.example:8080", "Cookie": cookie})
        check(rebinding[0] == 421, "a foreign Host name is refused (421: DNS rebinding)")
        tunnel = admin_request(relay, "GET", "/console/", {"Host": "localhost:18000", "Cookie": cookie})
        check(tunnel[0] == 200, "localhost on another port (an SSH tunnel) is accepted")
        accepted = admin_request(relay, "POST", "/console/replay",
                                 {"Cookie": cookie, "Origin": origin,
                                  "Content-Type": "application/x-www-form-urlencoded"}, form)
        check(accepted[0] == 303 and "/console/actions/" in accepted[1].get("Location", ""),
              "the same replay with session, CSRF token and Origin is accepted")

        # Failed sign-ins were logged without the attempted password.
        with open(relay.log_path) as log:
            text = log.read()
        check("sign-in failed" in text and WRONG_PASSWORD not in text and PASSWORD not in text,
              "a failed sign-in is logged without the attempted password")

        # Signing out ends the session server-side.
        browser.goto(f"{base}/console/", "/console/")
        browser.click("form.sign-out button")
        browser.loaded("/console/sign-in")
        check("Signed out" in browser.text("main"), "signing out says so")
        after = admin_request(relay, "GET", "/console/", {"Cookie": cookie})
        check(after[0] == 303, "the old session cookie no longer works after signing out")

        if args.screenshots and args.demo:
            # The same pages on a phone, and in the dark.
            browser.type_into("#password", PASSWORD)
            browser.press_enter()
            browser.wait_for("location.pathname === '/console/' && document.readyState === 'complete'")
            browser.viewport(390, 844, mobile=True, scale=2)
            browser.goto(f"{base}/console/dead-letters", "/console/dead-letters")
            browser.screenshot(os.path.join(args.screenshots, "phone-dead-letters.png"), max_height=1300)
            browser.viewport(1280, 900)
            browser.color_scheme("dark")
            browser.goto(f"{base}/console/", "/console/")
            browser.screenshot(os.path.join(args.screenshots, "overview-dark.png"), full_page=False)
    finally:
        if browser:
            browser.close()
        relay.stop()
        crm.close()
        pms.close()
        # Into the test log, where scripts/test looks for secrets that should not be there.
        with open(relay.log_path) as log:
            print("--- the relay's log\n" + log.read(), flush=True)
    print(f"all {len(checks)} checks held")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--relay", required=True, help="the mews-relay binary")
    parser.add_argument("--screenshots", help="write PNGs of the pages here")
    parser.add_argument("--demo", action="store_true", help="hours of synthetic history and more targets")
    parser.add_argument("--work", default=None, help="where the temporary journal goes")
    args = parser.parse_args()
    if args.screenshots:
        os.makedirs(args.screenshots, exist_ok=True)
    if args.work:
        os.makedirs(args.work, exist_ok=True)
    try:
        run(args)
    except (AssertionError, cdp.CdpError, RuntimeError) as error:
        print(error, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
