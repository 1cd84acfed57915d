"""Following a device program's run on its serial line, line by line, each line once.

The rig waits on what the device prints, and every wait ends at the line that settles it:
the last awaited ``Send``/``Received`` line, or the program's end — a traceback, or the
REPL prompt that a returning or crashing program leaves behind — whichever comes first.
Counting lines as they complete keeps a wait over thousands of messages linear in the log.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from harness.checks.evidence import BROKER_CONNECTED, RECEIVED, SEND, TRACEBACK
from harness.device.device import REBOOT_SIGNS, REPL_PROMPT
from harness.device.serial_log import SerialLog
from harness.errors import ExpectTimeout, ProgramBootLooping, ProgramStopped

ERROR_PREFIX = "ERROR "  # the device_src contract's failure lines (README, console lines)
# After a traceback starts, the REPL prompt follows within milliseconds on a real board;
# this bounds the wait for the rest of the traceback when no prompt comes (a program that
# reboots itself, say).
_TRACEBACK_GRACE_S = 2.0
PROGRESS_EVERY_S = 10.0  # how often a long wait says how far the device has got
_TRACEBACK_KEEP = 40  # traceback lines kept; the last is the exception's
# A program that reboots this often, this fast, is looping: stop waiting for it instead
# of spinning until every timeout runs out.
ROM_BANNER_START = "ets "  # "ets Jun  8 2016 00:22:57", the ROM's first line at a reset
BOOT_LOOP_REBOOTS = 5
BOOT_LOOP_WINDOW_S = 10.0


class RunFollower:
    """What the device has printed since a position, counted as the lines complete."""

    def __init__(self, log: SerialLog, since: int) -> None:
        self._log = log
        self._cursor = log.cursor(since)
        self.connected = False
        self.sends = 0
        # Loop iterations completed: one starts at its Send line and ends at the Received
        # line its wait_msg() printed, or at the next Send line (a message not printed).
        self.completed = 0
        self._iteration_open = False
        # Harness CPU (this process: rig, serial reader, tap, broker, observer) when each
        # iteration was counted: the cost per message, and whether it stays flat.
        self.cpu_at_completed: list[float] = []
        self.received: list[str] = []  # payloads of the Received lines, in order
        self.errors: list[str] = []  # the program's own "ERROR ..." lines
        self.traceback: list[str] = []  # the first traceback's lines, once one starts
        self._traceback_at: float | None = None
        self._in_traceback = False
        self.ended = False  # the REPL prompt is back: the program no longer runs
        self.reboots: list[float] = []  # when each reboot after the first boot was seen
        self._booted = False  # the reset that starts the run prints one reboot sign
        self._last_output = ""  # the last line the program printed, before a reboot
        self.before_reboots: list[str] = []  # distinct last lines before the reboots

    @property
    def crashed(self) -> bool:
        return bool(self.traceback)

    @property
    def boot_looping(self) -> bool:
        recent = [t for t in self.reboots if t >= time.monotonic() - BOOT_LOOP_WINDOW_S]
        return len(recent) >= BOOT_LOOP_REBOOTS

    @property
    def stopped(self) -> bool:
        """The program will print nothing more useful: it is at the prompt, it crashed and
        the prompt did not follow within the grace period, or it keeps rebooting."""
        return self.ended or self.boot_looping or (
            self._traceback_at is not None
            and time.monotonic() - self._traceback_at > _TRACEBACK_GRACE_S)

    def stop_reason(self) -> str:
        """The run's end in words, for the evidence notes and failure messages."""
        if self.boot_looping:
            span = self.reboots[-1] - self.reboots[0]
            last = "; ".join(repr(line) for line in self.before_reboots[-3:]) or "nothing"
            return (f"the device is in a boot loop: it rebooted {len(self.reboots)} times in "
                    f"{span:.1f} s; last output before each reboot: {last}")
        if self.crashed:
            last = (self.traceback[-1] if len(self.traceback) > 1 and not self._in_traceback
                    else "(the exception line did not follow)")
            return f"the device program crashed: {last}"
        if self.errors:
            return f"the device program stopped after: {self.errors[-1]}"
        return "the device program ended (back at the REPL prompt)"

    def _take(self) -> None:
        for line in self._cursor.read():
            text = line.content
            if self._in_traceback:
                # "  File ..." lines, then the exception's own line, not indented.
                if len(self.traceback) < _TRACEBACK_KEEP:
                    self.traceback.append(text)
                else:  # a deep one: keep its start and its last line
                    self.traceback[-1] = text
                self._in_traceback = text.startswith((" ", "\t"))
                continue
            if any(sign in text for sign in REBOOT_SIGNS):
                self._note_reboot()
                continue
            if text.strip() and not text.startswith(ROM_BANNER_START):
                self._last_output = text.strip()
            if text.startswith(REPL_PROMPT):
                self.ended = True
            elif SEND.match(text):
                self.sends += 1
                if self._iteration_open:
                    self._complete()
                self._iteration_open = True
            elif match := RECEIVED.match(text):
                self.received.append(match["payload"])
                if self._iteration_open:
                    self._complete()
                self._iteration_open = False
            elif BROKER_CONNECTED.match(text):
                self.connected = True
            elif text.startswith(ERROR_PREFIX):
                self.errors.append(text)
            elif TRACEBACK.match(text) and self._traceback_at is None:
                self.traceback.append(text)
                self._traceback_at = time.monotonic()
                self._in_traceback = True
        partial = self._cursor.partial
        if partial is not None and partial.startswith(REPL_PROMPT):
            self.ended = True

    def _note_reboot(self) -> None:
        if not self._booted and not self._last_output:
            self._booted = True  # the reset that began the run
            return
        self._booted = True
        self.reboots.append(time.monotonic())
        last = self._last_output or "(nothing)"
        if last not in self.before_reboots:
            self.before_reboots.append(last)
        self._last_output = ""

    def _complete(self) -> None:
        self.completed += 1
        self.cpu_at_completed.append(time.process_time())

    def cost_metrics(self) -> dict[str, float]:
        """Harness CPU per message over the run's iterations, and the second half's cost
        against the first's (1.0: flat; a wait that rescans the log grows with it)."""
        cpu = self.cpu_at_completed
        if len(cpu) < 3:
            return {}
        middle = len(cpu) // 2
        first = (cpu[middle] - cpu[0]) / middle
        second = (cpu[-1] - cpu[middle]) / (len(cpu) - 1 - middle)
        metrics = {"harness_cpu_ms_per_message": (cpu[-1] - cpu[0]) / (len(cpu) - 1) * 1000}
        if len(cpu) >= 20 and first > 0:
            metrics["harness_cpu_growth"] = second / first
        return metrics

    def until(self, done: Callable[[RunFollower], bool], timeout: float, what: str,
              progress: Callable[[RunFollower], None] | None = None) -> None:
        """Wait until ``done(self)``; raise :class:`ProgramStopped` as soon as the program
        has stopped without it, :class:`ExpectTimeout` when ``timeout`` runs out."""
        deadline = time.monotonic() + timeout
        reported = time.monotonic()
        while True:
            self._take()
            if done(self):
                return
            if progress is not None and time.monotonic() - reported >= PROGRESS_EVERY_S:
                reported = time.monotonic()
                progress(self)
            if self.stopped:
                reason = self.stop_reason()
                if self.boot_looping:
                    raise ProgramBootLooping(f"{reason}, before {what}", loop=reason)
                raise ProgramStopped(f"{reason}, before {what}")
            remaining = deadline - time.monotonic()
            if self._traceback_at is not None:  # wake up for the grace period's end
                remaining = min(remaining, self._traceback_at + _TRACEBACK_GRACE_S
                                - time.monotonic() + 0.01)
            if remaining <= 0 and time.monotonic() >= deadline:
                raise ExpectTimeout(
                    f"timed out after {timeout:g} s waiting for {what} on the serial line; "
                    f"last lines:\n{self._log.tail()}")
            self._cursor.wait(max(0.0, remaining))

    def until_stopped(self, timeout: float) -> bool:
        """Wait for the program to stop (a refused device prints its error and returns
        to the REPL); False if it still runs after ``timeout``."""
        try:
            self.until(lambda follower: False, timeout, "the program to stop")
        except ProgramStopped:
            return True
        except ExpectTimeout:
            return False
        return True  # pragma: no cover - done() never holds
