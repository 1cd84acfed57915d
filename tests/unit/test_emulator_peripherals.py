"""The emulated ESP32's module set and peripherals, as the profile's firmware has them: the
watchdog resets the board when not fed, timer callbacks run, the import surface is the
firmware's (what it lacks is absent, what the emulator cannot model says so), and
sys/os report the firmware."""

from __future__ import annotations

import pytest
import serial

from harness.emulator import EmulatedBoard
from harness.emulator.fixtures import BoardFactory, board_factory, mpremote
from tests.unit.test_emulator_modules import expect

pytestmark = pytest.mark.unit
__all__ = ["board_factory"]


def run(board: EmulatedBoard, code: str) -> list[str]:
    result = mpremote(board.port, "exec", code)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.splitlines()


def test_watchdog_resets_the_board_unless_fed(emulated_board: EmulatedBoard) -> None:
    (emulated_board.flash_dir / "main.py").write_text(
        "import machine\nprint('cause', machine.reset_cause())\n")
    port = serial.Serial(emulated_board.port, timeout=0.05)
    try:
        port.write(b"\r\x03import machine, time\r")
        port.write(b"w = machine.WDT(timeout=300)\r")
        port.write(b"for _ in range(10):\r    time.sleep_ms(100); w.feed()\r\r\r")
        port.write(b"print('fed for 1 s')\r")
        out = expect(port, b"fed for 1 s\r\n>>> ")
        assert b"task_wdt" not in out
        # Back at the REPL nobody feeds it: it fires, even here, and the chip restarts.
        out = expect(port, b"cause 3\r\n", timeout=5)
        assert b"task_wdt: Task watchdog got triggered" in out
        assert b"rst:0xc (SW_CPU_RESET)" in out
        # After that restart the watchdog is off until a program starts it again.
        port.write(b"\rimport time; time.sleep_ms(600); print('still here')\r")
        out = expect(port, b"still here\r\n")
        assert b"task_wdt" not in out
    finally:
        port.close()


def test_watchdog_survives_a_soft_reset(emulated_board: EmulatedBoard) -> None:
    port = serial.Serial(emulated_board.port, timeout=0.05)
    try:
        port.write(b"\r\x03import machine; w = machine.WDT(timeout=500)\r")
        port.write(b"\x04")  # Ctrl-D: soft reboot; the task watchdog keeps running
        out = expect(port, b"MPY: soft reboot")
        out += expect(port, b"task_wdt: Task watchdog got triggered", timeout=5)
        assert b"rst:0xc" not in out.split(b"MPY: soft reboot")[0]
    finally:
        port.close()


def test_timer_callbacks_run(emulated_board: EmulatedBoard) -> None:
    out = run(emulated_board, """
import machine, time
hits = []
t = machine.Timer(0)
t.init(mode=machine.Timer.PERIODIC, period=50, callback=lambda tim: hits.append(tim))
start = time.ticks_ms()
while time.ticks_diff(time.ticks_ms(), start) < 400:
    pass  # a busy loop: the callbacks run between its bytecodes
t.deinit()
busy = len(hits)
once = []
machine.Timer(1, mode=machine.Timer.ONE_SHOT, period=30, callback=lambda tim: once.append(1))
time.sleep_ms(200)
time.sleep_ms(100)
print(6 <= busy <= 9, len(hits) - busy <= 1, once, hits[0] is t)
""")
    assert out == ["True True [1] True"], out


def test_peripherals_without_a_model_say_so(emulated_board: EmulatedBoard) -> None:
    out = run(emulated_board, """
import machine
for name in ('UART', 'I2C', 'SoftI2C', 'SPI', 'ADC', 'PWM', 'TouchPad', 'DAC'):
    try:
        getattr(machine, name)(0)
    except NotImplementedError as exc:
        print(name, 'emulated ESP32' in str(exc))
for module in ('neopixel', 'onewire', 'dht', 'btree', 'webrepl'):
    try:
        __import__(module)
    except NotImplementedError as exc:
        print(module, 'emulated ESP32' in str(exc))
import esp, esp32
print(esp.flash_size(), esp32.raw_temperature() > 0)
try:
    esp32.NVS('hil')
except NotImplementedError as exc:
    print('NVS', 'emulated ESP32' in str(exc))
""")
    names = ["UART", "I2C", "SoftI2C", "SPI", "ADC", "PWM", "TouchPad", "DAC",
             "neopixel", "onewire", "dht", "btree", "webrepl"]
    assert out == [f"{name} True" for name in names] + ["4194304 True", "NVS True"], out


@pytest.mark.parametrize(("profile", "vfs", "ipconfig"), [("v1.20", False, False),
                                                          ("v1.22", False, False)])
def test_what_the_firmware_lacks_is_absent(board_factory: BoardFactory, profile: str,
                                           vfs: bool, ipconfig: bool) -> None:
    out = run(board_factory(profile=profile), """
import network, os
try:
    import vfs
    print('vfs', True)
except ImportError:
    print('vfs', False)
print('ipconfig', hasattr(network.WLAN(network.STA_IF), 'ipconfig'))
print('unix os', [n for n in ('system', 'getenv', 'putenv', 'VfsPosix') if hasattr(os, n)])
""")
    assert out == [f"vfs {vfs}", f"ipconfig {ipconfig}", "unix os []"], out


@pytest.mark.parametrize(("profile", "release", "machine_name"), [
    ("v1.20", "(1, 20, 0)", "ESP32 module with ESP32"),
    ("v1.22", "(1, 22, 2, '')", "Generic ESP32 module with ESP32")])
def test_sys_and_os_report_the_firmware(board_factory: BoardFactory, profile: str,
                                        release: str, machine_name: str) -> None:
    out = run(board_factory(profile=profile), """
import sys, os, usys
print(sys.platform, sys.implementation.name, sys.implementation.version, usys is sys)
print(sys.implementation._machine)
print(os.uname().sysname, os.uname().release, os.uname().machine)
""")
    version = release.strip("()").split(", ")
    assert out == [f"esp32 micropython {release} True", machine_name,
                   f"esp32 {'.'.join(version[:3])} {machine_name}"], out


def test_the_flash_enforces_its_size(emulated_board: EmulatedBoard) -> None:
    out = run(emulated_board, """
import os, json
block, _, total, free = os.statvfs('/')[:4]
print(block * total)
chunk = b'x' * 4096
try:
    with open('big.bin', 'wb') as f:
        while True:
            f.write(chunk)
except OSError as exc:
    print('full', exc.args[0], os.stat('big.bin')[6] // 4096 <= total)
try:
    with open('more.json', 'w') as f:
        json.dump({'k': 'v' * 5000}, f)
except OSError as exc:
    print('still full', exc.args[0])
os.remove('big.bin')
with open('small.json', 'w') as f:
    json.dump({'k': 1}, f)
print(open('small.json').read())
""")
    assert out == ["2097152", "full 28 True", "still full 28", '{"k": 1}'], out
