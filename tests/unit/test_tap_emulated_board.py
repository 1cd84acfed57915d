"""umqtt.simple on the emulated ESP32 (real MicroPython + mbedTLS) through the TLS/SNI
front: SNI is recorded and CONNECT decoded; without SNI the handshake is refused; wrong
credentials get CONNACK 5 (``MQTTException(5)`` on the board)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.broker import AmqttBroker, Observer, Tap, TapTls, TestPki
from harness.deadline import Deadline
from harness.emulator import EmulatedBoard

pytestmark = pytest.mark.unit
SERVER = "broker.test"

# A short device program in the seed's style (umqtt.simple 1.3.4: ssl=True + ssl_params).
PROGRAM = """
import machine, network, time, ussl
from umqtt.simple import MQTTClient
machine.RTC().datetime({now})  # v1.22 checks certificate dates: set the clock first
wlan = network.WLAN(network.STA_IF)
wlan.active(True)
wlan.connect("hil-ap", "hil-password")
while not wlan.isconnected():
    time.sleep(0.1)
# MicroPython refuses CERT_REQUIRED without server_hostname, so a device that sends no
# SNI is one that also skips verification.
params = {{"cert_reqs": ussl.CERT_NONE}}
if {sni!r}:
    params = {{"cert_reqs": ussl.CERT_REQUIRED, "cadata": open("ca.pem", "rb").read(),
              "server_hostname": {sni!r}}}
client = MQTTClient("micropython-client-7", {server!r}, port={port}, user="emqx",
                    password={password!r}, keepalive=0, ssl=True, ssl_params=params)
try:
    client.connect()
    print("CONNECTED")
    client.publish(b"dev/t", b'{{"msg": 0}}')
    client.disconnect()
    print("RESULT OK")
except Exception as exc:
    print("RESULT FAILED", repr(exc))
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return TestPki.create(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def broker() -> Iterator[AmqttBroker]:
    with AmqttBroker(users={"emqx": "public"}) as running:
        yield running


@pytest.fixture
def tap(broker: AmqttBroker, pki: TestPki) -> Iterator[Tap]:
    with Tap((broker.host, broker.port), TapTls(pki.server, require_sni=SERVER)) as running:
        yield running


def rtc_now() -> tuple[int, ...]:
    """Now, in machine.RTC().datetime() form (what ntptime.settime() would set)."""
    now = time.gmtime()
    return (now.tm_year, now.tm_mon, now.tm_mday, now.tm_wday, now.tm_hour, now.tm_min,
            now.tm_sec, 0)


def run_device(tmp_path: Path, pki: TestPki, port: int, *, sni: str | None,
               password: str = "public") -> str:  # fmt: skip
    """Boot a board whose main.py is PROGRAM; the serial output once it reports a result."""
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "ca.pem").write_bytes(pki.ca_pem.read_bytes())
    (flash / "main.py").write_text(
        # Connect by address and name the server only in SNI, so no DNS is involved.
        PROGRAM.format(sni=sni or "", server="127.0.0.1", port=port, password=password,
                       now=rtc_now())
    )
    output = bytearray()
    arrived = threading.Condition()

    class Sink:  # an OutputSink that always has room
        def write(self, data: bytes) -> None:
            with arrived:
                output.extend(data)
                arrived.notify_all()

        def has_room(self) -> bool:
            return True

    board = EmulatedBoard(flash)
    board.add_output_sink(Sink())
    try:
        board.start(timeout=30)
        deadline = Deadline(60, "the device program's RESULT line")
        with arrived:
            while b"RESULT" not in output or not output.rstrip().endswith(b">>>"):
                if deadline.expired:
                    raise deadline.fail(bytes(output[-300:]).decode(errors="replace"))
                arrived.wait(deadline.remaining())
    finally:
        board.stop()
    return output.decode(errors="replace")


def test_umqtt_with_sni_connects_and_the_tap_decodes_it(
    tmp_path: Path, pki: TestPki, tap: Tap, broker: AmqttBroker
) -> None:
    with Observer(broker.host, broker.port, username="emqx", password="public") as observer:
        observer.subscribe("dev/t")
        log = run_device(tmp_path, pki, tap.port, sni=SERVER)
        assert "RESULT OK" in log, log
        assert observer.wait_for_messages(1, "dev/t")[0].text == '{"msg": 0}'
    [conn] = tap.connections()
    assert conn.sni == SERVER and conn.tls_error is None
    connect = conn.packets_of("CONNECT", "c2b")[0].fields
    assert (connect["protocol_level"], connect["client_id"], connect["username"]) == (
        4, "micropython-client-7", "emqx",
    )  # fmt: skip
    assert connect["password_present"] and connect["clean_session"] and connect["keepalive"] == 0
    assert conn.packets_of("CONNACK")[0].fields["return_code"] == 0
    assert conn.packets_of("PUBLISH", "c2b")[0].fields["payload"] == b'{"msg": 0}'


def test_umqtt_without_sni_is_refused(tmp_path: Path, pki: TestPki, tap: Tap) -> None:
    log = run_device(tmp_path, pki, tap.port, sni=None)
    assert "RESULT FAILED" in log and "CONNECTED" not in log, log
    [conn] = tap.connections()
    assert conn.sni is None and conn.tls_error == "no SNI" and conn.packets == [], log


def test_umqtt_with_wrong_password_gets_connack_5(tmp_path: Path, pki: TestPki, tap: Tap) -> None:
    log = run_device(tmp_path, pki, tap.port, sni=SERVER, password="wrong")
    assert "RESULT FAILED MQTTException(5,)" in log, log
    connack = tap.wait_for(lambda r: r.is_packet("CONNACK"), 10, "CONNACK")
    assert connack.fields["return_code"] == 5
