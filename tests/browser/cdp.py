"""A small Chrome DevTools Protocol client over Chromium's --remote-debugging-pipe.

Python's standard library only: Chromium reads JSON commands from fd 3 and
writes answers and events to fd 4, each message ended by a NUL byte, so no
websocket and no port are involved. Every wait is bounded.
"""

import base64
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time


class CdpError(RuntimeError):
    pass


def find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise CdpError("no chromium on PATH (scripts/setup console installs Debian's chromium)")


class Browser:
    """One headless Chromium and one page in it."""

    def __init__(self, width=1280, height=900, log_path=None):
        self.profile = tempfile.mkdtemp(prefix="mews-console-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        args = [
            find_chromium(), "--headless=new", "--remote-debugging-pipe", "--no-first-run",
            "--no-default-browser-check", "--disable-gpu", "--disable-dev-shm-usage", "--disable-extensions",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--mute-audio",
            "--hide-scrollbars", "--force-color-profile=srgb", "--font-render-hinting=none",
            f"--user-data-dir={self.profile}", f"--window-size={width},{height}", "about:blank",
        ]
        # Chromium's sandbox refuses to run as root and needs user namespaces that
        # CI containers often lack; this browser only ever loads the test's own
        # pages on 127.0.0.1.
        args.insert(1, "--no-sandbox")
        # The shell puts the pipe ends on fds 3 and 4, where Chromium expects them
        # (bash: dash reads only one-digit descriptors in a redirection).
        command = " ".join(f"'{a}'" for a in args) + f" 3<&{to_child_r} 4>&{from_child_w}"
        self._log = open(log_path or os.devnull, "ab")
        self.process = subprocess.Popen(["bash", "-c", "exec " + command], pass_fds=(to_child_r, from_child_w),
                                        stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)
        os.close(to_child_r)
        os.close(from_child_w)
        self._next_id = 0
        self._answers = {}
        self._events = []
        self._cond = threading.Condition()
        self._closed = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Network"):
            self.send(f"{domain}.enable")
        self.viewport(width, height)

    # --- transport -----------------------------------------------------------
    def _read(self):
        buffer = b""
        while True:
            try:
                chunk = os.read(self._from_child, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._closed = True
                    self._cond.notify_all()
                return
            buffer += chunk
            while b"\0" in buffer:
                raw, buffer = buffer.split(b"\0", 1)
                message = json.loads(raw)
                with self._cond:
                    if "id" in message:
                        self._answers[message["id"]] = message
                    else:
                        self._events.append(message)
                    self._cond.notify_all()

    def call(self, method, params=None, session=None, timeout=30):
        with self._cond:
            self._next_id += 1
            ident = self._next_id
        message = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        with self._cond:
            while ident not in self._answers:
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    raise CdpError(f"{method}: no answer from chromium within {timeout} s")
                self._cond.wait(left)
            answer = self._answers.pop(ident)
        if "error" in answer:
            raise CdpError(f"{method}: {answer['error'].get('message')}")
        return answer.get("result", {})

    def send(self, method, params=None, timeout=30):
        """A command to the page's session."""
        return self.call(method, params, session=self.session, timeout=timeout)

    def close(self):
        try:
            self.call("Browser.close", timeout=5)
        except CdpError:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self._log.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    # --- the page ------------------------------------------------------------
    def viewport(self, width, height, mobile=False, scale=1):
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": scale, "mobile": mobile})
        self.width, self.height, self.mobile, self.scale = width, height, mobile, scale

    def color_scheme(self, scheme):
        self.send("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": scheme}]})

    def evaluate(self, expression):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            raise CdpError(f"script failed: {expression[:80]}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def wait_for(self, expression, timeout=15, what=None):
        """Polls a JavaScript expression until it is truthy."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = self.evaluate(expression)
                if last:
                    return last
            except CdpError:
                pass  # the page is navigating
            time.sleep(0.1)
        raise CdpError(f"timed out after {timeout} s waiting for {what or expression} (last: {last!r})")

    def loaded(self, path_prefix, timeout=15):
        return self.wait_for(
            f"document.readyState === 'complete' && location.pathname.startsWith({json.dumps(path_prefix)})",
            timeout, what=f"a page under {path_prefix}")

    def goto(self, url, path_prefix=None, timeout=15):
        self.send("Page.navigate", {"url": url})
        from urllib.parse import urlparse
        return self.loaded(path_prefix or urlparse(url).path or "/", timeout)

    def click(self, selector):
        """A real mouse click in the middle of the first element matching `selector`."""
        box = self.wait_for(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return null;"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return r.width > 0 ? [r.x + r.width / 2, r.y + r.height / 2] : null; })()",
            what=f"element {selector}")
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent",
                      {"type": kind, "x": box[0], "y": box[1], "button": "left", "clickCount": 1})

    def type_into(self, selector, text):
        self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        self.send("Input.insertText", {"text": text})

    def press_enter(self):
        for kind in ("keyDown", "keyUp"):
            self.send("Input.dispatchKeyEvent", {"type": kind, "key": "Enter", "code": "Enter",
                                                 "windowsVirtualKeyCode": 13, "text": "\r"})

    def text(self, selector="body"):
        return self.evaluate(f"(document.querySelector({json.dumps(selector)}) || {{}}).innerText || ''")

    def cookies(self):
        return self.send("Network.getCookies")["cookies"]

    def screenshot(self, path, full_page=True, max_height=2400):
        if full_page:
            content = self.evaluate("document.documentElement.scrollHeight")
            height = min(max(self.height, int(content)), max_height)
            self.send("Emulation.setDeviceMetricsOverride",
                      {"width": self.width, "height": height, "deviceScaleFactor": self.scale, "mobile": self.mobile})
            time.sleep(0.3)
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        if full_page:
            self.viewport(self.width, self.height, self.mobile, self.scale)
        with open(path, "wb") as out:
            out.write(base64.b64decode(data))
