"""What the wire tap records: one :class:`TapRecord` per event, grouped per connection
in :class:`TapConnection`, and their JSON-lines form."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from harness.wire import PacketType, RecordKind, WireDirection


def _jsonable(value: Any) -> Any:
    """Bytes become text when they are UTF-8, else ``{"hex": ...}``; containers recurse."""
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return {"hex": bytes(value).hex()}
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


@dataclass(frozen=True)
class TapRecord:
    """One event seen by the tap; ``direction`` is set for packets and decode errors."""

    seq: int
    kind: RecordKind
    conn: int
    wall_time: float
    mono_time: float
    direction: WireDirection | None = None
    packet_type: PacketType | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    detail: str = ""

    def is_packet(self, packet_type: PacketType,
                  direction: WireDirection | None = None) -> bool:
        """True for a decoded packet of that type (and direction, if given)."""
        return (
            self.kind == RecordKind.PACKET
            and self.packet_type == packet_type
            and (direction is None or self.direction == direction)
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "seq": self.seq,
            "kind": self.kind,
            "conn": self.conn,
            "time": round(self.wall_time, 6),
            "mono": round(self.mono_time, 6),
        }
        if self.direction:
            data["dir"] = self.direction
        if self.packet_type:
            data["type"] = self.packet_type
        if self.fields:
            data["fields"] = _jsonable(self.fields)
        if self.detail:
            data["detail"] = self.detail
        return data

    def to_line(self) -> str:
        return json.dumps(self.to_json(), ensure_ascii=False, separators=(",", ":"))

    def summary(self) -> str:
        """A short human line, for ``-v`` output and timeout messages."""
        where = f"#{self.conn}"
        if self.kind == RecordKind.PACKET:
            shown = {
                k: v for k, v in _jsonable(self.fields).items() if v is not None and v is not False
            }
            text = json.dumps(shown, ensure_ascii=False)
            if len(text) > 400:
                text = text[:397] + "..."
            return f"{where} {self.direction} {self.packet_type} {text}"
        return f"{where} {self.kind} {self.detail}".rstrip()


@dataclass
class TapConnection:
    """One client connection through the tap (a snapshot when returned to callers)."""

    id: int
    peer: str
    opened_at: float
    tls: bool
    sni: str | None = None
    sni_seen: bool = False  # the SNI callback ran (TLS got as far as ClientHello)
    tls_error: str | None = None
    tls_version: str | None = None
    packets: list[TapRecord] = field(default_factory=list)
    decode_errors: list[TapRecord] = field(default_factory=list)
    closed: bool = False
    close_reason: str | None = None
    closed_at: float | None = None

    def packets_of(self, packet_type: PacketType,
                   direction: WireDirection | None = None) -> list[TapRecord]:
        return [p for p in self.packets if p.is_packet(packet_type, direction)]

    def copy(self) -> TapConnection:
        return TapConnection(
            self.id, self.peer, self.opened_at, self.tls, self.sni, self.sni_seen,
            self.tls_error, self.tls_version, list(self.packets), list(self.decode_errors),
            self.closed, self.close_reason, self.closed_at,
        )  # fmt: skip
