"""An incremental MQTT 3.1.1 decoder for the wire tap.

Bytes are fed as they arrive; whole packets come out as :class:`MqttPacket`, problems as
:class:`DecodeProblem`. It never raises on input: a malformed packet inside a valid frame
is reported and skipped; a broken frame header (MQTT has no resync marker) is reported
once and the rest of that stream is counted, not decoded. The password is never kept,
only whether it was present and its length.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from harness.wire import PACKET_TYPE_BY_CODE, PacketType

# Fixed-header flag bits every packet type but PUBLISH must carry [MQTT-2.2.2-1].
REQUIRED_FLAGS = {6: 0b0010, 8: 0b0010, 10: 0b0010}

CONNACK_TEXT = {
    0: "accepted",
    1: "unacceptable protocol version",
    2: "identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}

MAX_REMAINING_LENGTH = 268_435_455  # four-byte variable length limit


@dataclass(frozen=True)
class MqttPacket:
    """One decoded packet: its type, decoded fields, and size on the wire."""

    type: PacketType
    fields: dict[str, Any] = field(default_factory=dict)
    size: int = 0


@dataclass(frozen=True)
class DecodeProblem:
    """Bytes that are not a valid MQTT 3.1.1 packet: why, and a short hex sample."""

    reason: str
    sample: str = ""
    size: int = 0


DecodeResult = MqttPacket | DecodeProblem


class _Malformed(Exception):
    """Internal: the body of one frame does not decode."""


class _Reader:
    """Bounds-checked cursor over one packet body."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, count: int, what: str) -> bytes:
        if count > self.remaining():
            raise _Malformed(f"{what}: needs {count} bytes, only {self.remaining()} left")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def byte(self, what: str) -> int:
        return self.take(1, what)[0]

    def u16(self, what: str) -> int:
        return int.from_bytes(self.take(2, what), "big")

    def binary(self, what: str) -> bytes:
        return self.take(self.u16(f"{what} length"), what)

    def text(self, what: str) -> str:
        raw = self.binary(what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Malformed(f"{what} is not UTF-8") from exc

    def rest(self) -> bytes:
        return self.take(self.remaining(), "rest")


def _decode_connect(r: _Reader, _flags: int) -> dict[str, Any]:
    fields: dict[str, Any] = {"protocol_name": r.text("protocol name")}
    fields["protocol_level"] = r.byte("protocol level")
    flags = r.byte("connect flags")
    will = bool(flags & 0x04)
    fields.update(
        clean_session=bool(flags & 0x02),
        will_flag=will,
        will_qos=(flags >> 3) & 0x03,
        will_retain=bool(flags & 0x20),
        username_flag=bool(flags & 0x80),
        password_present=bool(flags & 0x40),
        reserved_flag=bool(flags & 0x01),
        keepalive=r.u16("keepalive"),
        client_id=r.text("client id"),
    )
    fields["will_topic"] = r.text("will topic") if will else None
    fields["will_message"] = r.binary("will message") if will else None
    fields["username"] = r.text("user name") if flags & 0x80 else None
    # Only the fact and length: the password itself must never reach a record.
    fields["password_length"] = len(r.binary("password")) if flags & 0x40 else 0
    return fields


def _decode_connack(r: _Reader, _flags: int) -> dict[str, Any]:
    ack_flags = r.byte("connack flags")
    code = r.byte("return code")
    return {
        "session_present": bool(ack_flags & 0x01),
        "return_code": code,
        "return_text": CONNACK_TEXT.get(code, f"unknown code {code}"),
    }


def _decode_publish(r: _Reader, flags: int) -> dict[str, Any]:
    qos = (flags >> 1) & 0x03
    if qos == 3:
        raise _Malformed("PUBLISH with QoS 3")
    fields: dict[str, Any] = {
        "topic": r.text("topic"),
        "qos": qos,
        "retain": bool(flags & 0x01),
        "dup": bool(flags & 0x08),
        "packet_id": None,
    }
    if qos:
        fields["packet_id"] = r.u16("packet id")
    fields["payload"] = r.rest()
    return fields


def _decode_packet_id(r: _Reader, _flags: int) -> dict[str, Any]:
    return {"packet_id": r.u16("packet id")}


def _decode_subscribe(r: _Reader, _flags: int) -> dict[str, Any]:
    packet_id = r.u16("packet id")
    topics: list[dict[str, Any]] = []
    while r.remaining():
        topics.append({"filter": r.text("topic filter"), "qos": r.byte("requested qos") & 0x03})
    if not topics:
        raise _Malformed("SUBSCRIBE without a topic filter")
    return {"packet_id": packet_id, "topics": topics}


def _decode_suback(r: _Reader, _flags: int) -> dict[str, Any]:
    return {"packet_id": r.u16("packet id"), "return_codes": list(r.rest())}


def _decode_unsubscribe(r: _Reader, _flags: int) -> dict[str, Any]:
    packet_id = r.u16("packet id")
    topics: list[str] = []
    while r.remaining():
        topics.append(r.text("topic filter"))
    return {"packet_id": packet_id, "topics": topics}


def _decode_empty(_r: _Reader, _flags: int) -> dict[str, Any]:
    return {}


_BODY_DECODERS = {
    1: _decode_connect, 2: _decode_connack, 3: _decode_publish, 4: _decode_packet_id,
    5: _decode_packet_id, 6: _decode_packet_id, 7: _decode_packet_id, 8: _decode_subscribe,
    9: _decode_suback, 10: _decode_unsubscribe, 11: _decode_packet_id, 12: _decode_empty,
    13: _decode_empty, 14: _decode_empty,
}  # fmt: skip


def decode_body(type_code: int, flags: int, body: bytes) -> DecodeResult:
    """Decode one complete frame's body; a malformed body becomes a :class:`DecodeProblem`."""
    name = PACKET_TYPE_BY_CODE[type_code]
    size = len(body)
    try:
        reader = _Reader(body)
        fields = _BODY_DECODERS[type_code](reader, flags)
        if reader.remaining():
            raise _Malformed(f"{reader.remaining()} unexpected trailing bytes")
    except _Malformed as exc:
        return DecodeProblem(f"malformed {name}: {exc}", body[:16].hex(), size)
    return MqttPacket(name, fields, size)


class StreamDecoder:
    """Decodes one direction of one connection, fed in arbitrary chunks."""

    def __init__(self, max_packet_size: int = MAX_REMAINING_LENGTH) -> None:
        self.max_packet_size = max_packet_size
        self._buffer = bytearray()
        self._broken = False
        self.skipped_bytes = 0  # bytes ignored after a framing error

    @property
    def buffered(self) -> int:
        """Bytes held for an unfinished packet (fed, not yet decoded)."""
        return len(self._buffer)

    @property
    def desynchronized(self) -> bool:
        """True after a framing error: the rest of the stream is not decoded."""
        return self._broken

    def feed(self, data: bytes) -> list[DecodeResult]:
        if self._broken:
            self.skipped_bytes += len(data)
            return []
        self._buffer += data
        results: list[DecodeResult] = []
        pos = 0
        buf = self._buffer
        while True:
            frame = self._frame_at(buf, pos)
            if frame is None:
                break
            if isinstance(frame, DecodeProblem):
                results.append(frame)
                self._broken = True
                self.skipped_bytes += len(buf) - pos
                pos = len(buf)
                break
            type_code, flags, start, end = frame
            decoded = decode_body(type_code, flags, bytes(buf[start:end]))
            # Whole frame, fixed header included, so a proxy can re-frame the stream.
            results.append(dataclasses.replace(decoded, size=end - pos))
            pos = end
        del self._buffer[:pos]  # one slice per feed keeps decoding linear
        return results

    def close(self) -> DecodeProblem | None:
        """End of stream: leftover bytes of an unfinished packet are a truncation."""
        leftover = bytes(self._buffer)
        self._buffer.clear()
        if leftover and not self._broken:
            return DecodeProblem(
                f"connection closed inside a packet ({len(leftover)} bytes of an unfinished frame)",
                leftover[:16].hex(),
                len(leftover),
            )
        return None

    def _frame_at(
        self, buf: bytearray, pos: int
    ) -> tuple[int, int, int, int] | DecodeProblem | None:
        """(type, flags, body start, body end) of the frame at ``pos``; None if incomplete."""
        if pos >= len(buf):
            return None
        first = buf[pos]
        type_code, flags = first >> 4, first & 0x0F
        sample = bytes(buf[pos : pos + 16]).hex() if type_code in (0, 15) or flags else ""
        if type_code not in PACKET_TYPE_BY_CODE:
            return DecodeProblem(f"invalid packet type {type_code} (byte 0x{first:02x})", sample, 1)
        if type_code != 3 and flags != REQUIRED_FLAGS.get(type_code, 0):
            name = PACKET_TYPE_BY_CODE[type_code]
            return DecodeProblem(f"invalid fixed-header flags 0x{flags:x} for {name}", sample, 1)
        length = 0
        for index in range(4):
            at = pos + 1 + index
            if at >= len(buf):
                return None
            digit = buf[at]
            length |= (digit & 0x7F) << (7 * index)
            if not digit & 0x80:
                break
        else:
            return DecodeProblem("remaining length longer than 4 bytes", sample, 5)
        if length > self.max_packet_size:
            return DecodeProblem(
                f"remaining length {length} exceeds the limit {self.max_packet_size}", sample, 0
            )
        start = pos + 2 + index
        end = start + length
        if end > len(buf):
            return None
        return type_code, flags, start, end
