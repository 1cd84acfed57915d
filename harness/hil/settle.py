"""Wire evidence that settles a run before the device's serial line does (issue 14: every
wait ends when the evidence is in). Each rule is a tap listener (it runs on the tap's
thread) that calls :meth:`RunFollower.settle` with the reason, which ends the rig's waits.

* :class:`TlsToPlain`: a program that does not honour ``tls`` sent a TLS ClientHello to a
  plain run's port; the rig runs such a scenario again over TLS, so this run is done.
* :class:`EchoCannotCome`: on a clean session (nothing subscribed but what the connection
  itself asks for) the device published to the run's topic without having subscribed to
  a filter covering it, and then pinged: it is waiting (its keepalive came due) for an
  echo the broker will never send. Every wait after that would only run out.
* :class:`LossNeverNoticed`: R1's black hole began, and the bound in which the device
  must give the silent connection up has passed with no sign that it did (it neither
  closed the connection nor opened another): it waits in a blocking read for ever.
* :class:`Accepted`: in a run that expects a refusal (wrong password, a certificate the
  device must reject, no SNI), the broker answered CONNACK 0: the refusal will not come.

:class:`DeliveryOrder` settles one wait, not the run: whether the device has read past a
message it did not print (a foreign message dropped by its callback).
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

from harness.broker.tap_records import TapRecord
from harness.checks.resilience import closed_by_client
from harness.faults.model import START, FaultKind
from harness.hil.collect import is_tls_hello_on_plain
from harness.hil.follow import RunFollower
from harness.wire import PacketType, RecordKind, WireDirection, filter_matches


@dataclass
class TlsToPlain:
    run: RunFollower

    def __call__(self, record: TapRecord) -> None:
        if is_tls_hello_on_plain(record):
            self.run.settle(f"the device sent a TLS ClientHello to the plain MQTT port (tap "
                            f"connection #{record.conn}): the scenario runs again over TLS")


@dataclass
class EchoCannotCome:
    run: RunFollower
    topic: str
    _clean: set[int] = field(default_factory=set)  # connections with a clean session
    _filters: dict[int, list[str]] = field(default_factory=dict)  # per connection
    _unanswerable: dict[int, int] = field(default_factory=dict)  # conn -> PUBLISHes

    def __call__(self, record: TapRecord) -> None:
        if record.kind != RecordKind.PACKET or record.direction != WireDirection.CLIENT_TO_BROKER:
            return
        conn = record.conn
        if record.packet_type == PacketType.CONNECT:
            if record.fields.get("clean_session"):
                self._clean.add(conn)
        elif record.packet_type == PacketType.SUBSCRIBE:
            topics = record.fields.get("topics") or []
            self._filters.setdefault(conn, []).extend(str(t["filter"]) for t in topics)
            self._unanswerable.pop(conn, None)  # a late SUBSCRIBE may still cover it
        elif record.packet_type == PacketType.PUBLISH:
            if conn in self._clean and record.fields.get("topic") == self.topic and not any(
                    filter_matches(f, self.topic) for f in self._filters.get(conn, [])):
                self._unanswerable[conn] = self._unanswerable.get(conn, 0) + 1
        elif record.packet_type == PacketType.PINGREQ and conn in self._unanswerable:
            asked = ", ".join(repr(f) for f in self._filters.get(conn, [])) or "nothing"
            self.run.settle(
                f"the device waits (PINGREQ) for an echo that cannot come: tap connection "
                f"#{conn} published to {self.topic!r} but subscribed to {asked}")


@dataclass
class LossNeverNoticed:
    run: RunFollower
    bound_s: float  # silent_loss_bound_s, in harness.checks.resilience
    margin_s: float = 0.5  # so a sign right at the bound is still on the record
    _hole_at: float | None = None  # monotonic
    _gave_up: bool = False

    def __call__(self, record: TapRecord) -> None:
        if (record.kind == RecordKind.FAULT and self._hole_at is None
                and record.fields.get("fault") == FaultKind.TIMEOUT
                and record.fields.get("phase") == START):
            self._hole_at = record.mono_time
            self.run.settle_at(record.mono_time + self.bound_s + self.margin_s, self._verdict)
        elif self._hole_at is not None and (
                record.kind == RecordKind.OPEN
                or (record.kind == RecordKind.CLOSE and closed_by_client(record.detail))):
            self._gave_up = True  # the signs harness.checks.resilience reads

    def _verdict(self) -> str | None:
        if self._gave_up:
            return None
        return (f"the device still held the connection {self.bound_s + self.margin_s:g} s "
                f"after the black hole began (R1's bound: {self.bound_s:g} s): it neither "
                "closed it nor opened another")


@dataclass
class Accepted:
    run: RunFollower

    def __call__(self, record: TapRecord) -> None:
        if (record.is_packet(PacketType.CONNACK, WireDirection.BROKER_TO_CLIENT)
                and record.fields.get("return_code") == 0):
            self.run.settle(f"the broker accepted the device's connection (CONNACK 0 on tap "
                            f"connection #{record.conn}): no refusal will come")


@dataclass
class DeliveryOrder:
    """The run topic's messages as the broker delivered them to the device, in wire order.

    umqtt reads its socket in order, one message at a time, so a device that prints a
    message delivered after X on the same connection has read X: it printed X or dropped
    it. Only a payload delivered exactly once proves it (a repeated one may be the earlier
    copy)."""

    topic: str
    _delivered: list[tuple[int, str]] = field(default_factory=list)  # (conn, payload)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, record: TapRecord) -> None:
        if (record.is_packet(PacketType.PUBLISH, WireDirection.BROKER_TO_CLIENT)
                and record.fields.get("topic") == self.topic):
            payload = bytes(record.fields.get("payload") or b"").decode(errors="replace")
            with self._lock:
                self._delivered.append((record.conn, payload))

    def read_past(self, payload: str, printed: list[str]) -> bool:
        """True once the device has printed a message delivered after ``payload``."""
        with self._lock:
            delivered = list(self._delivered)
        at = next((i for i, (_, p) in enumerate(delivered) if p == payload), None)
        if at is None:
            return False
        conn = delivered[at][0]
        copies = Counter(p for _, p in delivered)
        later = {p for c, p in delivered[at + 1:] if c == conn and copies[p] == 1}
        return any(p in later for p in printed)
