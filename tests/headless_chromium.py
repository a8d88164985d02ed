"""A headless Debian ``chromium`` driven over the DevTools protocol (one page).

Shared by the report tests: started on 127.0.0.1 with a fresh profile, no
background networking, and stopped (by its pid) when the block ends.
"""

import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request

from conftest import require_or_skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DevTools:
    """Calls and the events seen while waiting for their answers."""

    def __init__(self, ws_url):
        import websocket

        self.ws = websocket.create_connection(ws_url, timeout=60, suppress_origin=True)
        self.next_id = 0
        self.events = []

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                assert "error" not in msg, msg
                return msg.get("result", {})
            self.events.append(msg)

    def evaluate(self, expression):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def wait_for(self, method, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(e.get("method") == method for e in self.events):
                return
            self.events.append(json.loads(self.ws.recv()))
        raise AssertionError(f"no {method} within {timeout} s")

    def settle(self, seconds):
        """Collect events for ``seconds`` (late fetches, timers), answering nothing."""
        self.ws.settimeout(0.2)
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline:
                try:
                    self.events.append(json.loads(self.ws.recv()))
                except Exception:  # noqa: BLE001 - websocket's timeout: nothing arrived
                    pass
        finally:
            self.ws.settimeout(60)

    def requested_urls(self):
        return [
            e["params"]["request"]["url"]
            for e in self.events
            if e.get("method") == "Network.requestWillBeSent"
        ]


@contextlib.contextmanager
def chromium():
    require_or_skip(
        shutil.which("chromium") is not None,
        "chromium is not installed (apt-get install -y chromium; .ci/run does)",
    )
    port = free_port()
    # Chromium also makes scratch directories of its own under TMPDIR
    # (org.chromium.Chromium.*) and leaves them behind: they go in our
    # directory, removed with the profile.
    root = tempfile.mkdtemp(prefix="alm_beam_chromium_")
    try:
        profile, scratch = os.path.join(root, "profile"), os.path.join(root, "tmp")
        os.mkdir(profile)
        os.mkdir(scratch)
        proc = subprocess.Popen(
            [
                "chromium",
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--mute-audio",
                f"--user-data-dir={profile}",
                f"--remote-debugging-port={port}",
                "--remote-allow-origins=*",
                "--window-size=1280,900",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "TMPDIR": scratch},
        )
        try:
            deadline = time.monotonic() + 60
            pages = None
            while time.monotonic() < deadline:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=5) as r:
                        pages = [t for t in json.load(r) if t.get("type") == "page"]
                    if pages:
                        break
                except OSError:
                    time.sleep(0.2)
            assert pages, "chromium's DevTools endpoint did not come up"
            tools = DevTools(pages[0]["webSocketDebuggerUrl"])
            try:
                yield tools
            finally:
                tools.ws.close()
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    finally:
        _remove_tree(root)


def _remove_tree(path: str, timeout: float = 10.0) -> None:
    """Remove ``path``, again until it is gone: Chromium's helper processes
    outlive the browser process by a moment and may still write into it."""
    deadline = time.monotonic() + timeout
    while True:
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.exists(path) or time.monotonic() > deadline:
            return
        time.sleep(0.05)
