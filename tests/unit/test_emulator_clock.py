"""The emulated ESP32's clock, as on the chip: the RTC starts at 2000-01-01 at power-on and
EN reset, soft reset and machine.reset() keep it; time/localtime/mktime/RTC share it;
ntptime sets it from the rig's NTP server; and certificate dates are checked against it
on v1.22+ and not at all on v1.20/v1.21 (firmware built without MBEDTLS_HAVE_TIME_DATE)."""

from __future__ import annotations

import datetime as dt
import ssl
import struct
import time
from collections.abc import Iterator

import pytest
import serial
import trustme

from harness.broker.ntp import WRONG_TIME_OFFSET_S, NtpMode, NtpServer
from harness.emulator import EmulatedBoard
from harness.emulator.clock import SECONDS_1970_TO_2000, tls_clock_patch
from harness.emulator.fixtures import BoardFactory, board_factory, mpremote
from harness.emulator.interpreter import extension_file
from tests.unit.test_emulator_modules import expect
from tests.unit.test_emulator_tls import TlsBroker

pytestmark = pytest.mark.unit
__all__ = ["board_factory"]

NOW = dt.datetime.now(dt.UTC)
JOIN = ("import network\nw = network.WLAN(network.STA_IF)\nw.active(True)\n"
        "w.connect('hil-ap', 'hil-password')\n")


def board_seconds_now() -> float:
    return time.time() - SECONDS_1970_TO_2000


def run(board: EmulatedBoard, code: str) -> list[str]:
    result = mpremote(board.port, "exec", code)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.splitlines()


def test_power_on_starts_the_clock_at_2000(board_factory: BoardFactory) -> None:
    before_power_on = time.monotonic()
    board = board_factory()
    out = run(board, "import time\nprint(time.time(), time.localtime(), "
              "time.gmtime(0), time.mktime((2000, 1, 2, 0, 0, 0, 0, 0)))")
    since_power_on = time.monotonic() - before_power_on
    seconds, rest = out[0].split(" ", 1)
    # an integer count from 2000-01-01 at power-on, like the chip's (however slow the host)
    assert 0 <= int(seconds) <= since_power_on + 1, (seconds, since_power_on)
    assert rest.startswith("(2000, 1, 1, 0, 0, ") and "(2000, 1, 1, 0, 0, 0, 5, 1) 86400" in rest


def test_time_api_has_the_firmware_shapes(emulated_board: EmulatedBoard) -> None:
    out = run(emulated_board, """
import time, utime
t = time.localtime(849461400)
print(t, len(t), time.gmtime(849461400) == t, time.mktime(t), utime is time)
print(time.mktime((2024, 14, 1, 0, 0, 0, 0, 0)) == time.mktime((2025, 2, 1, 0, 0, 0, 0, 0)))
print(time.localtime(time.mktime((2028, 2, 29, 23, 59, 59, 0, 0))))
try:
    time.mktime((2024, 1, 1))
except TypeError as exc:
    print(exc)
print(type(time.time()).__name__, time.ticks_cpu() >= 0)
""")
    assert out == [
        "(2026, 12, 1, 17, 30, 0, 1, 335) 8 True 849461400 True",
        "True",
        "(2028, 2, 29, 23, 59, 59, 1, 60)",
        "mktime needs a tuple of length 8 or 9",
        "int True",
    ]


def test_rtc_sets_the_clock_time_reads(emulated_board: EmulatedBoard) -> None:
    out = run(emulated_board, """
import machine, time
rtc = machine.RTC()
rtc.datetime((2026, 12, 1, 9, 17, 30, 5, 250000))
print(time.localtime()[:5], rtc.datetime()[:7], time.time() // 60)
""")
    assert out == ["(2026, 12, 1, 17, 30) (2026, 12, 1, 1, 17, 30, 5) 14157690"]


def test_soft_and_machine_reset_keep_the_clock_power_on_clears_it(
        emulated_board: EmulatedBoard) -> None:
    run(emulated_board, "import machine\nmachine.RTC().datetime((2030, 6, 1, 0, 12, 0, 0, 0))\n"
        "machine.RTC().memory(b'kept')")
    # mpremote soft-resets the board before each exec.
    assert run(emulated_board, "import time\nprint(time.localtime()[:4])") == ["(2030, 6, 1, 12)"]
    (emulated_board.flash_dir / "main.py").write_text(
        "import time, machine\nprint('year', time.localtime()[0], machine.RTC().memory())\n")
    port = serial.Serial(emulated_board.port, timeout=0.05)
    try:
        port.write(b"\r\x03import machine; machine.reset()\r")
        out = expect(port, b"Type \"help()\"")
        assert b"rst:0xc (SW_CPU_RESET)" in out and b"year 2030 b'kept'\r\n" in out, out
        emulated_board.hard_reset()  # EN: a power-on reset of the chip, RTC included
        out = expect(port, b"Type \"help()\"")
        assert b"rst:0x1 (POWERON_RESET)" in out and b"year 2000 b''\r\n" in out, out
    finally:
        port.close()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def tls_broker(ca: trustme.CA, *, expired: bool) -> TlsBroker:
    """A TLS endpoint whose certificate has realistic dates (from yesterday), or expired."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if expired:
        begin, end = NOW - dt.timedelta(days=30), NOW - dt.timedelta(days=1)
    else:
        begin, end = NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=365)
    ca.issue_cert("broker.test", not_before=begin, not_after=end).configure_cert(context)
    return TlsBroker(context)


@pytest.fixture
def fresh(ca: trustme.CA) -> Iterator[TlsBroker]:
    broker = tls_broker(ca, expired=False)
    yield broker
    broker.close()


@pytest.fixture
def expired(ca: trustme.CA) -> Iterator[TlsBroker]:
    broker = tls_broker(ca, expired=True)
    yield broker
    broker.close()


def connect(board: EmulatedBoard, broker: TlsBroker, cadata: bytes) -> str:
    (board.flash_dir / "ca.pem").write_bytes(cadata)
    out = run(board, JOIN + f"""
import ussl
from umqtt.simple import MQTTClient
params = {{'cert_reqs': ussl.CERT_REQUIRED, 'cadata': open('ca.pem', 'rb').read(),
          'server_hostname': 'broker.test'}}
client = MQTTClient('c', 'broker.test', {broker.port}, ssl=True, ssl_params=params)
try:
    client.connect()
    print('CONNECTED')
    client.disconnect()
except Exception as exc:
    print('REFUSED', ' '.join(str(exc).split()))
""")
    return out[-1]


@pytest.mark.skipif(tls_clock_patch(extension_file()) is None,
                    reason="this interpreter build cannot take the board clock (not x86-64 ELF)")
@pytest.mark.parametrize(("profile", "dates_checked"),
                         [("v1.20", False), ("v1.21", False), ("v1.22", True)])
def test_certificate_dates_follow_the_board_clock_and_the_firmware(
        board_factory: BoardFactory, fresh: TlsBroker, expired: TlsBroker, ca: trustme.CA,
        profile: str, dates_checked: bool) -> None:
    board = board_factory(profile=profile, hosts={"broker.test": "127.0.0.1"})
    cadata = ca.cert_pem.bytes()
    at_2000 = connect(board, fresh, cadata)
    expired_at_2000 = connect(board, expired, cadata)
    board.rtc.set(board_seconds_now())
    set_now = connect(board, fresh, cadata)
    expired_now = connect(board, expired, cadata)
    if dates_checked:
        assert at_2000 == "REFUSED The certificate validity starts in the future"
        assert expired_at_2000 == at_2000
        assert set_now == "CONNECTED"
        assert expired_now == "REFUSED The certificate validity has expired"
    else:  # v1.20/v1.21 check no date at all, whatever the clock says
        assert [at_2000, expired_at_2000, set_now, expired_now] == ["CONNECTED"] * 4


@pytest.mark.parametrize("profile", ["v1.20", "v1.22"])
def test_without_date_checks_the_chain_is_still_verified(
        board_factory: BoardFactory, fresh: TlsBroker, profile: str) -> None:
    board = board_factory(profile=profile, hosts={"broker.test": "127.0.0.1"})
    board.rtc.set(board_seconds_now())
    out = connect(board, fresh, trustme.CA().cert_pem.bytes())
    assert out.startswith("REFUSED") and "not correctly signed" in out


@pytest.fixture
def ntp() -> Iterator[NtpServer]:
    with NtpServer() as server:
        yield server


def ntp_board(board_factory: BoardFactory, ntp: NtpServer) -> EmulatedBoard:
    board = board_factory(hosts={"broker.test": "127.0.0.1"})
    board.set_udp_ports({123: ntp.port})  # from the next boot: mpremote soft-resets first
    return board


SETTIME = JOIN + """
import ntptime, time
ntptime.host = 'broker.test'
try:
    ntptime.settime()
    print('SET', time.time())
except OSError as exc:
    print('FAILED', exc.args[0])
"""


def test_ntptime_sets_the_clock_from_the_rigs_ntp_server(
        board_factory: BoardFactory, ntp: NtpServer) -> None:
    board = ntp_board(board_factory, ntp)
    before = time.time()
    word, value = run(board, SETTIME)[-1].split()
    assert word == "SET" and abs(int(value) - board_seconds_now()) < 3
    assert [r.answered for r in ntp.requests(before)] == [True]
    assert abs(board.rtc.board_seconds() - board_seconds_now()) < 3


def test_ntp_server_down_times_out_wrong_time_is_believed(
        board_factory: BoardFactory, ntp: NtpServer) -> None:
    board = ntp_board(board_factory, ntp)
    import errno

    ntp.mode = NtpMode.DOWN
    assert run(board, SETTIME)[-1] == f"FAILED {errno.ETIMEDOUT}"  # ntptime.timeout = 1 s
    ntp.mode = NtpMode.WRONG
    word, value = run(board, SETTIME)[-1].split()
    assert word == "SET" and abs(int(value) - board_seconds_now() - WRONG_TIME_OFFSET_S) < 3


def test_ntp_server_speaks_sntp() -> None:
    import socket

    with NtpServer() as server, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(2)
        query = bytes([0x23]) + bytes(39) + struct.pack("!Q", 0x1234)  # v4 client, xmt
        client.sendto(query, ("127.0.0.1", server.port))
        reply = client.recv(48)
    first, stratum = reply[0], reply[1]
    assert (first >> 3) & 7 == 4 and first & 7 == 4 and stratum == 1
    assert struct.unpack("!Q", reply[24:32])[0] == 0x1234  # originate = our transmit
    transmit = struct.unpack("!I", reply[40:44])[0] - 2_208_988_800
    assert abs(transmit - time.time()) < 3
