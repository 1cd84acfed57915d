"""The TLS/SNI front and wire tap with unmodified paho-mqtt clients, over both brokers.

CPython sends no SNI when it connects to an IP literal, so ``127.0.0.1`` is the
no-SNI client and ``localhost`` the client that offers SNI.
"""

from __future__ import annotations

import asyncio
import gc
import json
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt import client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from harness.broker import Broker, Observer, Tap, TapTls, TestPki, open_broker
from harness.broker.mosquitto_broker import INSTALL_HINT, find_mosquitto
from harness.deadline import Deadline
from harness.errors import BrokerNotInstalled, DeadlineExceeded

pytestmark = [
    pytest.mark.unit,
    # paho leaves the socket of a failed TLS handshake for the garbage collector
    pytest.mark.filterwarnings("ignore:unclosed <ssl.SSLSocket:ResourceWarning"),
]
USER, PASSWORD = "emqx", "public-pw-123"
SNI = "localhost"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return TestPki.create(tmp_path_factory.mktemp("pki"), names=("broker.test", SNI, "127.0.0.1"))


@pytest.fixture(scope="module", params=["amqtt", "mosquitto"])
def broker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Broker]:
    if request.param == "mosquitto":
        try:
            find_mosquitto()
        except BrokerNotInstalled:
            pytest.skip(f"mosquitto is not installed; {INSTALL_HINT}")
    workdir = tmp_path_factory.mktemp(request.param)
    with open_broker(request.param, users={USER: PASSWORD}, workdir=workdir) as running:
        yield running


def start_tap(broker: Broker, pki: TestPki, tmp_path: Path, cert: str = "server",
              require_sni: str | None = SNI) -> Tap:  # fmt: skip
    return Tap((broker.host, broker.port), TapTls(pki.cert(cert), require_sni=require_sni),
               record_path=tmp_path / "tap.jsonl", secrets=[PASSWORD]).start()  # fmt: skip


class TlsClient:
    """An unmodified paho client over TLS, trusting the test CA."""

    def __init__(self, pki: TestPki, client_id: str, password: str = PASSWORD,
                 keepalive: int = 30) -> None:  # fmt: skip
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv311)  # fmt: skip
        self.client.username_pw_set(USER, password)
        self.client.tls_set(ca_certs=str(pki.ca_pem))
        self.keepalive = keepalive
        self.connack: Any = None
        self.connected = threading.Event()
        self.client.on_connect = self._on_connect

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connack = reason
        self.connected.set()

    def connect(self, host: str, port: int, timeout: float = 10.0) -> Any:
        self.client.connect(host, port, keepalive=self.keepalive)
        self.client.loop_start()
        if not self.connected.wait(Deadline(timeout, "CONNACK").remaining()):
            raise AssertionError("no CONNACK")
        return self.connack

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_sni_client_connects_and_every_packet_field_is_recorded(
    broker: Broker, pki: TestPki, tmp_path: Path
) -> None:
    tap = start_tap(broker, pki, tmp_path)
    try:
        client = TlsClient(pki, "micropython-client-42", keepalive=1)
        client.client.will_set("dev/status", b"offline", qos=1, retain=True)
        assert client.connect(SNI, tap.port) == 0
        client.client.subscribe("dev/echo", qos=0)
        client.client.publish("dev/echo", b'{"msg": 0}', qos=0, retain=False)
        tap.wait_for(lambda r: r.is_packet("PUBLISH", "b2c"), 10, "the echo PUBLISH")
        tap.wait_for(lambda r: r.is_packet("PINGRESP", "b2c"), 10, "PINGRESP after keepalive 1 s")
        client.close()
        tap.wait_for(lambda r: r.kind == "close", 10, "the connection close")
    finally:
        tap.stop()

    [conn] = tap.connections()
    assert conn.sni == SNI and conn.tls_error is None and conn.closed
    connect = conn.packets_of("CONNECT", "c2b")[0].fields
    assert connect["protocol_level"] == 4 and connect["protocol_name"] == "MQTT"
    assert connect["client_id"] == "micropython-client-42" and connect["username"] == USER
    assert connect["password_present"] is True and connect["password_length"] == len(PASSWORD)
    assert connect["clean_session"] is True and connect["keepalive"] == 1
    assert (connect["will_topic"], connect["will_message"]) == ("dev/status", b"offline")
    assert connect["will_qos"] == 1 and connect["will_retain"] is True
    assert conn.packets_of("CONNACK", "b2c")[0].fields["return_code"] == 0
    assert conn.packets_of("SUBSCRIBE", "c2b")[0].fields["topics"] == [
        {"filter": "dev/echo", "qos": 0}
    ]
    assert conn.packets_of("SUBACK", "b2c")[0].fields["return_codes"] == [0]
    sent = conn.packets_of("PUBLISH", "c2b")[0].fields
    assert (sent["topic"], sent["payload"], sent["qos"], sent["retain"], sent["dup"]) == (
        "dev/echo", b'{"msg": 0}', 0, False, False,
    )  # fmt: skip
    assert conn.packets_of("PINGREQ", "c2b") and conn.packets_of("DISCONNECT", "c2b")
    kinds = [r.kind for r in tap.records()]
    assert kinds[:3] == ["open", "sni", "packet"] and kinds[-1] == "close"
    times = [r.mono_time for r in tap.records()]
    assert times == sorted(times)

    lines = [json.loads(line) for line in (tmp_path / "tap.jsonl").read_text().splitlines()]
    assert [line["seq"] for line in lines] == [r.seq for r in tap.records()]
    connect_line = next(line for line in lines if line.get("type") == "CONNECT")
    assert connect_line["fields"]["client_id"] == "micropython-client-42"
    assert connect_line["dir"] == "c2b" and isinstance(connect_line["time"], float)
    assert PASSWORD not in (tmp_path / "tap.jsonl").read_text()


def test_client_without_sni_is_refused_when_sni_is_required(
    broker: Broker, pki: TestPki, tmp_path: Path
) -> None:
    tap = start_tap(broker, pki, tmp_path)
    try:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            TlsClient(pki, "no-sni").connect("127.0.0.1", tap.port)
        tap.wait_for(lambda r: r.kind == "close", 10, "the refused connection to close")
    finally:
        tap.stop()
    [conn] = tap.connections()
    assert conn.sni is None and conn.sni_seen and conn.tls_error == "no SNI"
    assert conn.packets == []  # no CONNECT got through


def test_client_with_a_wrong_sni_is_refused(broker: Broker, pki: TestPki, tmp_path: Path) -> None:
    tap = start_tap(broker, pki, tmp_path, require_sni="broker.test")
    try:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            TlsClient(pki, "wrong-sni").connect(SNI, tap.port)
        tap.wait_for(lambda r: r.kind == "close", 10, "the refused connection to close")
    finally:
        tap.stop()
    [conn] = tap.connections()
    assert conn.tls_error == "unknown SNI 'localhost'" and conn.packets == []


def test_without_required_sni_an_ip_client_connects_and_no_sni_is_recorded(
    broker: Broker, pki: TestPki, tmp_path: Path
) -> None:
    tap = start_tap(broker, pki, tmp_path, require_sni=None)
    try:
        client = TlsClient(pki, "ip-client")
        assert client.connect("127.0.0.1", tap.port) == 0
        client.close()
    finally:
        tap.stop()
    [conn] = tap.connections()
    assert conn.sni is None and conn.tls_error is None and conn.tls_version is not None
    assert conn.packets_of("CONNECT")[0].fields["client_id"] == "ip-client"


@pytest.mark.parametrize(
    ("cert", "client_error", "tap_error"),
    [
        ("untrusted", "unable to get local issuer certificate", "unknown ca"),
        ("wrong_host", "Hostname mismatch", "bad certificate"),
        ("expired", "certificate has expired", "certificate expired"),
    ],
)
def test_client_refuses_a_bad_certificate_and_no_connect_reaches_the_broker(
    broker: Broker, pki: TestPki, tmp_path: Path, cert: str, client_error: str, tap_error: str
) -> None:
    tap = start_tap(broker, pki, tmp_path, cert=cert)
    try:
        with pytest.raises(ssl.SSLCertVerificationError, match=client_error):
            TlsClient(pki, f"refuses-{cert}").connect(SNI, tap.port)
        tap.wait_for(lambda r: r.kind == "close", 10, "the refused connection to close")
    finally:
        tap.stop()
    [conn] = tap.connections()
    assert conn.sni == SNI and conn.tls_error == tap_error and conn.packets == []
    assert not [e for e in broker.events() if e.client_id == f"refuses-{cert}"]


def test_wrong_password_through_the_tap_shows_connack_5(
    broker: Broker, pki: TestPki, tmp_path: Path
) -> None:
    tap = start_tap(broker, pki, tmp_path)
    try:
        client = TlsClient(pki, "bad-password", password="wrong")
        assert str(client.connect(SNI, tap.port)) == "Not authorized"
        client.close()
        connack = tap.wait_for(lambda r: r.is_packet("CONNACK"), 10, "CONNACK")
    finally:
        tap.stop()
    assert connack.fields["return_code"] == 5 and connack.fields["return_text"] == "not authorized"
    assert connack.direction == "b2c"


def test_observer_through_the_tap_with_sni_and_retained_message(
    broker: Broker, pki: TestPki, tmp_path: Path
) -> None:
    tap = start_tap(broker, pki, tmp_path)
    try:
        with Observer("127.0.0.1", tap.port, ca_file=pki.ca_pem, server_hostname=SNI,
                      username=USER, password=PASSWORD) as publisher:  # fmt: skip
            publisher.publish("keep/t", "retained-hello", qos=1, retain=True)
            with Observer("127.0.0.1", tap.port, ca_file=pki.ca_pem, server_hostname=SNI,
                          username=USER, password=PASSWORD) as late:  # fmt: skip
                late.subscribe("keep/t")
                [message] = late.wait_for_messages(1, "keep/t")
            publisher.clear_retained("keep/t")
    finally:
        tap.stop()
    assert message.text == "retained-hello" and message.retain is True
    assert all(c.sni == SNI for c in tap.connections())
    retained = [r for r in tap.packets("PUBLISH", "c2b") if r.fields["retain"]]
    assert [r.fields["payload"] for r in retained] == [b"retained-hello", b""]


def test_wait_for_times_out_with_what_was_awaited_and_the_last_record(
    broker: Broker, pki: TestPki, tmp_path: Path
) -> None:
    tap = start_tap(broker, pki, tmp_path)
    try:
        client = TlsClient(pki, "quiet")
        client.connect(SNI, tap.port)
        with pytest.raises(DeadlineExceeded, match=r"0.3 s waiting for a SUBSCRIBE.*last seen: #1"):
            tap.wait_for(lambda r: r.is_packet("SUBSCRIBE"), 0.3, "a SUBSCRIBE")
        client.close()
    finally:
        tap.stop()


def test_a_client_gone_before_the_handshake_returns_is_closed_without_a_broken_writer(
    broker: Broker, pki: TestPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CPython 3.11's start_tls returns None when the client leaves between the end of the
    handshake and the coroutine's resumption (a race seen in CI); the tap must end that
    connection cleanly, and the writer must not raise when it is collected."""
    real_start_tls = asyncio.BaseEventLoop.start_tls

    async def start_tls_losing_the_client(self: Any, transport: Any, *args: Any,
                                          **kwargs: Any) -> Any:  # fmt: skip
        tls_transport = await real_start_tls(self, transport, *args, **kwargs)
        if tls_transport is not None:
            tls_transport.abort()
        return None  # what 3.11 returns once connection_lost ran first

    monkeypatch.setattr(asyncio.BaseEventLoop, "start_tls", start_tls_losing_the_client)
    tap = start_tap(broker, pki, tmp_path, require_sni=None)
    try:
        with pytest.raises((ssl.SSLError, ConnectionError, AssertionError)):
            TlsClient(pki, "gone-early").connect("127.0.0.1", tap.port, timeout=3)
        tap.wait_for(lambda r: r.kind == "close", 10, "the lost connection to close")
    finally:
        tap.stop()
    gc.collect()  # a writer left without a transport raises here (an unraisable error)
    connections = tap.connections()  # paho's loop may have retried
    assert connections and all(
        conn.close_reason == "client closed the connection right after the TLS handshake"
        and conn.packets == [] for conn in connections), connections
