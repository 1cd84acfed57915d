"""Unmodified esptool against the emulated board's ROM, with its flasher stub (the
default) and without: every write comes back byte for byte, erased flash boots nothing,
and the filesystem partition goes with the flash under it."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.deadline import Deadline
from harness.emulator import EmulatedBoard
from harness.emulator.firmware_image import build_merged_firmware
from harness.emulator.fixtures import BoardFactory, board_factory, mpremote
from harness.errors import EmulatorError

pytestmark = pytest.mark.unit
__all__ = ["board_factory"]


def esptool(port: str, *args: str, reset: bool = False) -> subprocess.CompletedProcess[str]:
    # A pty has no DTR/RTS: the board holds its BOOT button instead (--before no-reset).
    before = [] if reset else ["--before", "no-reset", "--after", "no-reset"]
    return subprocess.run([sys.executable, "-m", "esptool", "--port", port, *before, *args],
                          capture_output=True, text=True, timeout=180, check=False)


@pytest.fixture
def rom_board(board_factory: BoardFactory) -> EmulatedBoard:
    return board_factory(boot_button=True)


@pytest.mark.parametrize("stub", [True, False], ids=["stub", "no-stub"])
def test_write_verify_read_back(rom_board: EmulatedBoard, tmp_path: Path, stub: bool) -> None:
    data = os.urandom(200 * 1024)
    image = tmp_path / "blob.bin"
    image.write_bytes(data)
    flags = [] if stub else ["--no-stub"]
    written = esptool(rom_board.port, *flags, "write-flash", "0x300000", str(image))
    assert written.returncode == 0, written.stdout + written.stderr
    assert ("Stub flasher running." in written.stdout) is stub
    assert "Hash of data verified." in written.stdout
    back = tmp_path / "back.bin"
    read = esptool(rom_board.port, *flags, "read-flash", "0x300000", str(len(data)), str(back))
    assert read.returncode == 0, read.stdout + read.stderr
    assert hashlib.sha256(back.read_bytes()).digest() == hashlib.sha256(data).digest()
    verify = esptool(rom_board.port, *flags, "verify-flash", "0x300000", str(image))
    assert verify.returncode == 0 and "digest matched" in verify.stdout


def test_stub_erase_region_then_erase_flash_leaves_no_firmware(
        rom_board: EmulatedBoard, tmp_path: Path) -> None:
    (rom_board.flash_dir / "main.py").write_text("print('on the filesystem')\n")
    region = esptool(rom_board.port, "erase-region", "0x1f0000", "0x10000")
    assert region.returncode == 0, region.stdout + region.stderr
    back = tmp_path / "erased.bin"
    assert esptool(rom_board.port, "read-flash", "0x1f0000", "0x1000", str(back)).returncode == 0
    assert back.read_bytes() == b"\xff" * 0x1000
    assert (rom_board.flash_dir / "main.py").exists()  # the app partition, not the filesystem
    erased = esptool(rom_board.port, "erase-flash")
    assert erased.returncode == 0, erased.stdout + erased.stderr
    rom_board.set_boot_button(False)
    rom_board.hard_reset()
    assert rom_board.firmware_missing
    assert not (rom_board.flash_dir / "main.py").exists()  # the filesystem went with it
    with pytest.raises(EmulatorError, match=r"^no firmware: "):
        rom_board.check_firmware()


def test_blank_flash_prints_the_rom_boot_loop_until_flashed(
        rom_board: EmulatedBoard, tmp_path: Path) -> None:
    assert esptool(rom_board.port, "erase-flash").returncode == 0
    rom_board.set_boot_button(False)
    import serial

    port = serial.Serial(rom_board.port, timeout=0.2)
    try:
        rom_board.hard_reset()
        seen = b""
        deadline = Deadline(10, "two rounds of the ROM's boot loop")
        while seen.count(b"rst:0x10 (RTCWDT_RTC_RESET)") < 1:
            if deadline.expired:
                raise deadline.fail(repr(seen[-300:]))
            seen += port.read(4096)
    finally:
        port.close()
    assert b"rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n" \
           + b"invalid header: 0xffffffff\r\n" * 8 in seen
    assert b"MicroPython" not in seen
    # Flashing MicroPython (a synthetic v1.22 image) makes it boot again.
    firmware = tmp_path / "fw.bin"
    firmware.write_bytes(build_merged_firmware("v1.22.2"))
    rom_board.set_boot_button(True)
    rom_board.hard_reset()
    assert esptool(rom_board.port, "write-flash", "0x1000", str(firmware)).returncode == 0
    rom_board.set_boot_button(False)
    rom_board.hard_reset()
    assert not rom_board.firmware_missing
    assert mpremote(rom_board.port, "eval", "1 + 1").stdout.strip() == "2"


@pytest.mark.hil_duration(25)
def test_default_stub_flow_over_rfc2217_with_the_reset_circuit(
        board_factory: BoardFactory, tmp_path: Path) -> None:
    # esptool's own DTR/RTS reset into the ROM, the stub upload and a baud change.
    board = board_factory(rfc2217_port=0)
    assert board.rfc2217_url is not None
    data = os.urandom(64 * 1024)
    (tmp_path / "b.bin").write_bytes(data)
    result = esptool(board.rfc2217_url, "--baud", "460800", "write-flash", "0x300000",
                     str(tmp_path / "b.bin"), reset=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Stub flasher running." in result.stdout and "Changed." in result.stdout
    assert "Hash of data verified." in result.stdout
    after = mpremote(board.rfc2217_url, "eval", "1 + 1")  # hard reset: MicroPython again
    assert after.stdout.strip() == "2", after.stdout + after.stderr
