"""Turn the wire tap's records into the evidence types the checks read."""

from __future__ import annotations

from typing import Any

from harness.checks.evidence import Evidence, TlsHandshake, WirePacket


def evidence_from_tap(evidence: Evidence, tap: Any) -> None:
    """Append the tap's packets and TLS handshakes to ``evidence``."""
    opened: set[int] = set()
    for record in tap.records():
        kind = record.kind
        conn = int(record.conn)
        opened.add(conn)
        if kind == "packet":
            evidence.packets.append(WirePacket(record.time, conn, record.direction,
                                               record.packet_type, dict(record.fields)))
        elif kind in ("sni", "tls_error", "tls_done"):
            _note_handshake(evidence, record)
    evidence.connections_opened = len(opened)


def _note_handshake(evidence: Evidence, record: Any) -> None:
    ...
