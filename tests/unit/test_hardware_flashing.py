"""Flashing with unmodified esptool over real RFC2217, onto the ROM-level board double."""

from __future__ import annotations

import argparse
import os
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.deadline import Deadline
from harness.emulator.firmware_image import (
    FLASH_FILE_NAME,
    build_app_image,
    build_merged_firmware,
    profile_from_flash,
)
from harness.emulator.rfc2217 import Rfc2217Server
from harness.emulator.rom import FlashStore
from harness.emulator.rom_board import RomBoard
from harness.errors import (
    BootloaderStuck,
    DeadlineExceeded,
    DeviceLost,
    FlashError,
    PortNotFound,
)
from harness.esp32.image import load_firmware
from harness.esp32.protocol import (
    Op,
)
from harness.hardware.flashing import (
    _check_booted_release,
    flash_firmware,
    run_esptool,
    wait_for_micropython,
)
from harness.hardware.serial_port import open_serial

pytestmark = [
    pytest.mark.unit,
    # pyserial 3.5's RFC2217 client thread uses setDaemon()/setName(); not ours to fix
    pytest.mark.filterwarnings("ignore::DeprecationWarning:serial.rfc2217"),
]


@pytest.fixture
def board(tmp_path: Path) -> Iterator[tuple[RomBoard, str]]:
    state = tmp_path / "board"
    state.mkdir()
    double = RomBoard(state)
    with Rfc2217Server(double) as server:
        yield double, server.url


@pytest.mark.hil_duration(25)
def test_flash_writes_verifies_resets_and_sees_the_banner(
    board: tuple[RomBoard, str], tmp_path: Path
) -> None:
    double, url = board
    image = tmp_path / "ESP32_GENERIC-v1.24.1.bin"
    image.write_bytes(build_merged_firmware("v1.24.1"))
    progress: list[str] = []
    result = flash_firmware(url, image, progress=progress.append)

    assert not result.skipped and result.offset == 0x1000 and result.chip == "ESP32"
    assert result.used_stub  # esptool's default flow: the stub uploaded and ran
    assert result.banner is not None and result.banner.startswith("MicroPython v1.24.1 on")
    assert double.flash.read(0x1000, len(image.read_bytes())) == image.read_bytes()
    assert profile_from_flash(tmp_path / "board") == "v1.24"
    assert double.boots[-1] == "flash"  # the harness's own DTR/RTS hard reset booted it
    assert "download" in double.boots  # esptool's classic reset entered the bootloader
    assert any("Hash of data verified" in line for line in progress)
    assert any("Writing at" in line or "Wrote" in line for line in progress)


@pytest.mark.hil_duration(24)
def test_flash_skips_an_image_already_on_the_board(
    board: tuple[RomBoard, str], tmp_path: Path
) -> None:
    double, url = board
    firmware = build_merged_firmware("v1.22.2")
    store = FlashStore(tmp_path / "board" / FLASH_FILE_NAME)
    store.program(0x1000, firmware)
    image = tmp_path / "fw.bin"
    image.write_bytes(firmware)
    result = flash_firmware(url, image, use_stub=False)
    assert result.skipped
    commands = {op for rom in double.download_sessions for op in rom.commands}
    assert Op.SPI_FLASH_MD5 in commands  # esptool compared the flash contents...
    assert not commands & {Op.FLASH_BEGIN, Op.FLASH_DEFL_BEGIN}  # ...and wrote nothing
    assert result.banner is not None and "v1.22.2" in result.banner


def test_wrong_chip_for_the_image_is_one_clear_line(
    board: tuple[RomBoard, str], tmp_path: Path
) -> None:
    _, url = board
    image = tmp_path / "s3.bin"
    image.write_bytes(build_app_image("v1.24.1", chip_id=9))  # built for an ESP32-S3
    with pytest.raises(FlashError, match=r"wrong chip: s3.bin is built for ESP32-S3 but the "
                                         r"board on .* is an ESP32") as caught:
        flash_firmware(url, image, use_stub=False)
    assert "\n" not in str(caught.value)


def test_not_an_esp32_image_is_refused_before_touching_the_board(tmp_path: Path) -> None:
    image = tmp_path / "firmware.hex"
    image.write_text(":10010000214601360121470136007EFE09D2190140\n")
    with pytest.raises(FlashError, match="is not an ESP32 firmware image"):
        flash_firmware("rfc2217://127.0.0.1:9", image)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_refusing_rfc2217_server_is_one_clear_line(tmp_path: Path) -> None:
    url = f"rfc2217://127.0.0.1:{_closed_port()}"
    with pytest.raises(PortNotFound, match=r"cannot connect to rfc2217://127\.0\.0\.1:\d+"):
        open_serial(url)
    image = tmp_path / "fw.bin"
    image.write_bytes(build_app_image())
    with pytest.raises(PortNotFound, match="cannot connect to rfc2217") as caught:
        flash_firmware(url, image, use_stub=False, flash_timeout=60)
    assert "\n" not in str(caught.value)


def test_a_board_that_never_leaves_the_bootloader(tmp_path: Path) -> None:
    stuck = RomBoard(tmp_path, io0_stuck_low=True)  # BOOT button held / IO0 wired low
    FlashStore(tmp_path / FLASH_FILE_NAME).program(0x1000, build_merged_firmware())
    with Rfc2217Server(stuck) as server, pytest.raises(
        BootloaderStuck, match="restarted into the ROM bootloader, not the firmware"
    ):
        wait_for_micropython(server.url, timeout=10)


def test_esptool_is_killed_at_the_deadline() -> None:
    lines: list[str] = []
    with pytest.raises(DeadlineExceeded, match=r"timed out after 1 s waiting for .*last seen: "
                                               r"started"):
        run_esptool([], deadline=Deadline(1, "a hung esptool"), progress=lines.append,
                    command=[sys.executable, "-c",
                             "import os,time; print('started', os.getpid(), flush=True); "
                             "time.sleep(60)"])
    pid = int(lines[0].split()[1])
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # gone, not orphaned


def test_a_board_booting_another_release_than_flashed_is_an_error(tmp_path: Path) -> None:
    image = tmp_path / "fw.bin"
    image.write_bytes(build_merged_firmware("v1.24.1"))
    firmware = load_firmware(image)
    _check_booted_release("COM3", firmware, "MicroPython v1.24.1 on 2024-11-29; ESP32")
    with pytest.raises(FlashError, match=r"after flashing MicroPython v1\.24\.1 the board on "
                                         r"COM3 booted v1\.22"):
        _check_booted_release("COM3", firmware, "MicroPython v1.22.2 on 2024-02-22; ESP32")


def test_a_port_that_vanishes_while_waiting_is_device_lost(tmp_path: Path) -> None:
    silent = RomBoard(tmp_path)  # erased flash: the board never prints a banner
    server = Rfc2217Server(silent).__enter__()
    stopper = threading.Timer(1.0, server.__exit__, args=(None, None, None))
    stopper.start()
    try:
        with pytest.raises(DeviceLost, match="vanished while the board booted"):
            wait_for_micropython(server.url, timeout=30)
    finally:
        stopper.join()


def test_flash_command_refuses_a_file_that_is_not_firmware(tmp_path: Path) -> None:
    from harness.hardware import flash_cli

    bogus = tmp_path / "notes.txt"
    bogus.write_text("hello")
    parser = argparse.ArgumentParser()
    flash_cli.configure(parser)
    args = parser.parse_args([str(bogus), "--port", "rfc2217://127.0.0.1:9"])
    with pytest.raises(FlashError, match=r"notes\.txt is not an ESP32 firmware image"):
        flash_cli.run(args)
