"""The board modules (machine, network extras) and firmware profiles of the emulated ESP32."""

from __future__ import annotations

from pathlib import Path

import pytest
import serial

from harness.emulator import PROFILES, EmulatedBoard, firmware_image, list_profiles, rom
from harness.emulator.fixtures import BoardFactory, board_factory, emulated_board, mpremote
from harness.errors import ConfigError, UnknownProfile
from tests.unit.test_emulator_serial import read_until

pytestmark = pytest.mark.unit
__all__ = ["board_factory", "emulated_board"]


def expect(port: serial.Serial, marker: bytes, timeout: float = 15.0) -> bytes:
    return read_until(lambda: port.read(4096), marker, timeout)


def test_machine_module(emulated_board: EmulatedBoard) -> None:
    result = mpremote(emulated_board.port, "exec", """
import machine, ubinascii
print(machine.reset_cause() == machine.PWRON_RESET, machine.HARD_RESET, machine.SOFT_RESET)
print(ubinascii.hexlify(machine.unique_id()).decode(), machine.freq())
machine.freq(240000000)
led = machine.Pin(2, machine.Pin.OUT)
led.on(); led.off(); led(1)
print([w[:2] for w in machine.Pin.writes], led.value())
try:
    machine.Pin(34, machine.Pin.OUT)
except ValueError as exc:
    print(exc)
""")
    assert result.stdout.splitlines() == [
        "True 2 5", "246f28a1b2c3 160000000", "[(2, 1), (2, 0), (2, 1)] 1",
        "pin can only be input"], result.stdout + result.stderr


def test_machine_reset_cannot_be_caught(emulated_board: EmulatedBoard) -> None:
    (emulated_board.flash_dir / "main.py").write_text(
        "import machine\nprint('cause', machine.reset_cause())\n")
    port = serial.Serial(emulated_board.port, timeout=0.05)
    try:
        port.write(b"\r\x03")
        port.write(b"import machine\r")
        port.write(b"try:\rmachine.reset()\r\x08\x08\x08\x08except BaseException:\r"
                   b"print('caught')\r\r\r\r")  # docs/reference/repl.rst: 3 RETURNs
        out = expect(port, b"cause 2\r\n")
        assert b"rst:0xc (SW_CPU_RESET)" in out and b"\r\ncaught\r\n" not in out
    finally:
        port.close()


def test_deepsleep_wakes_with_a_reset(emulated_board: EmulatedBoard) -> None:
    (emulated_board.flash_dir / "main.py").write_text(
        "import machine\nprint('woke', machine.reset_cause())\n")
    port = serial.Serial(emulated_board.port, timeout=0.05)
    try:
        port.write(b"\r\x03import machine; machine.deepsleep(10)\r")
        out = expect(port, b"woke 4\r\n")
        assert b"rst:0x5 (DEEPSLEEP_RESET)" in out
    finally:
        port.close()


def test_flash_persists_across_resets(emulated_board: EmulatedBoard) -> None:
    write = mpremote(emulated_board.port, "exec", "open('kept.txt', 'w').write('yes')")
    assert write.returncode == 0
    emulated_board.hard_reset()
    result = mpremote(emulated_board.port, "exec", "print(open('kept.txt').read())")
    assert result.stdout.strip() == "yes"


def test_profiles() -> None:
    assert list_profiles()[:3] == ["v1.20", "v1.21", "v1.22"]
    assert PROFILES["v1.22"].banner == (
        "MicroPython v1.22.2 on 2024-02-22; Generic ESP32 module with ESP32")
    assert PROFILES["v1.22"].umqtt_version == "1.3.4" and PROFILES["v1.22"].ussl_alias
    assert PROFILES["v1.23"].umqtt_version == "1.4.0" and not PROFILES["v1.23"].ussl_alias
    with pytest.raises(UnknownProfile, match=r"known profiles: v1\.20, v1\.21, v1\.22"):
        EmulatedBoard(Path("flash"), profile="v9")
    with pytest.raises(ConfigError, match="heap"):
        EmulatedBoard(Path("flash"), heap_kib=1)


def test_flashed_firmware_image_picks_the_profile(
        board_factory: BoardFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HIL_MICROPYTHON_LIB", raising=False)
    state = tmp_path / "state"
    store = rom.FlashStore(state / firmware_image.FLASH_FILE_NAME)
    store.program(0x1000, firmware_image.build_merged_firmware("v1.23.0"))
    board = board_factory(state_dir=state)
    port = serial.Serial(board.port, timeout=0.05)
    try:
        board.hard_reset()
        out = expect(port, b">>> ")
        # v1.23 needs a micropython-lib checkout; without one the board says so and
        # falls back to its configured firmware instead of failing to boot.
        assert b"cannot boot v1.23" in out and b"MicroPython v1.22.2" in out
    finally:
        port.close()
    assert (state / firmware_image.FLASH_FILE_NAME).exists()


def test_auto_reset_circuit_samples_io0_after_the_en_delay() -> None:
    from harness.emulator.reset_circuit import EN_RC_DELAY_S, AutoResetCircuit

    circuit = AutoResetCircuit()
    assert circuit.set_lines(dtr=False, rts=True, now=0.0)  # EN low
    assert not circuit.set_lines(dtr=True, rts=True, now=0.1)  # EN high, IO0 high for now
    assert not circuit.set_lines(dtr=True, rts=False, now=0.15)  # IO0 low within the delay
    assert not circuit.released(0.1 + EN_RC_DELAY_S / 2)
    assert circuit.released(0.1 + EN_RC_DELAY_S)
    assert circuit.io0 is False  # -> ROM download mode
    assert not circuit.released(10.0)  # once only
