"""network.WLAN on the emulated ESP32 under the harness's Wi-Fi scenarios."""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Iterator

import pytest
import serial

from harness.deadline import Deadline
from harness.emulator import AccessPoint, WifiScenario
from harness.emulator.fixtures import BoardFactory, board_factory, mpremote

pytestmark = pytest.mark.unit
__all__ = ["board_factory"]

LAB = AccessPoint(ssid="lab", password="s3cret", ip="10.1.2.3", gateway="10.1.2.254")


def run(board_port: str, script: str) -> list[str]:
    result = mpremote(board_port, "exec", script)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.splitlines()


def test_wrong_password_reports_the_esp32_status(board_factory: BoardFactory) -> None:
    board = board_factory(wifi=WifiScenario(access_points=[LAB], failure_delay_s=0.3))
    lines = run(board.port, """
import network, time
wlan = network.WLAN(network.STA_IF)
try:
    wlan.connect('lab', 'wrong')
except OSError as exc:
    print('before active:', exc)
wlan.active(True)
wlan.connect('lab', 'wrong')
print(wlan.status() == network.STAT_CONNECTING, wlan.isconnected())
time.sleep(0.5)
print(wlan.status(), wlan.status() == network.STAT_WRONG_PASSWORD, wlan.isconnected())
print(wlan.ifconfig()[0])
""")
    assert lines == ["before active: Wifi Not Started", "True False", "202 True False",
                     "0.0.0.0"]


def test_absent_access_point(board_factory: BoardFactory) -> None:
    board = board_factory(wifi=WifiScenario(access_points=[LAB], failure_delay_s=0))
    lines = run(board.port, """
import network
wlan = network.WLAN(network.STA_IF)
wlan.active(True)
wlan.connect('elsewhere', 'x')
print(wlan.status() == network.STAT_NO_AP_FOUND, wlan.isconnected())
""")
    assert lines == ["True False"]


def test_association_delay_and_scenario_addresses(board_factory: BoardFactory) -> None:
    board = board_factory(wifi=WifiScenario(access_points=[LAB], association_delay_s=0.4))
    lines = run(board.port, """
import network, time
wlan = network.WLAN(network.STA_IF)
print(wlan is network.WLAN(network.STA_IF))
wlan.active(True)
wlan.connect('lab', 's3cret')
waits = 0
while not wlan.isconnected():
    waits += 1
    time.sleep_ms(50)
print(waits >= 5, wlan.status() == network.STAT_GOT_IP)
print(wlan.ifconfig())
print(wlan.config('essid'), [ap[0] for ap in wlan.scan()])
""")
    assert lines == ["True", "True True",
                     "('10.1.2.3', '255.255.255.0', '10.1.2.254', '10.1.2.254')",
                     "lab [b'lab']"]


@pytest.fixture
def echo_server() -> Iterator[int]:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    port = listener.getsockname()[1]
    accepted: list[socket.socket] = []

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        accepted.append(conn)
        with conn:
            conn.settimeout(10)
            try:
                while data := conn.recv(1024):
                    conn.sendall(data)
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port
    listener.close()
    for conn in accepted:
        conn.shutdown(socket.SHUT_RDWR)  # the board still holds its end open
    thread.join(10)


def test_link_drop_fails_open_sockets(board_factory: BoardFactory, echo_server: int) -> None:
    board = board_factory(wifi=WifiScenario(access_points=[LAB], drop_after_s=0.6),
                          hosts={"echo.test": "127.0.0.1"})
    lines = run(board.port, f"""
import network, socket, time
wlan = network.WLAN(network.STA_IF)
wlan.active(True)
wlan.connect('lab', 's3cret')
s = socket.socket()
s.connect(socket.getaddrinfo('echo.test', {echo_server})[0][-1])
s.write(b'ping')
print(s.read(4), wlan.isconnected())
start = time.ticks_ms()
try:
    s.read(4)  # nothing comes; the link drops while we block
except OSError as exc:
    print('read failed', exc.errno, time.ticks_diff(time.ticks_ms(), start) < 2000)
print(wlan.isconnected(), wlan.status() == network.STAT_CONNECTING)
try:
    socket.getaddrinfo('echo.test', 1)
except OSError as exc:
    print('dns', exc.errno)
""")
    assert lines == ["b'ping' True", "read failed 113 True", "False True", "dns -202"]


def test_wifi_scenario_changes_at_next_boot(board_factory: BoardFactory) -> None:
    board = board_factory(wifi=WifiScenario(access_points=[LAB]))
    board.set_wifi(WifiScenario(access_points=[AccessPoint(ssid="lab", password="new")]))
    board.hard_reset()
    lines = run(board.port, """
import network
wlan = network.WLAN(network.STA_IF)
wlan.active(True)
wlan.connect('lab', 'new')
print(wlan.isconnected(), wlan.ifconfig()[0])
""")
    assert lines == ["True 192.168.4.2"]


def test_scenario_rejects_negative_delays() -> None:
    with pytest.raises(ValueError, match="association_delay_s"):
        WifiScenario(association_delay_s=-1)
    assert "s3cret" not in repr(LAB)


JOIN_LAB = """
import network, time
wlan = network.WLAN(network.STA_IF)
wlan.active(True)
wlan.connect('lab', 's3cret')
while not wlan.isconnected():
    time.sleep_ms(10)
"""
ASK = """
import network
wlan = network.WLAN(network.STA_IF)
print(wlan.active(), wlan.isconnected(), wlan.ifconfig()[0], wlan.config('essid'))
"""


def test_the_association_outlives_a_soft_reset_but_not_a_hard_one(
        board_factory: BoardFactory) -> None:
    """The ESP32's soft reset leaves its Wi-Fi driver alone (ports/esp32/main.c); EN, a
    power cycle or machine.reset() start it again."""
    board = board_factory(wifi=WifiScenario(access_points=[LAB]))
    run(board.port, JOIN_LAB)
    # mpremote soft-resets the board before each exec: a fresh interpreter each time
    assert run(board.port, ASK) == ["True True 10.1.2.3 lab"]
    board.hard_reset()
    assert run(board.port, ASK) == ["False False 0.0.0.0 "]


def test_new_access_points_end_the_association(board_factory: BoardFactory) -> None:
    board = board_factory(wifi=WifiScenario(access_points=[LAB]))
    run(board.port, JOIN_LAB)
    board.set_wifi(WifiScenario(access_points=[AccessPoint(ssid="lab", password="new")]))
    assert run(board.port, ASK) == ["False False 0.0.0.0 "]


def read_until(port: serial.Serial, *wanted: bytes) -> None:
    """Read until each of ``wanted`` has shown up, in that order."""
    deadline = Deadline(10, repr(wanted))
    seen = b""
    for part in wanted:
        while part not in seen and not deadline.expired:
            seen += port.read(256)
        assert part in seen, (part, seen)
        seen = seen.split(part, 1)[1]


def test_an_interpreter_that_dies_on_ctrl_c_keeps_the_association(
        board_factory: BoardFactory) -> None:
    """The unix port can die handling an asynchronous SIGINT where a real ESP32 only stops
    the program; the emulator then starts a new interpreter, and the board must still be
    on the network as the real one is (the rig reads S1's address after the run)."""
    board = board_factory(wifi=WifiScenario(access_points=[LAB]))
    run(board.port, JOIN_LAB)
    with serial.Serial(board.port, 115200, timeout=0.2) as port:
        port.write(b"exec('print(\\'spin\\')\\nwhile True: pass')\r")
        read_until(port, b"spin\r\n")  # the program runs
        first = board.interpreter_pid
        assert first is not None
        port.write(b"\x03")  # a Ctrl-C, as the rig sends to stop the program ...
        read_until(port, b"KeyboardInterrupt")  # (taken: the supervisor sent the SIGINT)
        os.kill(first, signal.SIGKILL)  # ... and the interpreter dies on it
        read_until(port, b"KeyboardInterrupt", b">>> ")  # the supervisor's, then the prompt
        deadline = Deadline(10, "the next interpreter")
        while board.interpreter_pid in (None, first):  # it prints its prompt as it starts
            assert not deadline.expired, "no new interpreter after the Ctrl-C death"
            port.read(256)
    assert run(board.port, ASK) == ["True True 10.1.2.3 lab"]
