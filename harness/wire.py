"""The wire tap's vocabulary: MQTT packet types, the two directions of a connection, and
the kinds of record the tap writes. A leaf module (it imports nothing of the harness), so
the decoder, the tap, the fault schedule, the evidence, the checks and the report share it.

These are ``StrEnum``s: a member is equal to its text and serialises as that text, so the
JSON-lines trace (``tap.jsonl``) reads exactly as plain strings would, and a trace read
back from disk compares equal to the members.
"""

from __future__ import annotations

from enum import StrEnum


class PacketType(StrEnum):
    """The MQTT 3.1.1 control packet types, in the order of their type codes 1..14."""

    CONNECT = "CONNECT"
    CONNACK = "CONNACK"
    PUBLISH = "PUBLISH"
    PUBACK = "PUBACK"
    PUBREC = "PUBREC"
    PUBREL = "PUBREL"
    PUBCOMP = "PUBCOMP"
    SUBSCRIBE = "SUBSCRIBE"
    SUBACK = "SUBACK"
    UNSUBSCRIBE = "UNSUBSCRIBE"
    UNSUBACK = "UNSUBACK"
    PINGREQ = "PINGREQ"
    PINGRESP = "PINGRESP"
    DISCONNECT = "DISCONNECT"

    @property
    def code(self) -> int:
        """The packet type code of the fixed header (CONNECT = 1)."""
        return list(PacketType).index(self) + 1


PACKET_TYPE_BY_CODE: dict[int, PacketType] = {t.code: t for t in PacketType}


class WireDirection(StrEnum):
    """Which way bytes went through the tap."""

    CLIENT_TO_BROKER = "c2b"  # from the device
    BROKER_TO_CLIENT = "b2c"  # to the device


class RecordKind(StrEnum):
    """What one tap record is, in the order they normally occur on one connection."""

    OPEN = "open"
    SNI = "sni"
    TLS_ERROR = "tls_error"
    PACKET = "packet"
    DECODE_ERROR = "decode_error"
    CLOSE = "close"
    FAULT = "fault"  # a fault starting or ending (harness.faults), on the same clock


def filter_matches(topic_filter: str, topic: str) -> bool:
    """Whether an MQTT 3.1.1 topic filter (``+`` one level, ``#`` the rest, §4.7) covers
    ``topic``. Topics starting with ``$`` match no filter starting with a wildcard."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    levels, wanted = topic_filter.split("/"), topic.split("/")
    for index, level in enumerate(levels):
        if level == "#":
            return True
        if index >= len(wanted) or (level != "+" and level != wanted[index]):
            return False
    return len(levels) == len(wanted)
