"""device_src/ deployed with unmodified mpremote to the emulated ESP32 and read back over
its serial line with pyserial, as on a real board: the guide's transcript after a hard
reset, and a settings error that leaves the board at the REPL (no reboot loop)."""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial
import trustme

from harness import lifetime
from harness.broker.ntp import NtpMode, NtpServer
from harness.deadline import Deadline
from harness.emulator import AccessPoint, EmulatedBoard, WifiScenario
from tests.unit.test_device_program_rig import DEVICE_SRC, Mosquitto, TlsFront

pytestmark = pytest.mark.unit

TOPIC = "raspberry/mqtt"
WIFI = WifiScenario(access_points=[AccessPoint("lab", "lab-secret", ip="192.168.0.145")],
                    association_delay_s=1.5)


class Console:
    """The board's serial console, read line by line with a deadline per wait."""

    def __init__(self, port: str) -> None:
        self.serial = serial.Serial(port, 115200, timeout=0.1)
        self.text = ""

    def expect(self, pattern: str, seconds: float = 30.0) -> re.Match[str]:
        regex = re.compile(pattern, re.M)
        deadline = Deadline(seconds, f"serial output matching {pattern!r}")
        while True:
            match = regex.search(self.text)
            if match:
                return match
            if deadline.expired:
                raise deadline.fail(self.text[-300:])
            self.text += self.serial.read(4096).decode(errors="replace").replace("\r\n", "\n")

    def close(self) -> None:
        self.serial.close()


@pytest.fixture
def board(tmp_path: Path) -> Iterator[EmulatedBoard]:
    emulated = EmulatedBoard(tmp_path / "flash", profile="v1.22", wifi=WIFI,
                             hosts={"broker.test": "127.0.0.1"})
    emulated.start(timeout=30)
    yield emulated
    emulated.stop()


def deploy(port: str, settings: dict[str, object], tmp_path: Path,
           extra: tuple[Path, ...] = ()) -> None:
    settings_file = tmp_path / "settings.json"
    settings_file.write_text(json.dumps(settings))
    files = [str(path) for path in sorted(DEVICE_SRC.glob("*.py"))] + [str(settings_file)]
    files += [str(path) for path in extra]
    out = lifetime.run([sys.executable, "-m", "mpremote", "connect", port, "cp", *files,
                          ":"], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.mosquitto
def test_transcript_on_the_emulated_board_matches_the_guide(
        board: EmulatedBoard, tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "broker")
    try:
        deploy(board.port, {"server": "127.0.0.1", "port": broker.port, "topic": TOPIC,
                            "wifi_ssid": "lab", "wifi_password": "lab-secret",
                            "publish_interval": 0.2}, tmp_path)
        console = Console(board.port)
        try:
            board.hard_reset()
            console.expect(r"^Received '\{\"msg\": 1\}'.*\n\n")
        finally:
            console.close()
    finally:
        broker.stop()
    run = console.text[console.text.index("Waiting for connection..."):]
    lines = run.split("\n")
    first = lines.index("Connected on 192.168.0.145")
    assert set(lines[:first]) == {"Waiting for connection..."} and first in (2, 3)
    assert lines[first + 1:first + 8] == [
        'Connected to MQTT Broker "127.0.0.1"',
        f"Send '{{\"msg\": 0}}' to topic '{TOPIC}'",
        f"Received '{{\"msg\": 0}}' from topic '{TOPIC}'", "",
        f"Send '{{\"msg\": 1}}' to topic '{TOPIC}'",
        f"Received '{{\"msg\": 1}}' from topic '{TOPIC}'", ""]


def test_a_settings_error_is_one_line_and_the_board_stays_at_the_repl(
        board: EmulatedBoard, tmp_path: Path) -> None:
    deploy(board.port, {"server": "127.0.0.1", "port": "1883", "topic": TOPIC,
                        "wifi_ssid": "lab"}, tmp_path)
    console = Console(board.port)
    try:
        board.hard_reset()
        console.expect(r"^>>> ", seconds=30)
        before = console.text
        console.serial.write(b"print('still', 'here')\r")  # the REPL answers: no reboot loop
        console.expect(r"^still here$")
    finally:
        console.close()
    errors = [line for line in before.split("\n") if line.startswith("ERROR")]
    assert errors == ["ERROR settings: port: expected an integer or null, got a string"]
    assert "Traceback" not in before
    assert before.count("rst:") == 1  # booted once; main.py did not reset the board


@pytest.mark.mosquitto
def test_tls_with_sni_on_the_emulated_board(board: EmulatedBoard, tmp_path: Path) -> None:
    """umqtt.simple 1.3.4 (firmware v1.22): the clock set from NTP first (the board's RTC
    starts at 2000-01-01 and v1.22 checks certificate dates), then ssl=True + ssl_params
    with the PEM CA; the front, which refuses handshakes without SNI, sees the broker's
    name."""
    ca = trustme.CA()
    now = dt.datetime.now(dt.UTC)
    leaf = ca.issue_cert("broker.test", not_before=now - dt.timedelta(days=1),
                         not_after=now + dt.timedelta(days=365))
    ntp = NtpServer().start()
    board.set_udp_ports({123: ntp.port})
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(ca_file)
    leaf.cert_chain_pems[0].write_to_path(tmp_path / "leaf.crt")
    leaf.private_key_pem.write_to_path(tmp_path / "leaf.key")
    broker = Mosquitto(tmp_path / "broker")
    front = TlsFront(tmp_path / "leaf.crt", tmp_path / "leaf.key", broker.port,
                     require_sni=True)
    try:
        deploy(board.port, {"server": "broker.test", "port": front.port, "tls": True,
                            "ca_file": "/ca.pem", "topic": TOPIC, "wifi_ssid": "lab",
                            "wifi_password": "lab-secret", "publish_interval": 0.2,
                            "ntp_server": "broker.test"},
               tmp_path, extra=(ca_file,))
        console = Console(board.port)
        try:
            board.hard_reset()
            console.expect(r"^Received '\{\"msg\": 1\}'")
        finally:
            console.close()
    finally:
        front.stop()
        broker.stop()
        ntp.stop()
    assert [r.answered for r in ntp.requests()] == [True]
    assert 'Connected to MQTT Broker "broker.test"' in console.text
    assert front.handshakes == ["broker.test"]


def test_a_clock_that_cannot_be_set_is_one_error_time_line(
        board: EmulatedBoard, tmp_path: Path) -> None:
    """v1.22 checks certificate dates: with no answer from NTP the program says so in one
    line and stops before TLS (no connection is tried without the date)."""
    ntp = NtpServer(mode=NtpMode.DOWN).start()
    board.set_udp_ports({123: ntp.port})
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(ca_file)
    try:
        deploy(board.port, {"server": "broker.test", "port": 1, "tls": True,
                            "ca_file": "/ca.pem", "topic": TOPIC, "wifi_ssid": "lab",
                            "wifi_password": "lab-secret", "ntp_server": "broker.test"},
               tmp_path, extra=(ca_file,))
        console = Console(board.port)
        try:
            board.hard_reset()
            line = console.expect(r"^ERROR .*$").group(0)
            console.expect(r"^>>> ")
        finally:
            console.close()
    finally:
        ntp.stop()
    assert line.startswith('ERROR time: cannot set the clock from NTP server "broker.test" '
                           "(OSError: "), line
    assert len(ntp.requests()) == 3  # three tries, then the one line
    assert "ERROR mqtt" not in console.text
