"""Deadlines: every wait in the harness has one.

A :class:`Deadline` is created once for a whole multi-step wait, so retries and
sub-steps share the budget instead of each restarting its own timeout.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from harness.errors import DeadlineExceeded

T = TypeVar("T")


class Deadline:
    """A point in monotonic time by which ``what`` must have happened."""

    def __init__(self, seconds: float, what: str) -> None:
        if seconds < 0:
            raise ValueError(f"deadline for {what!r} must be >= 0 s, got {seconds}")
        self.seconds = seconds
        self.what = what
        self._start = time.monotonic()
        self._end = self._start + seconds

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self._end - time.monotonic())

    def elapsed(self) -> float:
        return time.monotonic() - self._start

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self._end

    def fail(self, seen: str = "") -> DeadlineExceeded:
        """The error to raise when the deadline is missed; ``seen`` is what was observed."""
        detail = f"; last seen: {seen}" if seen else ""
        return DeadlineExceeded(
            f"timed out after {self.seconds:g} s waiting for {self.what}{detail}")

    def poll(
        self,
        probe: Callable[[], T | None],
        *,
        interval: float = 0.02,
        seen: Callable[[], str] | None = None,
    ) -> T:
        """Call ``probe`` until it returns something other than None, or fail at the deadline."""
        while True:
            result = probe()
            if result is not None:
                return result
            if self.expired:
                raise self.fail(seen() if seen else "")
            time.sleep(min(interval, self.remaining()))
