"""Wire evidence that settles a run before the device's serial line does (issue 14: every
wait ends when the evidence is in). Each rule is a tap listener (it runs on the tap's
thread) that calls :meth:`RunFollower.settle` with the reason, which ends the rig's waits.

* :class:`TlsToPlain`: a program that does not honour ``tls`` sent a TLS ClientHello to a
  plain run's port; the rig runs such a scenario again over TLS, so this run is done.
* :class:`EchoCannotCome`: on a clean session (nothing subscribed but what the connection
  itself asks for) the device published to the run's topic without having subscribed to
  a filter covering it, and then pinged: it is waiting (its keepalive came due) for an
  echo the broker will never send. Every wait after that would only run out.
* :class:`Accepted`: in a run that expects a refusal (wrong password, a certificate the
  device must reject, no SNI), the broker answered CONNACK 0: the refusal will not come.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.broker.tap_records import TapRecord
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
class Accepted:
    run: RunFollower

    def __call__(self, record: TapRecord) -> None:
        if (record.is_packet(PacketType.CONNACK, WireDirection.BROKER_TO_CLIENT)
                and record.fields.get("return_code") == 0):
            self.run.settle(f"the broker accepted the device's connection (CONNACK 0 on tap "
                            f"connection #{record.conn}): no refusal will come")
