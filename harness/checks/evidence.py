"""Evidence from one device run, in the shapes the spec checks reason about.

A run yields three independent witnesses: what the device printed (serial log), what
crossed the wire (the tap between device and broker), and what a second MQTT client saw
(the observer). The collectors in ``harness.hil`` fill an :class:`Evidence`; the checks in
this package only read it, so they can be unit-tested on hand-made evidence.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.console import ERROR_LINE, RECEIVED, SEND, TRACEBACK
from harness.wire import PacketType, WireDirection

_NUMBER_RANGE = re.compile(r"<(\d+)\.\.(\d+)>")


class ClientIdForm:
    """The form of a program's own client id: literal text with ``<a..b>`` standing for a
    decimal number in that range (the seed's ``micropython-client-<0..255>``), or
    ``re:<regex>`` for anything else (a MAC-derived id, say)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def check(self, where: str) -> None:
        from harness.errors import ConfigError

        if self.text.startswith("re:"):
            try:
                re.compile(self.text[3:])
            except re.error as exc:
                raise ConfigError(f"{where}: {self.text[3:]!r} is not a regular expression "
                                  f"({exc})") from None

    def matches(self, client_id: str) -> bool:
        if self.text.startswith("re:"):
            return re.fullmatch(self.text[3:], client_id) is not None
        parts = _NUMBER_RANGE.split(self.text)
        pattern = "".join(re.escape(part) if index % 3 == 0 else r"(\d+)" if index % 3 == 1
                          else "" for index, part in enumerate(parts))
        match = re.fullmatch(pattern, client_id)
        if match is None:
            return False
        ranges = [(int(a), int(b)) for a, b in _NUMBER_RANGE.findall(self.text)]
        return all(low <= int(value) <= high and str(int(value)) == value
                   for value, (low, high) in zip(match.groups(), ranges, strict=True))

    def __str__(self) -> str:
        return self.text


SEED_CLIENT_ID_FORM = ClientIdForm("micropython-client-<0..255>")


@dataclass(frozen=True)
class SerialLine:
    time: float
    text: str


@dataclass(frozen=True)
class WirePacket:
    """One decoded MQTT packet seen by the tap. ``fields`` are the decoded fields in the
    checks' vocabulary (``harness.hil.collect`` turns tap records into this once: payloads
    are text, SUBSCRIBE topics are (filter, qos) pairs); the properties read them typed."""

    time: float
    connection: int
    direction: WireDirection
    type: PacketType
    fields: dict[str, Any]
    note: str = ""  # e.g. "swallowed (timeout)": seen by the tap, not forwarded (a fault)

    @property
    def forwarded(self) -> bool:
        return not self.note.startswith("swallowed")

    @property
    def payload(self) -> str:
        """A PUBLISH's payload, as text ("" for other packets)."""
        return str(self.fields.get("payload", ""))

    @property
    def topic(self) -> str | None:
        """A PUBLISH's topic."""
        topic = self.fields.get("topic")
        return None if topic is None else str(topic)

    @property
    def return_code(self) -> int | None:
        """A CONNACK's return code."""
        code = self.fields.get("return_code")
        return None if code is None else int(code)

    @property
    def topics(self) -> list[tuple[str, int]]:
        """A SUBSCRIBE's (filter, qos) pairs."""
        return [(str(f), int(q)) for f, q in self.fields.get("topics") or []]


@dataclass(frozen=True)
class FaultMark:
    """A fault starting or ending (harness.faults), on the wire's clock."""

    time: float
    mono_time: float
    phase: str  # "start" or "end"
    kind: str  # a harness.faults.FaultKind value
    fields: dict[str, Any]
    detail: str = ""


@dataclass(frozen=True)
class WireLink:
    """One device connection through the tap: when it opened and closed, and why."""

    connection: int
    opened: float
    closed: float | None
    close_reason: str | None


@dataclass(frozen=True)
class TlsHandshake:
    """One TLS handshake at the tap: the SNI offered (None = none) and how it ended."""

    time: float
    connection: int
    sni: str | None
    error: str | None  # None = completed
    hello_seen: bool = True  # False: the client closed before sending its ClientHello


@dataclass(frozen=True)
class Crash:
    """A traceback on the serial line: when it started, its exception line, its frames."""

    time: float
    exception: str  # e.g. "TypeError: function takes 3 positional arguments but 5 were given"
    frames: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        """The exception's class name (``TypeError``)."""
        return self.exception.split(":", 1)[0].strip()


@dataclass(frozen=True)
class ObservedPublish:
    time: float
    topic: str
    payload: bytes
    retain: bool


@dataclass
class Expectation:
    """What the device was configured to do in this run."""

    server: str
    topic: str
    client_id: str | None  # None = the seed's micropython-client-<0..255>
    username: str | None
    keepalive: int
    publish_interval: float
    wifi_ip: str | None  # from the board's Wi-Fi configuration; None: unknown
    wifi_delay: float | None = 0.0  # None: unknown (a real access point)
    tls: bool = False
    retained_payload: str | None = None
    foreign_payloads: tuple[str, ...] = ()
    reconnect_delay: float | None = None  # None: the device was not told to reconnect
    reconnect_max_delay: float | None = None
    # Settings the program claims to honour (its manifest): ignoring one fails, not N/A.
    honours: frozenset[str] = frozenset()
    client_id_form: ClientIdForm | None = None  # None: the seed's form
    # The firmware checks certificate dates against the board's clock (v1.22+; S13);
    # None: unknown.
    cert_dates_checked: bool | None = None


@dataclass
class Evidence:
    expectation: Expectation
    serial: list[SerialLine] = field(default_factory=list)
    packets: list[WirePacket] = field(default_factory=list)
    handshakes: list[TlsHandshake] = field(default_factory=list)
    observed: list[ObservedPublish] = field(default_factory=list)
    artifacts: dict[str, Path] = field(default_factory=dict)
    connections_opened: int = 0
    # Connections to a plain (non-TLS) tap whose first bytes were a TLS ClientHello: the
    # device opened TLS although it was told not to.
    tls_on_plain: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # how the run went, e.g. ended early
    faults: list[FaultMark] = field(default_factory=list)  # injected faults, in order
    links: list[WireLink] = field(default_factory=list)
    ntp_requests: list[float] = field(default_factory=list)  # at the rig's NTP server

    # --- serial views -------------------------------------------------------------
    def lines_matching(self, pattern: re.Pattern[str]) -> list[tuple[SerialLine, re.Match[str]]]:
        found = []
        for line in self.serial:
            match = pattern.match(line.text.strip())
            if match:
                found.append((line, match))
        return found

    def sends(self) -> list[tuple[float, str, str]]:
        """(time, payload, topic) of each ``Send ...`` line, in order."""
        return [(line.time, m["payload"], m["topic"]) for line, m in self.lines_matching(SEND)]

    def receives(self) -> list[tuple[float, str, str]]:
        return [(line.time, m["payload"], m["topic"]) for line, m in self.lines_matching(RECEIVED)]

    def crashes(self) -> list[Crash]:
        """Each traceback the device printed: its exception line and its frames."""
        result = []
        lines = [(line.time, line.text.rstrip()) for line in self.serial]
        for index, (when, text) in enumerate(lines):
            if not TRACEBACK.match(text.strip()):
                continue
            frames: list[str] = []
            exception = "Traceback"
            for _, later in lines[index + 1:index + 40]:
                stripped = later.strip()
                if not stripped:
                    continue
                if later.startswith((" ", "\t")) or stripped.startswith("File "):
                    frames.append(stripped)
                    continue
                exception = stripped
                break
            result.append(Crash(when, exception, tuple(frames)))
        return result

    def tracebacks(self) -> list[str]:
        """Each traceback the device printed, as its last line (the exception)."""
        return [crash.exception for crash in self.crashes()]

    def first_error(self) -> SerialLine | None:
        """The first error the device printed: a traceback's exception, or an ``ERROR``
        line (the settings contract's one-line errors)."""
        errors = [SerialLine(c.time, c.exception) for c in self.crashes()]
        errors += [line for line in self.serial if ERROR_LINE.match(line.text.strip())]
        return min(errors, key=lambda line: line.time) if errors else None

    def hellos(self) -> list[TlsHandshake]:
        """TLS handshakes the device began: its ClientHello reached the tap."""
        return [h for h in self.handshakes if h.hello_seen]

    # --- wire views ---------------------------------------------------------------
    def packets_of(self, packet_type: PacketType,
                   direction: WireDirection | None = None) -> list[WirePacket]:
        return [p for p in self.packets
                if p.type == packet_type and (direction is None or p.direction == direction)]

    def device_publishes(self) -> list[WirePacket]:
        """The PUBLISH packets the device sent."""
        return self.packets_of(PacketType.PUBLISH, WireDirection.CLIENT_TO_BROKER)

    def deliveries(self) -> list[WirePacket]:
        """The PUBLISH packets delivered to the device."""
        return self.packets_of(PacketType.PUBLISH, WireDirection.BROKER_TO_CLIENT)

    def connects(self) -> list[WirePacket]:
        return self.packets_of(PacketType.CONNECT, WireDirection.CLIENT_TO_BROKER)

    def connacks(self) -> list[WirePacket]:
        return self.packets_of(PacketType.CONNACK, WireDirection.BROKER_TO_CLIENT)

    def subscribes(self) -> list[WirePacket]:
        return self.packets_of(PacketType.SUBSCRIBE, WireDirection.CLIENT_TO_BROKER)

    def quote(self, *patterns: str, limit: int = 8) -> str:
        """The serial lines that matter for a failure message."""
        regexes = [re.compile(p) for p in patterns]
        picked = [line.text for line in self.serial
                  if any(r.search(line.text) for r in regexes)][:limit]
        return "\n".join(f"    | {text}" for text in picked) or "    | (no such lines)"

    def tail(self, count: int = 10) -> str:
        return "\n".join(f"    | {line.text}" for line in self.serial[-count:]) or "    | (empty)"


def payload_counter(payload: str) -> int | None:
    """n for a payload that is exactly the JSON object {"msg": n}, else None."""
    try:
        value = json.loads(payload)
    except ValueError:
        return None
    if isinstance(value, dict) and set(value) == {"msg"} and type(value["msg"]) is int:
        return int(value["msg"])
    return None
