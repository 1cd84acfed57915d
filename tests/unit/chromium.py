"""Headless Chromium over the DevTools protocol on a pipe (``--remote-debugging-pipe``).

A small client for the report's browser test and the docs screenshots: open a page, record
every network request, console error and uncaught exception, evaluate JS, take a
screenshot. Chromium reads commands on fd 3 and writes replies on fd 4, each a JSON object
ended by a NUL byte. Debian's package is ``chromium``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.deadline import Deadline

# Without these, Chromium phones home on start (updates, sync, field trials), which on a
# closed network shows up as refused connections; root also needs --no-sandbox.
QUIET_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--disable-default-apps", "--disable-extensions", "--mute-audio",
)
COMMAND_TIMEOUT_S = 30.0


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class ChromiumError(RuntimeError):
    pass


@dataclass
class PageLog:
    """What a page did while loaded: requests it made and errors it raised."""

    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    log_errors: list[str] = field(default_factory=list)

    def network_requests(self) -> list[str]:
        """Requests that would leave the machine (anything but the file itself and data:)."""
        return [u for u in self.requests if not u.startswith(("file:", "data:", "about:"))]

    def errors(self) -> list[str]:
        return self.console_errors + self.exceptions + self.log_errors


class Chromium:
    """One headless browser process; use as a context manager."""

    def __init__(self, binary: str, *, width: int = 1280, height: int = 900,
                 profile: Path | None = None) -> None:
        """``profile``: a fresh folder for the browser profile (one under pytest's tmp_path
        survives even a killed run's clean-up); by default a temporary one."""
        self.binary = binary
        self.width, self.height = width, height
        self._profile = str(profile) if profile else tempfile.mkdtemp(prefix="hil-chromium-")
        self._next_id = 0
        self._replies: dict[int, queue.Queue[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._events: list[dict[str, Any]] = []
        self._process: subprocess.Popen[bytes] | None = None
        self._session = ""

    # --- life ------------------------------------------------------------------------
    def __enter__(self) -> Chromium:
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def wire_fds() -> None:  # runs in the child, before exec
            a, b = os.dup(to_child_r), os.dup(from_child_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        command = [self.binary, *QUIET_FLAGS, f"--user-data-dir={self._profile}",
                   f"--window-size={self.width},{self.height}", "--remote-debugging-pipe",
                   "about:blank"]
        self._process = subprocess.Popen(command, preexec_fn=wire_fds, pass_fds=(3, 4),
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                         start_new_session=True)
        os.close(to_child_r)
        os.close(from_child_w)
        threading.Thread(target=self._read, daemon=True).start()
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self._session = self.call("Target.attachToTarget",
                                  {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride", {
            "width": self.width, "height": self.height, "deviceScaleFactor": 1,
            "mobile": False})
        return self

    def __exit__(self, *exc: object) -> None:
        process = self._process
        if process is not None:
            with contextlib.suppress(Exception):
                self.call("Browser.close", session=False, timeout=5.0)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, 9)
                process.wait(timeout=10)
        for fd in (self._to_child, self._from_child):
            with contextlib.suppress(OSError):
                os.close(fd)
        shutil.rmtree(self._profile, ignore_errors=True)

    # --- protocol --------------------------------------------------------------------
    def call(self, method: str, params: dict[str, Any] | None = None, *,
             session: bool = True, timeout: float = COMMAND_TIMEOUT_S) -> dict[str, Any]:
        with self._lock:
            self._next_id += 1
            message_id = self._next_id
            box: queue.Queue[dict[str, Any]] = queue.Queue()
            self._replies[message_id] = box
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
        if session and self._session:
            message["sessionId"] = self._session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        deadline = Deadline(timeout, f"Chromium to answer {method}")
        try:
            reply = box.get(timeout=deadline.remaining())
        except queue.Empty:
            raise deadline.fail("no reply") from None
        if "error" in reply:
            raise ChromiumError(f"{method}: {reply['error']}")
        return dict(reply.get("result", {}))

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = os.read(self._from_child, 1 << 16)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while b"\0" in buffer:
                raw, buffer = buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "id" in message:
                    with self._lock:
                        box = self._replies.pop(message["id"], None)
                    if box is not None:
                        box.put(message)
                else:
                    with self._lock:
                        self._events.append(message)

    def _take_events(self) -> list[dict[str, Any]]:
        with self._lock:
            events, self._events = self._events, []
        return events

    # --- pages -----------------------------------------------------------------------
    def open(self, path: Path, *, timeout: float = 30.0) -> PageLog:
        """Load ``path`` and wait for its load event; returns what it did meanwhile."""
        self._take_events()
        self.call("Page.navigate", {"url": path.resolve().as_uri()})
        deadline = Deadline(timeout, f"{path.name} to load in Chromium")
        log = PageLog()
        loaded = False
        while True:
            for event in self._take_events():
                loaded = loaded or event.get("method") == "Page.loadEventFired"
                _note(log, event)
            if loaded:
                break
            if deadline.expired:
                raise deadline.fail("no load event")
            time.sleep(0.05)
        self.evaluate("new Promise(r => setTimeout(r, 100))")  # let late errors arrive
        for event in self._take_events():
            _note(log, event)
        return log

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True})
        if "exceptionDetails" in result:
            raise ChromiumError(f"JS error: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    def screenshot(self, out: Path, *, full_page: bool = True,
                   clip: tuple[int, int] | None = None) -> Path:
        """A PNG of the page (or of the rows ``clip`` = (top, height) of it)."""
        if full_page or clip:
            height = int(self.evaluate("document.documentElement.scrollHeight"))
            self.call("Emulation.setDeviceMetricsOverride", {
                "width": self.width, "height": height, "deviceScaleFactor": 1,
                "mobile": False})
        params: dict[str, Any] = {"format": "png"}
        if clip:
            params["clip"] = {"x": 0, "y": clip[0], "width": self.width, "height": clip[1],
                              "scale": 1}
        data = self.call("Page.captureScreenshot", params)["data"]
        self.call("Emulation.setDeviceMetricsOverride", {
            "width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False})
        out.write_bytes(base64.b64decode(data))
        return out


def _note(log: PageLog, event: dict[str, Any]) -> None:
    method, params = event.get("method"), event.get("params", {})
    if method == "Network.requestWillBeSent":
        log.requests.append(str(params.get("request", {}).get("url", "")))
    elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
        log.console_errors.append(" ".join(str(a.get("value", a.get("description", "")))
                                           for a in params.get("args", [])))
    elif method == "Runtime.exceptionThrown":
        details = params.get("exceptionDetails", {})
        log.exceptions.append(str(details.get("exception", {}).get("description")
                                  or details.get("text")))
    elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
        entry = params["entry"]
        log.log_errors.append(f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}")


@contextlib.contextmanager
def browser(width: int = 1280, height: int = 900) -> Iterator[Chromium]:
    binary = find_chromium()
    if binary is None:
        raise ChromiumError("no chromium on PATH; install Debian's chromium package")
    with Chromium(binary, width=width, height=height) as chromium:
        yield chromium
