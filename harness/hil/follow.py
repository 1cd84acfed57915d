"""Following a device program's run on its serial line, line by line, each line once.

The rig waits on what the device prints, and every wait ends at the line that settles it:
the last awaited ``Send``/``Received`` line, or the program's end — a traceback, or the
REPL prompt that a returning or crashing program leaves behind — whichever comes first.
Counting lines as they complete keeps a wait over thousands of messages linear in the log.
"""

from __future__ import annotations

import itertools
import statistics
import threading
import time
from collections.abc import Callable

from harness.console import (
    BROKER_CONNECTED,
    ERROR_PREFIX,
    MEMORY_FREE,
    RECEIVED,
    SEND,
    TRACEBACK,
)
from harness.device.device import REBOOT_SIGNS, REPL_PROMPT
from harness.device.serial_log import SerialLog
from harness.errors import ExpectTimeout, ProgramBootLooping, ProgramStopped, RunSettled

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

    def __init__(self, log: SerialLog, since: int, *, heap_every: int = 0) -> None:
        self._log = log
        self._cursor = log.cursor(since)
        self.connected = False
        self.sends = 0
        # Loop iterations completed: one starts at its Send line and ends at the Received
        # line its wait_msg() printed, or at the next Send line (a message not printed).
        # A device told to print its heap every ``heap_every`` messages ends those
        # iterations with that line instead (stopping it mid-iteration would cut it off).
        self._heap_every = heap_every
        self._heap_line_due = False
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
        self.settled: str | None = None  # why the wire settled the run, once it has
        # (when, verdict): at monotonic ``when`` the run settles with verdict(), unless None
        self._due: list[tuple[float, Callable[[], str | None]]] = []
        self._due_lock = threading.Lock()

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

    def _take(self) -> int:
        """Count the lines that arrived since the last call; how many there were."""
        lines = self._cursor.read()
        for line in lines:
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
                if self._iteration_open or self._heap_line_due:
                    self._complete()
                self._iteration_open, self._heap_line_due = True, False
            elif match := RECEIVED.match(text):
                self.received.append(match["payload"])
                if self._iteration_open:
                    if self._heap_every and self.sends % self._heap_every == 0:
                        self._heap_line_due = True
                    else:
                        self._complete()
                self._iteration_open = False
            elif self._heap_line_due and MEMORY_FREE.match(text):
                self._heap_line_due = False
                self._complete()
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
        return len(lines)

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

    def settle(self, reason: str) -> None:
        """End the current and every later wait (:class:`RunSettled`): evidence from the
        wire settles the run. Safe to call from another thread (the tap's)."""
        if self.settled is None:
            self.settled = reason
            self._log.wake()

    def settle_at(self, when: float, verdict: Callable[[], str | None]) -> None:
        """At monotonic ``when``, settle the run with ``verdict()`` unless it says None:
        evidence that is complete once a bound has passed with nothing on the wire. Safe
        to call from another thread (the tap's)."""
        with self._due_lock:
            self._due.append((when, verdict))
        self._log.wake()  # a wait in progress recomputes when to wake

    def _settle_due(self, now: float) -> float | None:
        """Judge the verdicts that are due; when the next one falls due."""
        with self._due_lock:
            due = [entry for entry in self._due if entry[0] <= now]
            self._due = [entry for entry in self._due if entry[0] > now]
            following = min((when for when, _ in self._due), default=None)
        for _, verdict in due:
            reason = verdict()
            if reason is not None:
                self.settle(reason)
        return following

    def _complete(self) -> None:
        self.completed += 1
        self.cpu_at_completed.append(time.process_time())

    def cost_metrics(self) -> dict[str, float]:
        """Harness CPU per message over the run's iterations, and the later half's cost
        against the earlier half's (1.0: flat; a wait that rescans the log grows with the
        run: about 3x for a cost linear in the log). Each half is the median of its five
        tenths of the run, so a burst of load on the machine in one stretch does not
        read as growth."""
        cpu = self.cpu_at_completed
        if len(cpu) < 3:
            return {}
        metrics = {"harness_cpu_ms_per_message": (cpu[-1] - cpu[0]) / (len(cpu) - 1) * 1000}
        if len(cpu) >= 20:
            bounds = [round(i * (len(cpu) - 1) / 10) for i in range(11)]
            tenths = [(cpu[b] - cpu[a]) / (b - a) for a, b in itertools.pairwise(bounds)]
            earlier, later = statistics.median(tenths[:5]), statistics.median(tenths[5:])
            if earlier > 0:
                metrics["harness_cpu_growth"] = later / earlier
        return metrics

    def until(self, done: Callable[[RunFollower], bool], timeout: float, what: str,
              progress: Callable[[RunFollower], None] | None = None,
              idle: float | None = None) -> None:
        """Wait until ``done(self)``; raise :class:`ProgramStopped` as soon as the program
        has stopped without it, :class:`ExpectTimeout` when ``timeout`` runs out or, with
        ``idle``, when the device has printed no line for that long (its loop stalled)."""
        started = time.monotonic()
        deadline = started + timeout
        reported = last_line = started
        while True:
            if self._take():
                last_line = time.monotonic()
            if done(self):
                return
            next_due = self._settle_due(time.monotonic())
            if self.settled is not None:
                raise RunSettled(f"{self.settled}, before {what}")
            now = time.monotonic()
            if progress is not None and now - reported >= PROGRESS_EVERY_S:
                reported = now
                progress(self)
            if self.stopped:
                reason = self.stop_reason()
                if self.boot_looping:
                    raise ProgramBootLooping(f"{reason}, before {what}", loop=reason)
                raise ProgramStopped(f"{reason}, before {what}")
            if now >= deadline:
                raise ExpectTimeout(
                    f"timed out after {timeout:g} s waiting for {what} on the serial line; "
                    f"last lines:\n{self._log.tail()}")
            if idle is not None and now - last_line >= idle:
                raise ExpectTimeout(
                    f"the device printed nothing for {now - last_line:.1f} s while the run "
                    f"waited for {what} (one loop iteration takes at most {idle:g} s); last "
                    f"lines:\n{self._log.tail()}")
            wake = deadline if idle is None else min(deadline, last_line + idle)
            if self._traceback_at is not None:  # wake up for the grace period's end
                wake = min(wake, self._traceback_at + _TRACEBACK_GRACE_S + 0.01)
            if next_due is not None:
                wake = min(wake, next_due)
            self._cursor.wait(max(0.0, wake - now))

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
