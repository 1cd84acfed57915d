"""The tap without TLS: garbage and truncated frames are recorded, never fatal; an
unreachable broker; and the bind/cert errors as one clear line. (Its faults:
test_faults_tap.py.)"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.broker import AmqttBroker, Observer, Tap, TapTls, TestPki
from harness.broker.base import pick_free_port
from harness.errors import PkiError, PortInUse

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def broker() -> Iterator[AmqttBroker]:
    with AmqttBroker() as running:
        yield running


@pytest.fixture
def tap(broker: AmqttBroker) -> Iterator[Tap]:
    with Tap((broker.host, broker.port)) as running:
        yield running


def _send_raw(port: int, data: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        raw.sendall(data)


def test_garbage_is_recorded_as_a_decode_error_and_the_tap_keeps_serving(tap: Tap) -> None:
    _send_raw(tap.port, b"GET / HTTP/1.1\r\n\r\n")
    problem = tap.wait_for(lambda r: r.kind == "decode_error", 10, "a decode error")
    assert problem.direction == "c2b" and "invalid fixed-header flags" in problem.detail  # "G"
    tap.wait_for(lambda r: r.kind == "close" and r.conn == problem.conn, 10, "the close")
    with Observer("127.0.0.1", tap.port) as observer:  # the next client is served normally
        observer.subscribe("after/garbage")
    assert tap.packets("SUBACK", "b2c")


def test_truncated_packet_is_recorded_when_the_client_hangs_up(tap: Tap) -> None:
    _send_raw(tap.port, b"\x10\x20\x00\x04MQ")  # CONNECT declaring 32 bytes, 6 sent
    problem = tap.wait_for(lambda r: r.kind == "decode_error", 10, "a truncation error")
    assert "closed inside a packet" in problem.detail
    assert tap.packets() == []


def test_unreachable_broker_is_the_close_reason(tmp_path: Path) -> None:
    dead_port = pick_free_port("127.0.0.1")
    with Tap(("127.0.0.1", dead_port)) as orphan:
        _send_raw(orphan.port, b"\xc0\x00")
        closed = orphan.wait_for(lambda r: r.kind == "close", 10, "the close")
    assert f"broker 127.0.0.1:{dead_port} unreachable" in closed.detail


def test_clear_forgets_records(tap: Tap) -> None:
    _send_raw(tap.port, b"\xc0\x00")
    tap.wait_for(lambda r: r.kind == "close", 10, "the close")
    tap.clear()
    assert tap.records() == [] and tap.connections() == []


def test_port_in_use_is_one_clear_line(broker: AmqttBroker) -> None:
    with pytest.raises(
        PortInUse, match=rf"port {broker.port} on 127.0.0.1 is already in use"
    ) as info:
        Tap((broker.host, broker.port), listen_port=broker.port).start()
    assert "\n" not in str(info.value)


def test_missing_certificate_is_one_clear_line(broker: AmqttBroker, tmp_path: Path) -> None:
    pki = TestPki.create(tmp_path)
    pki.server.chain_pem.unlink()
    with pytest.raises(PkiError, match=r"server certificate file .* does not exist"):
        Tap((broker.host, broker.port), TapTls(pki.server)).start()


def test_garbage_key_is_one_clear_line(broker: AmqttBroker, tmp_path: Path) -> None:
    pki = TestPki.create(tmp_path)
    pki.server.key_pem.write_text("not a key")
    with pytest.raises(PkiError, match="cannot load the tap's server certificate/key"):
        Tap((broker.host, broker.port), TapTls(pki.server)).start()
