"""Faults on cue: :class:`FaultInjector` starts and ends a fault where it acts (the tap,
the broker, the emulated access point) and records each start and end in the tap's trace;
:class:`FaultSchedule` fires a run's faults when their triggers say (a time, the nth echo,
the nth packet of a type) and ends each after its duration.

Everything that acts runs on the schedule's own thread: a trigger seen on the tap's loop
thread only queues the start, so the tap is never asked to wait on itself.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from harness.broker.tap_records import TapRecord
from harness.checks.evidence import payload_counter
from harness.errors import HarnessError
from harness.faults.model import (
    END,
    START,
    AfterEchoes,
    AtTime,
    Fault,
    FaultEvent,
    FaultKind,
    OnPacket,
    Site,
)
from harness.wire import PacketType, RecordKind, WireDirection


class FaultNotApplicable(HarnessError):
    """The fault cannot act on this rig (e.g. Wi-Fi faults on a real board)."""


@dataclass
class _Started:
    fault: Fault
    undo: Callable[[], None]
    ended: bool = False


class FaultInjector:
    """Acts on ``tap`` (required: it is also the recorder), ``broker`` (a LocalBroker for
    restarts) and ``board`` (a device backend that ``controls_wifi``, for Wi-Fi faults:
    anything with ``set_link(down=, ip=)``). ``observer`` (anything with ``wait_ready()``):
    the harness's witness on the broker, let back before the device after a restart."""

    def __init__(self, tap: Any, broker: Any = None, board: Any = None,
                 wifi_ip: str = "", observer: Any = None) -> None:
        self.tap = tap
        self.broker = broker
        self.board = board
        self.observer = observer
        self.wifi_ip = wifi_ip
        self.events: list[FaultEvent] = []
        self._lock = threading.Lock()

    def check(self, faults: Iterable[Fault]) -> None:
        """Raise :class:`FaultNotApplicable` for a fault this rig cannot produce."""
        for fault in faults:
            if fault.site is Site.ACCESS_POINT and not getattr(self.board, "controls_wifi",
                                                               False):
                raise FaultNotApplicable(
                    f"{fault.kind} needs the emulated access point; a real board's Wi-Fi is "
                    "not the harness's to drop")
            if fault.site is Site.BROKER and not hasattr(self.broker, "go_down"):
                raise FaultNotApplicable(
                    f"{fault.kind} needs a broker the harness runs (amqtt or mosquitto), not "
                    "an external one")

    def start(self, fault: Fault, why: str = "") -> _Started:
        """Start ``fault`` now and record it; the result's ``undo`` ends it."""
        self.check([fault])
        wall, mono = time.time(), time.monotonic()
        undo = self._act(fault)
        self._record(FaultEvent(wall, mono, START, fault, why))
        return _Started(fault, undo)

    def end(self, started: _Started, why: str = "") -> None:
        if started.ended:
            return
        started.ended = True
        wall, mono = time.time(), time.monotonic()
        try:
            started.undo()
        finally:
            self._record(FaultEvent(wall, mono, END, started.fault, why))

    def _record(self, event: FaultEvent) -> None:
        with self._lock:
            self.events.append(event)
        with contextlib.suppress(HarnessError):  # a stopped tap cannot record any more
            self.tap.record_fault(event)

    def _act(self, fault: Fault) -> Callable[[], None]:
        if fault.site is Site.TAP:
            handle = self.tap.apply_fault(fault)
            return lambda: self.tap.end_fault(handle)
        if fault.site is Site.BROKER:
            broker, observer = self.broker, self.observer
            # While the broker is away nothing listens at its address (the tap refuses, as
            # the broker's own port would). Once it is back, the device is let through only
            # after the observer has reconnected and resubscribed: otherwise a device quicker
            # than paho publishes its first messages before the witness can see them.
            gate = self.tap.apply_fault(Fault(FaultKind.NO_LISTENER, fault.trigger,
                                              fault.duration_s))
            broker.go_down(keep_state=fault.keep_state)

            def back() -> None:
                try:
                    broker.come_back()
                    if observer is not None:
                        observer.wait_ready()
                finally:
                    self.tap.end_fault(gate)
            return back
        board = self.board
        new_ip = fault.new_ip if fault.kind is FaultKind.WIFI_NEW_IP else None
        board.set_link(down=True, ip=new_ip)
        return lambda: board.set_link(down=False, ip=new_ip)


def is_echo(record: TapRecord, topic: str | None = None) -> bool:
    """A PUBLISH delivering one of the device's own ``{"msg": n}`` payloads back to it; with
    ``topic``, only on the run's own topic (a message queued for an earlier session of the
    same client id, on an earlier run's topic, is not this run's echo)."""
    if not record.is_packet(PacketType.PUBLISH, WireDirection.BROKER_TO_CLIENT):
        return False
    if topic is not None and record.fields.get("topic") != topic:
        return False
    payload = record.fields.get("payload")
    text = bytes(payload).decode("utf-8", "replace") if isinstance(payload, bytes | bytearray) \
        else str(payload)
    return payload_counter(text) is not None


class FaultSchedule:
    """Runs ``faults`` through ``injector`` from :meth:`begin` until :meth:`close`;
    echoes (for :class:`AfterEchoes`) count on ``topic`` only, when given."""

    def __init__(self, injector: FaultInjector, faults: Iterable[Fault],
                 topic: str | None = None) -> None:
        self.injector = injector
        self.faults = tuple(faults)
        self._topic = topic
        injector.check(self.faults)
        self._cond = threading.Condition()
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._pending = list(self.faults)  # not triggered yet
        self._started: list[_Started] = []
        self._echoes = 0
        self._packets: dict[tuple[PacketType | None, WireDirection | None], int] = {}
        self._t0 = 0.0
        self._thread: threading.Thread | None = None
        self._closing = False
        self.errors: list[str] = []

    # -- lifecycle --------------------------------------------------------------------
    def begin(self) -> FaultSchedule:
        """t = 0 for AtTime triggers; call right before the device is reset."""
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="fault-schedule", daemon=True)
        self._thread.start()
        for fault in list(self._pending):
            if isinstance(fault.trigger, AtTime):
                self._pending.remove(fault)
                self._at(self._t0 + fault.trigger.seconds, self._starter(fault, ""))
        return self

    def close(self) -> None:
        """End every fault still active (the next run starts clean) and stop."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(30.0)
        for started in self._started:
            self._end(started, "the run ended")

    def __enter__(self) -> FaultSchedule:
        return self.begin()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def untriggered(self) -> list[Fault]:
        with self._cond:
            return list(self._pending)

    # -- triggers (called on the tap's loop thread) -------------------------------------
    def on_record(self, record: TapRecord) -> None:
        if record.kind != RecordKind.PACKET or self._closing or not self._pending:
            return
        fired: list[tuple[Fault, str]] = []
        with self._cond:
            if is_echo(record, self._topic):
                self._echoes += 1
            key = (record.packet_type, record.direction)
            self._packets[key] = self._packets.get(key, 0) + 1
            for fault in list(self._pending):
                why = self._fires(fault)
                if why:
                    self._pending.remove(fault)
                    fired.append((fault, why))
        for fault, why in fired:
            self._at(time.monotonic(), self._starter(fault, why))

    def _fires(self, fault: Fault) -> str:
        trigger = fault.trigger
        if isinstance(trigger, AfterEchoes) and self._echoes >= trigger.count:
            return f"echo #{self._echoes} seen"
        if isinstance(trigger, OnPacket):
            key = (trigger.packet_type, trigger.wire_direction)
            if self._packets.get(key, 0) >= trigger.nth:
                return f"{trigger.packet_type} #{trigger.nth} seen"
        return ""

    # -- the thread ---------------------------------------------------------------------
    def _at(self, when: float, action: Callable[[], None]) -> None:
        with self._cond:
            heapq.heappush(self._queue, (when, next(self._order), action))
            self._cond.notify_all()

    def _starter(self, fault: Fault, why: str) -> Callable[[], None]:
        def start() -> None:
            started = self.injector.start(fault, why)
            self._started.append(started)
            if fault.duration_s is not None:
                self._at(time.monotonic() + fault.duration_s,
                         lambda: self._end(started, f"after {fault.duration_s:g} s"))
        return start

    def _end(self, started: _Started, why: str) -> None:
        try:
            self.injector.end(started, why)
        except HarnessError as exc:
            self.errors.append(f"ending {started.fault.describe()}: {exc}")

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closing and (not self._queue
                                             or self._queue[0][0] > time.monotonic()):
                    timeout = self._queue[0][0] - time.monotonic() if self._queue else None
                    self._cond.wait(timeout)
                if self._closing:
                    return
                _, _, action = heapq.heappop(self._queue)
            try:
                action()
            except Exception as exc:  # one failed fault must not stop the others
                self.errors.append(str(exc) if isinstance(exc, HarnessError)
                                   else f"{type(exc).__name__}: {exc}")
