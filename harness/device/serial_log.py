"""The serial log: every byte a device printed, timestamped, searchable expect-style.

One reader thread appends; tests wait on it with :meth:`SerialLog.expect`, which has a
deadline and, when it runs out, says what was awaited and quotes the log tail.

The log is kept as lines, and every wait reads them through a :class:`LogCursor` that
hands each line out once: a wait over an hour of output costs time in proportion to the
output, not to its square. The lock is held only to copy new lines out; patterns are
matched outside it, so the reader thread never waits for a search.
"""

from __future__ import annotations

import bisect
import codecs
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ExpectTimeout
from harness.redact import redact

# An unfinished line is matched again on every new chunk (a prompt such as ">>> " never
# ends with a newline); past this length it waits for its newline, so a flood without
# line breaks cannot make every chunk cost the whole line.
_PARTIAL_MATCH_LIMIT = 4096


@dataclass(frozen=True)
class LogLine:
    """One line of device output; ``time`` is when its first byte arrived (epoch seconds)."""

    time: float
    text: str

    @property
    def content(self) -> str:
        """The line without the noise a serial line glues to its start: a boot's or a baud
        glitch's undecodable bytes, NULs, terminal escapes. The device's own lines are
        recognised by what they say, not by their first byte."""
        return _LEADING_NOISE.sub("", self.text, count=1)


# Control characters (not tab), the decoder's U+FFFD for bytes that are not UTF-8, and
# ANSI escape sequences, at the start of a line.
_LEADING_NOISE = re.compile(r"^(?:\x1b\[[0-9;?]*[A-Za-z]|[\x00-\x08\x0b-\x1f\x7f\ufffd])+")


class SerialLog:
    """Thread-safe, append-only record of a serial line's output.

    Positions (``since``, :meth:`mark`, :meth:`position`) are character offsets in the
    decoded text, with ``"\\r\\n"`` folded to ``"\\n"``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._chunks: list[tuple[float, bytes]] = []
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending_cr = False
        # Complete lines (without their "\n"), the offset each starts at, and when its
        # first character arrived.
        self._texts: list[str] = []
        self._starts: list[int] = []
        self._stamps: list[float] = []
        # The unfinished last line; its stamp is None until its first character arrives,
        # so a line is stamped when it starts, not when the previous line ended.
        self._partial = ""
        self._partial_start = 0
        self._partial_stamp: float | None = None
        self._appends = 0  # bumped on every append (and wake): waiters look again
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
        with self._cond:
            self._chunks.append((now, data))
            text = self._decoder.decode(data)  # a character split across chunks stays whole
            if not text:
                return
            if self._pending_cr and text.startswith("\n"):
                text = text[1:]
            self._pending_cr = text.endswith("\r")
            text = text.replace("\r\n", "\n").replace("\r", "\n")
            if not text:
                return
            pieces = text.split("\n")
            stamp = self._partial_stamp if self._partial_stamp is not None else now
            self._partial += pieces[0]
            for piece in pieces[1:]:
                # The unfinished line is complete; the next one starts after its "\n".
                self._texts.append(self._partial)
                self._starts.append(self._partial_start)
                self._stamps.append(stamp)
                self._partial_start += len(self._partial) + 1
                self._partial = piece
                stamp = now
            # The new unfinished line is stamped once its first character is here.
            self._partial_stamp = stamp if self._partial else None
            self._appends += 1
            self._cond.notify_all()

    def wake(self) -> None:
        """Wake every waiting cursor although nothing arrived: something other than the
        device (the wire) has settled what they wait for."""
        with self._cond:
            self._appends += 1
            self._cond.notify_all()

    def mark(self, note: str) -> int:
        """Insert a harness annotation line (e.g. ``-- hard reset --``); returns the position
        after it, so a later :meth:`expect` can search only what came afterwards."""
        self.append(f"\n[harness] {note}\n".encode())
        return self.position()

    # --- reading ----------------------------------------------------------------
    def position(self) -> int:
        with self._cond:
            return self._partial_start + len(self._partial)

    def text(self, since: int = 0) -> str:
        with self._cond:
            first = max(0, bisect.bisect_right(self._starts, since) - 1)
            texts = self._texts[first:]
            offset = self._starts[first] if self._starts else self._partial_start
            partial = self._partial
        joined = "\n".join([*texts, partial]) if texts else partial
        return joined[max(0, since - offset):]

    def raw(self) -> bytes:
        with self._cond:
            return b"".join(data for _, data in self._chunks)

    def lines(self, since: int = 0, until: int | None = None) -> list[LogLine]:
        """Complete and partial lines starting at or after character ``since`` (and
        before ``until``)."""
        with self._cond:
            first = bisect.bisect_left(self._starts, since)
            last = len(self._starts) if until is None else bisect.bisect_left(self._starts, until)
            result = [LogLine(stamp, text) for stamp, text in
                      zip(self._stamps[first:last], self._texts[first:last], strict=True)]
            if (self._partial_stamp is not None and self._partial_start >= since
                    and (until is None or self._partial_start < until)):
                result.append(LogLine(self._partial_stamp, self._partial))
        return result

    def tail(self, count: int = 15) -> str:
        with self._cond:
            lines = self._texts[-count:]
            if self._partial_stamp is not None:
                lines = [*lines, self._partial][-count:]
        return redact("\n".join(lines), self._secrets)

    def cursor(self, since: int = 0) -> LogCursor:
        """A reader of the lines after ``since`` that hands out each line once."""
        return LogCursor(self, since)

    def expect(
        self,
        pattern: str | re.Pattern[str],
        timeout: float,
        *,
        since: int = 0,
        what: str | None = None,
    ) -> re.Match[str]:
        """Wait until ``pattern`` (a regex) matches a line of output after position
        ``since``; the match is against that one line (``^``/``$`` are its ends), and the
        unfinished last line counts too, as it stands."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        cursor = self.cursor(since)
        while True:
            for line in cursor.read():
                match = regex.search(line.text)
                if match is not None:
                    return match
            if cursor.partial is not None and len(cursor.partial) <= _PARTIAL_MATCH_LIMIT:
                match = cursor.search_partial(regex)
                if match is not None:
                    return match
            if not cursor.wait(deadline - time.monotonic()):
                break
        awaited = what or f"/{regex.pattern}/"
        raise ExpectTimeout(
            f"timed out after {timeout:g} s waiting for {awaited} on the serial line; "
            f"last lines:\n{self.tail()}"
        )

    def expect_exact(self, text: str, timeout: float, *, since: int = 0) -> re.Match[str]:
        return self.expect(re.escape(text), timeout, since=since, what=repr(text))

    def save(self, path: Path, since: int = 0) -> Path:
        """Write the log from character ``since`` on (one run's part: its
        :meth:`position` before the run), secrets redacted, one timestamp per line."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as out:
            for line in self.lines(since):
                stamp = time.strftime("%H:%M:%S", time.localtime(line.time))
                millis = int((line.time % 1) * 1000)
                out.write(f"{stamp}.{millis:03d} {redact(line.text, self._secrets)}\n")
        return path


class LogCursor:
    """Reads a :class:`SerialLog` from a position on, one line at a time, each line once.

    :meth:`read` returns the lines completed since the last call (copied out under the
    log's lock, nothing more); :attr:`partial` is the unfinished last line as of that
    call; :meth:`wait` blocks until more output arrives."""

    def __init__(self, log: SerialLog, since: int) -> None:
        self._log = log
        self._since = since
        self._next = -1  # index of the next complete line to hand out; -1: not located
        self._seen = -1  # the log's append count at the last read
        self.partial: str | None = None
        self._partial_searched: tuple[int, str] | None = None

    def read(self) -> list[LogLine]:
        log = self._log
        with log._cond:
            if self._next < 0:
                # The first line handed out is the one ``since`` falls in, cut at ``since``.
                self._next = max(0, bisect.bisect_right(log._starts, self._since) - 1)
            first = self._next
            texts = log._texts[first:]
            stamps = log._stamps[first:]
            start = log._starts[first] if texts else log._partial_start
            self._seen = log._appends
            self.partial = (log._partial[max(0, self._since - log._partial_start):]
                            if log._partial_stamp is not None
                            and log._partial_start + len(log._partial) > self._since else None)
        self._next = first + len(texts)
        lines = [LogLine(stamp, text) for stamp, text in zip(stamps, texts, strict=True)]
        if lines and start < self._since:
            # Only the part of the first line after ``since``; nothing if it ended before.
            cut = self._since - start
            lines[0] = LogLine(lines[0].time, lines[0].text[cut:])
            if cut >= len(texts[0]):
                lines.pop(0)
        return lines

    def search_partial(self, regex: re.Pattern[str]) -> re.Match[str] | None:
        """Match the unfinished line, but only once per distinct content and pattern."""
        if self.partial is None:
            return None
        key = (id(regex), self.partial)
        if self._partial_searched == key:
            return None
        self._partial_searched = key
        return regex.search(self.partial)

    def wait(self, timeout: float) -> bool:
        """Until output arrives after the last :meth:`read` (True), or ``timeout`` (False)."""
        log = self._log
        deadline = time.monotonic() + timeout
        with log._cond:
            while log._appends == self._seen:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                log._cond.wait(remaining)
        return True
