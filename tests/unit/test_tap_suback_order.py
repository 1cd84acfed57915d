"""The tap's retained-before-SUBACK mode (MQTT 3.1.1 §3.8.4 allows a broker to send
matching PUBLISHes before the SUBACK): the order a raw client sees changes, nothing else."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import pytest

from harness.broker import AmqttBroker, Observer, Tap
from harness.broker.mqtt_codec import MqttPacket, StreamDecoder

pytestmark = pytest.mark.unit

TOPIC = "order/retained"


def _utf8(text: str) -> bytes:
    return struct.pack("!H", len(text)) + text.encode()


def _frame(first: int, body: bytes) -> bytes:
    assert len(body) < 128
    return bytes([first, len(body)]) + body


CONNECT = _frame(0x10, _utf8("MQTT") + b"\x04\x02\x00\x00" + _utf8("raw-client"))
SUBSCRIBE = _frame(0x82, b"\x00\x01" + _utf8(TOPIC) + b"\x00")


@pytest.fixture(scope="module")
def broker() -> Iterator[AmqttBroker]:
    with AmqttBroker() as running, Observer(running.host, running.port) as observer:
        observer.publish(TOPIC, "retained-hello", retain=True)
        yield running


def _first_packets(port: int, count: int) -> list[str]:
    decoder = StreamDecoder()
    seen: list[str] = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(CONNECT + SUBSCRIBE)
        while len(seen) < count:
            data = raw.recv(4096)
            assert data, f"connection closed after {seen}"
            seen += [p.type for p in decoder.feed(data) if isinstance(p, MqttPacket)]
    return seen[:count]


def test_plain_tap_keeps_the_brokers_order(broker: AmqttBroker) -> None:
    with Tap((broker.host, broker.port)) as tap:
        assert _first_packets(tap.port, 3) == ["CONNACK", "SUBACK", "PUBLISH"]


def test_reordering_tap_delivers_the_retained_publish_before_suback(broker: AmqttBroker) -> None:
    with Tap((broker.host, broker.port), retained_before_suback=True) as tap:
        assert _first_packets(tap.port, 3) == ["CONNACK", "PUBLISH", "SUBACK"]
        # The record keeps the broker's own order: the tap decodes before it reorders.
        assert [r.packet_type for r in tap.packets(direction="b2c")][:3] == [
            "CONNACK", "SUBACK", "PUBLISH"]


def test_reordering_tap_releases_suback_when_nothing_is_retained(broker: AmqttBroker) -> None:
    with Tap((broker.host, broker.port), retained_before_suback=True) as tap:
        decoder = StreamDecoder()
        with socket.create_connection(("127.0.0.1", tap.port), timeout=10) as raw:
            raw.sendall(CONNECT + _frame(0x82, b"\x00\x01" + _utf8("order/empty") + b"\x00"))
            seen: list[str] = []
            while len(seen) < 2:
                seen += [p.type for p in decoder.feed(raw.recv(4096))
                         if isinstance(p, MqttPacket)]
        assert seen == ["CONNACK", "SUBACK"]
