"""Turn the wire tap's records into the evidence types the checks read."""

from __future__ import annotations

from typing import Any

from harness.broker.tap import Tap
from harness.broker.tap_records import TapRecord
from harness.checks.evidence import Evidence, FaultMark, TlsHandshake, WireLink, WirePacket
from harness.wire import PacketType, RecordKind, WireDirection

# A TLS record of type handshake (0x16), version 3.x: how every ClientHello starts.
TLS_HANDSHAKE_RECORD = "1603"


def evidence_from_tap(evidence: Evidence, tap: Tap) -> None:
    """Append the tap's packets and TLS handshakes to ``evidence``."""
    for record in tap.records():
        if record.kind == RecordKind.PACKET and record.packet_type and record.direction:
            evidence.packets.append(WirePacket(record.wall_time, record.conn, record.direction,
                                               record.packet_type, normalise(record),
                                               record.detail))
        elif record.kind == RecordKind.FAULT:
            evidence.faults.append(FaultMark(record.wall_time, record.mono_time,
                                             str(record.fields.get("phase")),
                                             str(record.fields.get("fault")),
                                             dict(record.fields), record.detail))
    for conn in tap.connections():
        if conn.tls and (conn.sni_seen or conn.tls_error):
            evidence.handshakes.append(
                TlsHandshake(conn.opened_at, conn.id, conn.sni, conn.tls_error,
                             hello_seen=conn.sni_seen))
    evidence.connections_opened = len(tap.connections())
    evidence.links = [WireLink(c.id, c.opened_at, c.closed_at, c.close_reason)
                      for c in tap.connections()]
    if tap.tls is None:
        evidence.tls_on_plain = sorted({record.conn for record in tap.records()
                                        if is_tls_hello_on_plain(record)})


def is_tls_hello_on_plain(record: TapRecord) -> bool:
    """A plain tap's record of client bytes that are not MQTT but a TLS handshake."""
    return (record.kind == RecordKind.DECODE_ERROR
            and record.direction == WireDirection.CLIENT_TO_BROKER
            and str(record.fields.get("sample", "")).startswith(TLS_HANDSHAKE_RECORD))


def normalise(record: TapRecord) -> dict[str, Any]:
    """The decoder's fields in the checks' vocabulary: text payloads, (filter, qos) pairs."""
    fields = dict(record.fields)
    payload = fields.get("payload")
    if isinstance(payload, bytes | bytearray):
        fields["payload"] = bytes(payload).decode("utf-8", errors="replace")
    if record.packet_type == PacketType.CONNECT:
        fields["has_password"] = bool(fields.get("password_present"))
    if record.packet_type == PacketType.SUBSCRIBE:
        fields["topics"] = [(t["filter"], t["qos"]) for t in fields.get("topics", [])]
    return fields
