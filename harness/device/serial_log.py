"""The serial log: every byte a device printed, timestamped, searchable expect-style.

One reader thread appends; tests wait on it with :meth:`SerialLog.expect`, which has a
deadline and, when it runs out, says what was awaited and quotes the log tail.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ExpectTimeout
from harness.redact import redact


@dataclass(frozen=True)
class LogLine:
    """One line of device output; ``time`` is when its first byte arrived (epoch seconds)."""

    time: float
    text: str


class SerialLog:
    """Thread-safe, append-only record of a serial line's output."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._chunks: list[tuple[float, bytes]] = []
        self._text = ""  # decoded view of everything so far, "\r\n" folded to "\n"
        # (offset, time its first character arrived); the time is None until then, so a
        # line is stamped when it starts, not when the previous line ended.
        self._line_starts: list[tuple[int, float | None]] = [(0, None)]
        self._pending_cr = False
        self._cond = threading.Condition()
        self._secrets: list[str] = [s for s in secrets if s]

    # --- writing ----------------------------------------------------------------
    def add_secret(self, secret: str | None) -> None:
        """Never write ``secret`` to disk or into an error message."""
        if secret and secret not in self._secrets:
            self._secrets.append(secret)

    def append(self, data: bytes) -> None:
        if not data:
            return
        now = time.time()
        text = data.decode("utf-8", errors="replace")
        with self._cond:
            self._chunks.append((now, data))
            if self._pending_cr and text.startswith("\n"):
                text = text[1:]
            self._pending_cr = text.endswith("\r")
            text = text.replace("\r\n", "\n").replace("\r", "\n")
            base = len(self._text)
            self._text += text
            last_offset, last_time = self._line_starts[-1]
            if last_time is None and len(self._text) > last_offset:
                self._line_starts[-1] = (last_offset, now)
            for index, char in enumerate(text):
                if char == "\n":
                    offset = base + index + 1
                    self._line_starts.append((offset, now if offset < len(self._text) else None))
            self._cond.notify_all()

    def mark(self, note: str) -> int:
        """Insert a harness annotation line (e.g. ``-- hard reset --``); returns the position
        after it, so a later :meth:`expect` can search only what came afterwards."""
        self.append(f"\n[harness] {note}\n".encode())
        return self.position()

    # --- reading ----------------------------------------------------------------
    def position(self) -> int:
        with self._cond:
            return len(self._text)

    def text(self, since: int = 0) -> str:
        with self._cond:
            return self._text[since:]

    def raw(self) -> bytes:
        with self._cond:
            return b"".join(data for _, data in self._chunks)

    def lines(self, since: int = 0, until: int | None = None) -> list[LogLine]:
        """Complete and partial lines starting at or after character ``since`` (and
        before ``until``)."""
        with self._cond:
            text, starts = self._text, list(self._line_starts)
        result: list[LogLine] = []
        for number, (start, stamp) in enumerate(starts):
            end = starts[number + 1][0] - 1 if number + 1 < len(starts) else len(text)
            if start >= since and stamp is not None and (until is None or start < until):
                result.append(LogLine(stamp, text[start:end]))
        return result

    def tail(self, count: int = 15) -> str:
        lines = [line.text for line in self.lines()][-count:]
        return redact("\n".join(lines), self._secrets)

    def expect(
        self,
        pattern: str | re.Pattern[str],
        timeout: float,
        *,
        since: int = 0,
        what: str | None = None,
    ) -> re.Match[str]:
        """Wait until ``pattern`` (a regex) matches output after position ``since``."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                match = regex.search(self._text, since)
                if match is not None:
                    return match
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
        awaited = what or f"/{regex.pattern}/"
        raise ExpectTimeout(
            f"timed out after {timeout:g} s waiting for {awaited} on the serial line; "
            f"last lines:\n{self.tail()}"
        )

    def expect_exact(self, text: str, timeout: float, *, since: int = 0) -> re.Match[str]:
        return self.expect(re.escape(text), timeout, since=since, what=repr(text))

    def save(self, path: Path) -> Path:
        """Write the log, secrets redacted, as text with one timestamp per line."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as out:
            for line in self.lines():
                stamp = time.strftime("%H:%M:%S", time.localtime(line.time))
                millis = int((line.time % 1) * 1000)
                out.write(f"{stamp}.{millis:03d} {redact(line.text, self._secrets)}\n")
        return path
