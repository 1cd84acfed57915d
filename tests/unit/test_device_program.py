"""device_src/ on the real MicroPython interpreter against a real mosquitto: the guide's
console transcript, the callback-before-subscribe order, one-line errors for bad input,
reconnect with backoff, and a flat heap."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_device_program_rig import Flash, Mosquitto, running, umqtt_134

pytestmark = pytest.mark.unit

TOPIC = "raspberry/mqtt"


@pytest.fixture(scope="module")
def umqtt_dir() -> Path:
    return umqtt_134()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "broker") as mosq:
        yield mosq


def settings(port: int, **extra: Any) -> dict[str, Any]:
    return {"server": "127.0.0.1", "port": port, "topic": TOPIC, "wifi_ssid": "lab",
            "wifi_password": "lab-secret", "publish_interval": 0.2, **extra}


@pytest.mark.mosquitto
def test_plain_tcp_transcript_matches_the_guide(tmp_path: Path, umqtt_dir: Path,
                                                broker: Mosquitto) -> None:
    flash = Flash(tmp_path / "flash", umqtt_dir, wifi={"delay": 1.5, "ip": "192.168.0.145"})
    flash.write_settings(settings(broker.port))
    with running(flash) as device:
        device.expect(r"^Received '\{\"msg\": 2\}'")
        device.expect(r"^$")  # the blank line the guide prints after each message
    lines = device.lines
    first = lines.index('Connected on 192.168.0.145')
    assert lines[:first] == ["Waiting for connection..."] * first
    assert first in (2, 3)  # about one line per second of a 1.5 s association
    expected = ['Connected on 192.168.0.145', 'Connected to MQTT Broker "127.0.0.1"']
    for n in range(3):
        payload = json.dumps({"msg": n})
        expected += [f"Send '{payload}' to topic '{TOPIC}'",
                     f"Received '{payload}' from topic '{TOPIC}'", ""]
    assert lines[first:first + len(expected)] == expected


@pytest.mark.mosquitto
def test_callback_is_set_before_subscribe_so_a_retained_message_is_printed(
        tmp_path: Path, umqtt_dir: Path, broker: Mosquitto) -> None:
    broker.publish(TOPIC, "retained-hello", retain=True)
    flash = Flash(tmp_path / "flash", umqtt_dir)
    flash.write_settings(settings(broker.port))
    with running(flash) as device:
        device.expect(r"^Received '\{\"msg\": 0\}'")
    received = [line for line in device.lines if line.startswith("Received")]
    # The guide's loop handles one message per wait_msg(), so the echo lags by one.
    assert received[:2] == [f"Received 'retained-hello' from topic '{TOPIC}'",
                            f"Received '{{\"msg\": 0}}' from topic '{TOPIC}'"]


@pytest.mark.mosquitto
def test_configured_client_id_and_keepalive_reach_the_broker(
        tmp_path: Path, umqtt_dir: Path, broker: Mosquitto) -> None:
    flash = Flash(tmp_path / "flash", umqtt_dir)
    flash.write_settings(settings(broker.port, client_id="bench-7", keepalive=30))
    with running(flash) as device:
        device.expect(r"^Received '\{\"msg\": 0\}'")
    log = (tmp_path / "broker" / "mosquitto.log").read_text()
    # mosquitto logs: "New client connected from ... as bench-7 (p2, c1, k30)."
    assert re.search(r"as bench-7 \(p2, c1, k30\)", log), log


def one_error(lines: list[str]) -> str:
    errors = [line for line in lines if line.startswith("ERROR ")]
    assert len(errors) == 1, lines
    assert not any("Traceback" in line for line in lines), lines
    return errors[0]


@pytest.mark.parametrize(("case", "expected"), [
    ("missing-file", r"^ERROR settings: /settings\.json cannot be read"),
    ("malformed", r"^ERROR settings: /settings\.json is not valid JSON"),
    ("wrong-type", r"^ERROR settings: port: expected an integer or null, got a string$"),
    ("unknown-key", r"^ERROR settings: colour: unknown key"),
    ("missing-key", r"^ERROR settings: topic: missing"),
    ("missing-ca", r"^ERROR settings: ca_file: /ca\.pem cannot be read \(OSError 2\)"),
    ("unresolvable", r'^ERROR mqtt: broker host "no-such-host\.invalid" does not resolve'),
    ("refused", r"^ERROR mqtt: broker unreachable at 127\.0\.0\.1:\d+: connection refused"),
    ("wifi-password", r"^ERROR wifi: wrong password for 'lab'"),
    ("wifi-no-ap", r"^ERROR wifi: not connected to 'other' after 2 s: no access point"),
])
def test_bad_input_gives_one_error_line_and_returns_to_the_repl(
        tmp_path: Path, umqtt_dir: Path, case: str, expected: str) -> None:
    flash = Flash(tmp_path / "flash", umqtt_dir)
    closed_port = 9  # discard: nothing listens on it here
    good = settings(closed_port)
    content: dict[str, Any] | str | None = {
        "missing-file": None,
        "malformed": '{"server": "127.0.0.1",',
        "wrong-type": {**good, "port": "1883"},
        "unknown-key": {**good, "colour": "blue"},
        "missing-key": {k: v for k, v in good.items() if k != "topic"},
        "missing-ca": {**good, "tls": True, "ca_file": "/ca.pem"},
        "unresolvable": {**good, "server": "no-such-host.invalid"},
        "refused": good,
        "wifi-password": {**good, "wifi_password": "wrong"},
        "wifi-no-ap": {**good, "wifi_ssid": "other", "wifi_timeout": 2},
    }[case]
    if content is not None:
        flash.write_settings(content)
    with running(flash) as device:
        lines = device.wait_exit(30)
    assert re.search(expected, one_error(lines)), lines
    assert device.proc.returncode == 0  # main.py returned: the board sits at the REPL


def test_a_server_that_is_not_a_broker_gives_no_connack_error(tmp_path: Path,
                                                              umqtt_dir: Path) -> None:
    """A listener that accepts and hangs up at once: umqtt reads no CONNACK."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = int(listener.getsockname()[1])

        def hang_up() -> None:
            conn, _ = listener.accept()
            conn.close()

        threading.Thread(target=hang_up, daemon=True).start()
        flash = Flash(tmp_path / "flash", umqtt_dir)
        flash.write_settings(settings(port))
        with running(flash) as device:
            lines = device.wait_exit(30)
    assert one_error(lines).startswith(f"ERROR mqtt: no CONNACK from 127.0.0.1:{port}")


@pytest.mark.mosquitto
def test_wrong_password_is_reported_as_not_authorized(tmp_path: Path,
                                                      umqtt_dir: Path) -> None:
    with Mosquitto(tmp_path / "broker", users={"emqx": "public"}) as secured:
        flash = Flash(tmp_path / "flash", umqtt_dir)
        flash.write_settings(settings(secured.port, user="emqx", password="not-it"))
        with running(flash) as device:
            lines = device.wait_exit(30)
    assert one_error(lines) == (f"ERROR mqtt: not authorized (CONNACK 5) from "
                                f"127.0.0.1:{secured.port}")
    assert not any("not-it" in line for line in lines)
    assert not any(line.startswith("Connected to MQTT Broker") for line in lines)


@pytest.mark.mosquitto
def test_reconnect_with_backoff_resumes_the_counter(tmp_path: Path, umqtt_dir: Path) -> None:
    with contextlib.ExitStack() as brokers:  # both brokers stop whatever way the test ends
        first = brokers.enter_context(Mosquitto(tmp_path / "broker1"))
        port = first.port
        flash = Flash(tmp_path / "flash", umqtt_dir)
        flash.write_settings(settings(port, reconnect=True, reconnect_delay=0.2,
                                      reconnect_max_delay=0.8))
        with running(flash) as device:
            device.expect(r"^Received '\{\"msg\": 2\}'")
            first.stop()
            device.expect(r"^ERROR mqtt: connection lost after \d+ messages")
            # The delay doubled after a failure: 0.4 s +-30 % jitter.
            device.expect(r"^Reconnecting in 0\.(2[89]|[345]\d) s")
            brokers.enter_context(Mosquitto(tmp_path / "broker2", port=port))
            device.expect(r"^Connected to MQTT Broker")
            last = device.expect(r"^Received '\{\"msg\": (\d+)\}'")
            resumed = int(last[1])
            device.expect(rf"^Received '\{{\"msg\": {resumed + 2}\}}'")
    sent = [int(m[1]) for line in device.lines if (m := re.match(r"^Send '\{\"msg\": (\d+)", line))]
    assert sent == list(range(len(sent))), sent  # no gap and no restart from 0
    assert device.lines.count('Connected to MQTT Broker "127.0.0.1"') == 2


@pytest.mark.mosquitto
def test_heap_stays_flat_over_many_messages(tmp_path: Path, umqtt_dir: Path,
                                            broker: Mosquitto) -> None:
    flash = Flash(tmp_path / "flash", umqtt_dir)
    flash.write_settings(settings(broker.port, publish_interval=0, mem_log_every=25))
    with running(flash, heap="64K") as device:
        device.expect(r"^Memory free: \d+ bytes after 200 messages", seconds=60)
    free = [int(m[1]) for line in device.lines
            if (m := re.match(r"^Memory free: (\d+) bytes", line))]
    assert len(free) == 8
    # After gc.collect() each loop the free heap must not trend down.
    assert min(free[1:]) >= free[1] - 512, free
