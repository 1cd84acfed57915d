"""A run's timeline: everything one scenario run left behind, on one time axis.

A run folder (``runs/<session>/NN-<scenario>/``) holds the serial log, the tap trace and
whatever else records timestamped events. Each kind of file is read by an
:class:`EventSource` from :data:`SOURCES`; the tap trace source takes every record kind it
finds (packets, SNI, TLS errors, faults, …), so a new kind of event shows up without a
change here. The page itself is :mod:`harness.report.timeline_page`.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from harness.faults.model import END as FAULT_END
from harness.faults.model import START as FAULT_START
from harness.run_files import EXTRA_EVENTS, SERIAL_LOG, TAP_TRACE
from harness.wire import PacketType, RecordKind

# Lanes, left to right on the page.
SERIAL, WIRE, TLS, FAULT, OTHER = "serial", "wire", "tls", "fault", "other"
LANES = {SERIAL: "Device serial", WIRE: "MQTT on the wire", TLS: "TLS / connection",
         FAULT: "Injected faults", OTHER: "Other events"}

# serial.log lines: "HH:MM:SS.mmm text" in the recording machine's local time.
_SERIAL_LINE = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) ?(.*)$")
# The harness's own marks in the serial log; a run starts at its hard reset.
_RUN_START = "[harness] hard reset"
# How a check's failure message quotes serial lines (harness.checks.findings).
_QUOTED_HEADING = "serial lines that matter:"
_QUOTED_PREFIX = "| "


@dataclass(frozen=True)
class Event:
    time: float  # seconds since the epoch
    lane: str
    kind: str  # "line", "packet", "sni", "tls_error", "open", "close", "fault", ...
    text: str
    direction: str = ""  # c2b / b2c for MQTT packets
    detail: str = ""  # more to show on demand (decoded fields)
    quoted_by: tuple[str, ...] = ()  # the spec items whose failure quoted this line
    fault: str = ""  # a fault event: which fault (its start and end share it)
    phase: str = ""  # a fault event: "start" or "end"

    @property
    def fault_kind(self) -> str:
        return self.fault.split(" ", 1)[0]


@dataclass(frozen=True)
class FaultSpan:
    """One injected fault from its start to its end (None: it lasted to the end of the
    run's records), for shading the time it was active."""

    name: str  # the fault's kind, e.g. "timeout"
    text: str  # its description and why it started
    start: float
    end: float | None

    def covers(self, stamp: float) -> bool:
        return self.start <= stamp and (self.end is None or stamp <= self.end)


@dataclass
class Timeline:
    run_dir: Path
    events: list[Event]
    omitted_lines: int = 0  # serial lines of earlier runs in the same session's log
    notes: list[str] = field(default_factory=list)

    @property
    def faults(self) -> list[FaultSpan]:
        """Each injected fault's active span: a start paired with the next end of the same
        fault (the trace records both, with the same fields)."""
        spans: list[FaultSpan] = []
        open_: dict[str, list[Event]] = {}
        for event in self.events:
            if event.lane != FAULT:
                continue
            if event.phase == FAULT_END and open_.get(event.fault):
                started = open_[event.fault].pop(0)
                spans.append(FaultSpan(started.fault_kind, _fault_text(started), started.time,
                                       event.time))
            elif event.phase == FAULT_START:  # one without a phase is a moment, not a span
                open_.setdefault(event.fault, []).append(event)
        spans += [FaultSpan(e.fault_kind, _fault_text(e), e.time, None)
                  for waiting in open_.values() for e in waiting]
        return sorted(spans, key=lambda span: span.start)

    @property
    def start(self) -> float:
        return self.events[0].time if self.events else 0.0

    @property
    def end(self) -> float:
        return self.events[-1].time if self.events else 0.0


class EventSource(Protocol):
    """Reads one kind of file in a run folder into events."""

    def events(self, run_dir: Path, reference: float | None) -> list[Event]:
        """``reference`` is an epoch time near the run's end from the other sources (None
        if they have none), for sources whose own stamps lack a date."""
        ...


class SerialLogSource:
    """The device's serial log, from the run's hard reset on (the log of a session is
    cumulative). Its clock-of-day stamps are turned into epoch seconds near the file's
    own time, in this machine's time zone (the one that wrote it, normally)."""

    def __init__(self) -> None:
        self.omitted = 0

    def events(self, run_dir: Path, reference: float | None) -> list[Event]:
        path = run_dir / SERIAL_LOG
        if not path.is_file():
            return []
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        start = max((i for i, line in enumerate(lines) if line.endswith(_RUN_START)), default=0)
        self.omitted = start
        clock = _LocalClock(reference if reference is not None else path.stat().st_mtime)
        parsed: list[tuple[float, str]] = []
        for line in lines[start:]:
            match = _SERIAL_LINE.match(line)
            if match is None:  # a continuation without a stamp: keep it with the previous
                if parsed:
                    parsed.append((parsed[-1][0], line))
                continue
            hh, mm, ss, ms, text = match.groups()
            seconds = int(hh) * 3600 + int(mm) * 60 + int(ss) + int(ms) / 1000
            parsed.append((seconds, text))
        stamps = clock.resolve([s for s, _ in parsed])
        return [Event(t, SERIAL, "line", text) for t, (_, text) in zip(stamps, parsed, strict=True)
                if text.strip()]


class TapTraceSource:
    """The wire tap's JSON lines: decoded packets both ways, TLS events, and any other
    record kind (fault injections, …) as a generic event."""

    def events(self, run_dir: Path, reference: float | None) -> list[Event]:
        path = run_dir / TAP_TRACE
        return list(_tap_events(_json_lines(path))) if path.is_file() else []


class ExtraEventsSource:
    """Any ``*.events.jsonl`` file: one ``{"time", "kind", "text"}`` object per line."""

    def events(self, run_dir: Path, reference: float | None) -> list[Event]:
        found: list[Event] = []
        for path in sorted(run_dir.glob(EXTRA_EVENTS)):
            for record in _json_lines(path):
                stamp = record.get("time")
                if not isinstance(stamp, int | float):
                    continue
                kind = str(record.get("kind", path.name.removesuffix(".events.jsonl")))
                text = str(record.get("text") or record.get("detail") or kind)
                rest = {k: v for k, v in record.items() if k not in ("time", "kind", "text")}
                lane = str(record.get("lane", OTHER))
                found.append(Event(float(stamp), lane if lane in LANES else OTHER, kind, text,
                                   detail=_short_json(rest) if rest else ""))
        return found


# Sources with their own epoch stamps first: they give the serial log its date.
SOURCES: dict[str, type[EventSource]] = {
    "tap trace": TapTraceSource,
    "extra events": ExtraEventsSource,
    "serial log": SerialLogSource,
}


def build_timeline(run_dir: Path, quotes: Mapping[str, Sequence[str]] | None = None) -> Timeline:
    """Read every source in ``run_dir``; ``quotes`` maps a spec item to the serial lines its
    failure quoted, which get highlighted."""
    events: list[Event] = []
    omitted = 0
    for source_class in SOURCES.values():
        source = source_class()
        reference = max((e.time for e in events), default=None)
        events.extend(source.events(run_dir, reference))
        if isinstance(source, SerialLogSource):
            omitted = source.omitted
    events.sort(key=lambda e: e.time)
    if quotes:
        events = _highlight(events, quotes)
    return Timeline(run_dir, events, omitted_lines=omitted)


def _fault_text(start: Event) -> str:
    """A fault's description from its start event (``start timeout both … : why``)."""
    return start.text.removeprefix(f"{FAULT_START} ")


def quoted_lines(message: str) -> list[str]:
    """The serial lines a check's failure message quotes (its "serial lines that matter")."""
    found: list[str] = []
    inside = False
    for line in message.splitlines():
        stripped = line.strip()
        if stripped == _QUOTED_HEADING:
            inside = True
        elif inside and stripped.startswith(_QUOTED_PREFIX.strip()):
            text = stripped[len(_QUOTED_PREFIX.strip()):].lstrip()
            if text and text != "(no such lines)":
                found.append(text)
        elif inside:
            inside = False
    return found


def _highlight(events: list[Event], quotes: Mapping[str, Sequence[str]]) -> list[Event]:
    by_text: dict[str, list[str]] = {}
    for item, lines in quotes.items():
        for text in lines:
            by_text.setdefault(text.strip(), []).append(item)
    return [replace(e, quoted_by=tuple(sorted(set(by_text[e.text.strip()]))))
            if e.lane == SERIAL and e.text.strip() in by_text else e for e in events]


class _LocalClock:
    """Turns clock-of-day seconds into epoch seconds: the last stamp goes on the day that
    puts it nearest ``reference`` (another witness's time, or the file's mtime, both taken
    near the run's end), and earlier stamps step back from it, across midnight if need be."""

    def __init__(self, reference: float) -> None:
        self.reference = reference

    def resolve(self, seconds_of_day: Sequence[float]) -> list[float]:
        if not seconds_of_day:
            return []
        local = time.localtime(self.reference)
        midnight = time.mktime((local.tm_year, local.tm_mon, local.tm_mday, 0, 0, 0, 0, 0, -1))
        last = midnight + seconds_of_day[-1]
        last += 86400 * round((self.reference - last) / 86400)
        out = [last]
        for later, earlier in zip(reversed(seconds_of_day), reversed(seconds_of_day[:-1]),
                                  strict=False):
            out.append(out[-1] - (later - earlier) % 86400)
        return out[::-1]


def _json_lines(path: Path) -> Iterable[dict[str, Any]]:
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line cut short by a crash: the rest still tells the story
            if isinstance(record, dict):
                yield record


def _tap_events(records: Iterable[dict[str, Any]]) -> Iterable[Event]:
    for record in records:
        stamp = record.get("time")
        if not isinstance(stamp, int | float):
            continue
        kind = str(record.get("kind", "event"))
        conn = record.get("conn")
        detail = str(record.get("detail") or "")
        fields = record.get("fields") if isinstance(record.get("fields"), dict) else {}
        assert isinstance(fields, dict)
        where = f"#{conn} " if conn is not None else ""
        if kind == "packet":
            direction = str(record.get("dir", ""))
            text = packet_text(str(record.get("type")), fields)
            if detail:  # e.g. "swallowed (timeout)": seen by the tap, dropped by a fault
                text = f"{text} [{detail}]"
            yield Event(float(stamp), WIRE, kind, text, direction=direction,
                        detail=_short_json(fields))
        elif kind == "sni":
            yield Event(float(stamp), TLS, kind, f"{where}ClientHello, SNI {detail!r}")
        elif kind == "tls_error":
            yield Event(float(stamp), TLS, kind, f"{where}TLS handshake failed: {detail}")
        elif kind == "open":
            yield Event(float(stamp), TLS, kind, f"{where}connection opened {detail}".rstrip())
        elif kind == "close":
            yield Event(float(stamp), TLS, kind, f"{where}connection closed: {detail}")
        elif kind == RecordKind.FAULT:
            phase = str(fields.get("phase", ""))
            # A fault's identity: every field but its phase (start and end share them).
            identity = " ".join([str(fields.get("fault", "fault")),
                                 _short_json({k: v for k, v in fields.items() if k != "phase"})])
            # conn 0: the injector's own records, which belong to no connection.
            yield Event(float(stamp), FAULT, kind, f"{where if conn else ''}"
                        f"{detail or _short_json(fields)}", detail=_short_json(fields),
                        fault=identity, phase=phase)
        elif kind == "decode_error":
            yield Event(float(stamp), WIRE, kind, f"{where}undecodable bytes: {detail}",
                        direction=str(record.get("dir", "")))
        else:  # whatever the tap learns to record next
            text = detail or _short_json(fields) or kind
            yield Event(float(stamp), OTHER, kind, f"{where}{kind}: {text}",
                        detail=_short_json(fields) if fields and detail else "")


def packet_text(packet_type: str, fields: dict[str, Any]) -> str:
    """One readable line per MQTT packet."""
    if packet_type == PacketType.CONNECT:
        password = (f", password ({fields.get('password_length', '?')} bytes)"
                    if fields.get("password_present") else "")
        return (f"CONNECT client id {fields.get('client_id')!r}, user {fields.get('username')!r}"
                f"{password}, keepalive {fields.get('keepalive')}, MQTT level "
                f"{fields.get('protocol_level')}, clean {fields.get('clean_session')}")
    if packet_type == PacketType.CONNACK:
        return f"CONNACK {fields.get('return_code')} ({fields.get('return_text', '')})"
    if packet_type == PacketType.PUBLISH:
        flags = f"QoS {fields.get('qos', 0)}" + (", retained" if fields.get("retain") else "")
        return f"PUBLISH {fields.get('topic')!r} {_payload(fields.get('payload'))} ({flags})"
    if packet_type == PacketType.SUBSCRIBE:
        topics = ", ".join(f"{t.get('filter')!r} QoS {t.get('qos')}"
                           for t in fields.get("topics", []) if isinstance(t, dict))
        return f"SUBSCRIBE {topics}"
    if packet_type == PacketType.SUBACK:
        return f"SUBACK {fields.get('return_codes')}"
    shown = {k: v for k, v in fields.items() if v not in (None, False)}
    return f"{packet_type} {_short_json(shown)}" if shown else packet_type


def _payload(payload: object) -> str:
    if isinstance(payload, dict) and "hex" in payload:
        return f"<{len(str(payload['hex'])) // 2} bytes>"
    text = str(payload)
    return repr(text if len(text) <= 120 else text[:117] + "...")


def _short_json(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 600 else text[:597] + "..."
