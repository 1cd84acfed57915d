"""The tap's faults, each against a real amqtt broker and real sockets: a black hole
swallows without closing, reset_peer sends RST, latency/jitter per direction keep order,
bandwidth and slicer pace the stream, a stall holds then delivers, refuse answers CONNACK 3,
no_listener refuses TCP and comes back on the same port, half_open leaves PINGREQ
unanswered, and every start and end is a record in the trace next to the packets."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.broker import AmqttBroker, Observer, Tap
from harness.faults import (
    AfterEchoes,
    AtTime,
    Direction,
    Fault,
    FaultInjector,
    FaultKind,
    FaultSchedule,
)
from harness.wire import RecordKind

pytestmark = pytest.mark.unit

CONNECT = bytes([0x10, 0x10, 0x00, 0x04]) + b"MQTT" + bytes([0x04, 0x02, 0x00, 0x05,
                                                              0x00, 0x04]) + b"raw1"
PINGREQ, PINGRESP = b"\xc0\x00", b"\xd0\x00"


@pytest.fixture(scope="module")
def broker() -> Iterator[AmqttBroker]:
    with AmqttBroker() as running:
        yield running


@pytest.fixture
def tap(broker: AmqttBroker, tmp_path: Path) -> Iterator[Tap]:
    with Tap((broker.host, broker.port), record_path=tmp_path / "tap.jsonl") as running:
        yield running


@pytest.fixture
def injector(tap: Tap, broker: AmqttBroker) -> FaultInjector:
    return FaultInjector(tap, broker)


def _raw_client(port: int) -> socket.socket:
    """A raw MQTT connection through the tap, CONNACK 0 read."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(CONNECT)
    assert _read(sock, 4) == b"\x20\x02\x00\x00"
    return sock


def _read(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _round_trip(observer: Observer, topic: str, payload: str) -> float:
    began = time.monotonic()
    count = len(observer.messages(topic))
    observer.publish(topic, payload)
    observer.wait_for_messages(count + 1, topic, timeout=15)
    return time.monotonic() - began


def test_black_hole_swallows_both_ways_without_closing(tap: Tap, injector: FaultInjector
                                                       ) -> None:
    sock = _raw_client(tap.port)
    with sock:
        started = injector.start(Fault.black_hole(AtTime(0)))
        sock.sendall(PINGREQ)
        sock.settimeout(1.0)
        with pytest.raises(TimeoutError):
            sock.recv(1)  # no PINGRESP, and no FIN or RST either
        assert tap.live_connections() == 1
        injector.end(started)
        sock.sendall(PINGREQ)  # after the fault the same connection carries bytes again
        sock.settimeout(5.0)
        assert _read(sock, 2) == PINGRESP
    swallowed = [r for r in tap.packets("PINGREQ") if r.detail == "swallowed (timeout)"]
    assert len(swallowed) == 1 and len(tap.packets("PINGREQ")) == 2


def test_black_hole_takes_only_live_connections_unless_asked(tap: Tap,
                                                             injector: FaultInjector) -> None:
    old = _raw_client(tap.port)
    started = injector.start(Fault.black_hole(AtTime(0)))
    try:
        with _raw_client(tap.port) as new:  # a dead NAT forgets the old mapping only
            new.sendall(PINGREQ)
            assert _read(new, 2) == PINGRESP
    finally:
        injector.end(started)
        old.close()


def test_reset_peer_resets_live_and_new_connections(tap: Tap, injector: FaultInjector) -> None:
    sock = _raw_client(tap.port)
    started = injector.start(Fault.hard_reset(AtTime(0)))
    with sock, pytest.raises(ConnectionResetError):
        sock.settimeout(5)
        sock.recv(1)
    # A new connection is reset at once: in connect() itself, or at the first send/recv.
    with (pytest.raises(ConnectionResetError),
          socket.create_connection(("127.0.0.1", tap.port), timeout=5) as late):
        late.settimeout(5)
        late.sendall(CONNECT)
        late.recv(1)
    injector.end(started)
    with _raw_client(tap.port):
        pass
    assert any("RST" in (c.close_reason or "") for c in tap.connections())


@pytest.mark.parametrize(("direction", "low"), [(Direction.UPSTREAM, 0.4),
                                                (Direction.DOWNSTREAM, 0.4),
                                                (Direction.BOTH, 0.8)])
def test_latency_acts_per_direction(tap: Tap, injector: FaultInjector, direction: Direction,
                                    low: float) -> None:
    with Observer("127.0.0.1", tap.port) as observer:
        observer.subscribe("lat/t")
        baseline = _round_trip(observer, "lat/t", "before")
        started = injector.start(Fault.latency(AtTime(0), 0.4, direction=direction))
        slow = _round_trip(observer, "lat/t", "during")
        injector.end(started)
    assert low <= slow < low + 0.4 + baseline, (slow, baseline)


def test_jitter_never_reorders_the_stream(tap: Tap, injector: FaultInjector) -> None:
    with Observer("127.0.0.1", tap.port) as observer:
        observer.subscribe("jit/t")
        injector.start(Fault.latency(AtTime(0), 0.05, jitter_s=0.05,
                                     direction=Direction.UPSTREAM))
        for n in range(30):
            observer.publish("jit/t", str(n))
        got = observer.wait_for_messages(30, "jit/t", timeout=15)
    assert [m.text for m in got] == [str(n) for n in range(30)]


def test_bandwidth_paces_bytes(tap: Tap, injector: FaultInjector) -> None:
    with Observer("127.0.0.1", tap.port) as observer:
        observer.subscribe("bw/t")
        injector.start(Fault(FaultKind.BANDWIDTH, rate_bps=20_000,
                             direction=Direction.DOWNSTREAM))
        elapsed = _round_trip(observer, "bw/t", "x" * 20_000)
    assert 0.9 <= elapsed < 4.0


def test_slicer_delivers_in_slices(tap: Tap, injector: FaultInjector) -> None:
    with Observer("127.0.0.1", tap.port) as observer:
        observer.subscribe("sl/t")
        injector.start(Fault(FaultKind.SLICER, slice_bytes=10, slice_delay_s=0.05,
                             direction=Direction.DOWNSTREAM))
        elapsed = _round_trip(observer, "sl/t", "y" * 200)  # ~21 slices, 20 pauses
    assert 0.9 <= elapsed < 4.0


def test_stall_holds_bytes_then_delivers_them(tap: Tap, injector: FaultInjector) -> None:
    with Observer("127.0.0.1", tap.port) as observer:
        observer.subscribe("st/t")
        started = injector.start(Fault(FaultKind.STALL))
        observer.publish("st/t", "held")
        time.sleep(0.6)
        assert observer.messages("st/t") == []
        injector.end(started)
        assert observer.wait_for_messages(1, "st/t", timeout=5)[0].text == "held"


def test_refuse_answers_connack_3_and_records_it(tap: Tap, injector: FaultInjector) -> None:
    injector.start(Fault(FaultKind.REFUSE))
    with socket.create_connection(("127.0.0.1", tap.port), timeout=5) as sock:
        sock.sendall(CONNECT)
        assert _read(sock, 4) == b"\x20\x02\x00\x03"
        assert sock.recv(1) == b""  # then closed
    assert [p.fields["return_code"] for p in tap.packets("CONNACK", "b2c")] == [3]
    assert tap.packets("CONNECT", "c2b")[0].fields["client_id"] == "raw1"


def test_no_listener_refuses_tcp_then_listens_on_the_same_port(tap: Tap,
                                                               injector: FaultInjector) -> None:
    port = tap.port
    live = _raw_client(port)
    started = injector.start(Fault(FaultKind.NO_LISTENER))
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)
    with socket.socket() as thief, pytest.raises(OSError, match="in use"):
        thief.bind(("127.0.0.1", port))  # the port stays the tap's while nothing listens
    live.sendall(PINGREQ)  # what was connected stays connected
    assert _read(live, 2) == PINGRESP
    injector.end(started)
    with _raw_client(port):
        pass
    live.close()


def test_half_open_leaves_pingreq_unanswered_but_keeps_the_socket(
        tap: Tap, injector: FaultInjector) -> None:
    with _raw_client(tap.port) as sock:
        injector.start(Fault(FaultKind.HALF_OPEN))
        sock.sendall(PINGREQ)
        sock.settimeout(1.0)
        with pytest.raises(TimeoutError):
            sock.recv(1)
        assert tap.live_connections() == 1
    assert tap.packets("PINGREQ")[0].detail == "swallowed (half_open)"


def test_schedule_fires_after_the_nth_echo_and_records_start_and_end(
        tap: Tap, injector: FaultInjector, tmp_path: Path) -> None:
    fault = Fault.black_hole(AfterEchoes(2), duration_s=0.5)
    with Observer("127.0.0.1", tap.port) as device:  # plays a device echoing {"msg": n}
        device.subscribe("echo/t")
        schedule = FaultSchedule(injector, [fault])
        tap.add_listener(schedule.on_record)
        with schedule:
            for n in range(2):
                device.publish("echo/t", json.dumps({"msg": n}))
            device.wait_for_messages(2, "echo/t", timeout=5)
            events = tap.wait_for(lambda r: r.kind == RecordKind.FAULT and "end" in r.detail, 5,
                                  "the fault to end")
    marks = [r for r in tap.records() if r.kind == RecordKind.FAULT]
    assert [r.fields["phase"] for r in marks] == ["start", "end"]
    assert marks[0].fields["trigger"] == "after echo #2"
    assert 0.45 <= marks[1].mono_time - marks[0].mono_time < 1.5
    second_echo = [r for r in tap.packets("PUBLISH", "b2c")][1]
    assert 0 <= marks[0].mono_time - second_echo.mono_time < 0.2  # on cue
    assert events.seq > second_echo.seq
    trace = [json.loads(line) for line in (tmp_path / "tap.jsonl").read_text().splitlines()]
    assert [t["fields"]["phase"] for t in trace if t["kind"] == "fault"] == ["start", "end"]


def test_echoes_on_another_topic_do_not_count(tap: Tap, injector: FaultInjector) -> None:
    """Messages for an earlier run's topic (queued for a session of the same client id)
    are not this run's echoes: the fault waits for the run's own."""
    fault = Fault.black_hole(AfterEchoes(2), duration_s=0.2)
    with Observer("127.0.0.1", tap.port) as device:
        device.subscribe("run/1")
        device.subscribe("run/2")
        schedule = FaultSchedule(injector, [fault], topic="run/2")
        tap.add_listener(schedule.on_record)
        with schedule:
            for n in range(3):
                device.publish("run/1", json.dumps({"msg": n}))
            device.wait_for_messages(3, "run/1", timeout=5)
            assert not [r for r in tap.records() if r.kind == RecordKind.FAULT]
            for n in range(2):
                device.publish("run/2", json.dumps({"msg": n}))
            start = tap.wait_for(lambda r: r.kind == RecordKind.FAULT, 5, "the fault")
    assert start.fields["trigger"] == "after echo #2"
    echoes = [r for r in tap.packets("PUBLISH", "b2c") if r.fields["topic"] == "run/2"]
    assert start.seq > echoes[1].seq


def test_schedule_at_time(tap: Tap, injector: FaultInjector) -> None:
    began = time.monotonic()
    with FaultSchedule(injector, [Fault(FaultKind.REFUSE, AtTime(0.3), duration_s=0.2)]):
        start = tap.wait_for(lambda r: r.kind == RecordKind.FAULT, 5, "the start")
        tap.wait_for(lambda r: r.kind == RecordKind.FAULT and r.fields["phase"] == "end", 5, "end")
    assert 0.28 <= start.mono_time - began < 0.8


def test_closing_the_schedule_ends_what_is_still_active(tap: Tap,
                                                        injector: FaultInjector) -> None:
    with FaultSchedule(injector, [Fault(FaultKind.NO_LISTENER)]):
        tap.wait_for(lambda r: r.kind == RecordKind.FAULT, 5, "the start")
    ends = [e for e in injector.events if e.phase == "end"]
    assert ends and ends[0].detail == "the run ended"
    with _raw_client(tap.port):
        pass


def test_bad_fault_parameters_are_one_clear_line() -> None:
    with pytest.raises(ValueError, match="latency: give latency_s > 0"):
        Fault(FaultKind.LATENCY)
    with pytest.raises(ValueError, match="give duration_s"):
        Fault(FaultKind.WIFI_DROP)
    with pytest.raises(ValueError, match="counts from 1"):
        Fault(FaultKind.TIMEOUT, AfterEchoes(0))


def test_faults_and_swallowed_packets_show_on_the_report_timeline(
        tap: Tap, injector: FaultInjector, tmp_path: Path) -> None:
    from harness.report.timeline import FAULT, WIRE, build_timeline

    with _raw_client(tap.port) as sock:
        started = injector.start(Fault.black_hole(AtTime(0)), "on cue")
        sock.sendall(PINGREQ)
        tap.wait_for(lambda r: r.is_packet("PINGREQ"), 5, "the swallowed PINGREQ")
        injector.end(started)
    timeline = build_timeline(tmp_path)
    events = timeline.events
    faults = [e.text for e in events if e.lane == FAULT]
    assert faults == ["start timeout both at t=0 s until the end of the run: on cue",
                      "end timeout both at t=0 s until the end of the run"]
    [span] = timeline.faults  # the start and the end are one fault, active in between
    assert (span.name, span.text) == ("timeout", faults[0].removeprefix("start "))
    swallowed = next(e for e in events if "PINGREQ" in e.text)
    assert span.start <= swallowed.time <= span.end
    assert any(e.lane == WIRE and "PINGREQ" in e.text and "[swallowed (timeout)]" in e.text
               for e in events)
