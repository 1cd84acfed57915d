"""The emulated ESP32 served over RFC2217, with the devkit's DTR/RTS auto-reset circuit."""

from __future__ import annotations

import sys

import pytest
import serial

from harness import lifetime
from harness.emulator.fixtures import BoardFactory, board_factory, mpremote
from tests.unit.test_emulator_serial import read_until as serial_read_until

pytestmark = [pytest.mark.unit,
              pytest.mark.filterwarnings("ignore::DeprecationWarning:serial.rfc2217")]
__all__ = ["board_factory"]


def read_until(port: serial.SerialBase, marker: bytes, timeout: float = 15.0) -> bytes:
    return serial_read_until(lambda: port.read(max(1, port.in_waiting)), marker, timeout,
                             "over RFC2217")


def test_mpremote_over_rfc2217(board_factory: BoardFactory) -> None:
    board = board_factory(rfc2217_port=0)
    assert board.rfc2217_url is not None
    result = mpremote(board.rfc2217_url, "exec", "print('via telnet', 6 * 7)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "via telnet 42"


def test_en_pulse_resets_and_io0_low_enters_download_mode(board_factory: BoardFactory) -> None:
    board = board_factory(rfc2217_port=0)
    assert board.rfc2217_url is not None
    (board.flash_dir / "main.py").write_text("print('app running')\n")
    port = serial.serial_for_url(board.rfc2217_url, timeout=0.05)
    try:
        port.dtr, port.rts = False, True  # EN low: chip held in reset
        port.dtr = True
        port.rts = False  # EN high while IO0 low (classic esptool sequence)
        banner = read_until(port, b"waiting for download\r\n")
        assert b"boot:0x3 (DOWNLOAD_BOOT(UART0/UART1/SDIO_REI_REO_V2))" in banner
        port.dtr = False
        port.rts = True  # EN pulse with IO0 high: normal boot
        port.rts = False
        boot = read_until(port, b"app running\r\n")
        assert b"rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)" in boot
    finally:
        port.close()


def test_esptool_talks_to_the_rom_over_rfc2217(board_factory: BoardFactory) -> None:
    board = board_factory(rfc2217_port=0)
    assert board.rfc2217_url is not None
    result = lifetime.run(
        [sys.executable, "-m", "esptool", "--chip", "esp32", "--no-stub",
         "--port", board.rfc2217_url, "read-mac"],
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "24:6f:28:a1:b2:c3" in result.stdout.lower()
    # after esptool's hard reset the board boots MicroPython again
    after = mpremote(board.rfc2217_url, "eval", "1 + 1")
    assert after.stdout.strip() == "2", after.stdout + after.stderr
