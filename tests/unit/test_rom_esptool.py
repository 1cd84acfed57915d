"""Unmodified esptool against the emulated ROM bootloader (``--no-stub``, over socket://).

A socket:// port has no DTR/RTS, so esptool does not reset the "chip" and talks straight
to the ROM, which is what these tests are about; the reset path is tested over RFC2217
in test_hardware_rfc2217.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import lifetime
from harness.emulator.firmware_image import build_merged_firmware, profile_from_flash
from harness.emulator.rom import FlashStore, RomBootloader

pytestmark = pytest.mark.unit

ESPTOOL_TIMEOUT_S = 90


class RomSocketServer:
    """One RomBootloader per TCP connection, on 127.0.0.1, all sharing one flash."""

    def __init__(self, flash: FlashStore) -> None:
        self.flash = flash
        self.commands: list[int] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self._listener.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with client:
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                rom = RomBootloader(client.sendall, self.flash)
                with contextlib.suppress(OSError):
                    while data := client.recv(65536):
                        rom.feed(data)
                self.commands += rom.commands

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept()
        self._listener.close()
        self._thread.join(timeout=5)


@pytest.fixture
def rom(tmp_path: Path) -> Iterator[RomSocketServer]:
    server = RomSocketServer(FlashStore(tmp_path / "flash.bin"))
    yield server
    server.close()


def esptool(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return lifetime.run(
        [sys.executable, "-m", "esptool", "--port", url, "--no-stub", "--after", "no-reset",
         *args],
        capture_output=True, text=True, timeout=ESPTOOL_TIMEOUT_S, check=False)


def test_chip_id_detects_an_esp32(rom: RomSocketServer) -> None:
    result = esptool(rom.url, "chip-id")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Detecting chip type... ESP32" in result.stdout
    assert "ESP32-D0WD-V3 (revision v3.0)" in result.stdout


def test_read_mac_reads_the_efuse_mac(rom: RomSocketServer) -> None:
    result = esptool(rom.url, "read-mac")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "MAC:                24:6f:28:a1:b2:c3" in result.stdout


def test_write_flash_lands_in_flash_verifies_and_reads_back(
    rom: RomSocketServer, tmp_path: Path
) -> None:
    image = tmp_path / "fw.bin"
    image.write_bytes(build_merged_firmware("v1.22.2"))
    result = esptool(rom.url, "write-flash", "0x1000", str(image))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Hash of data verified." in result.stdout
    assert rom.flash.read(0x1000, len(image.read_bytes())) == image.read_bytes()
    assert profile_from_flash(tmp_path) == "v1.22"  # the flash now boots that profile

    readback = tmp_path / "readback.bin"
    result = esptool(rom.url, "read-flash", "0x10000", "0x200", str(readback))
    assert result.returncode == 0, result.stdout + result.stderr
    assert readback.read_bytes() == image.read_bytes()[0xF000:0xF200]


def test_compressed_write_and_verify_flash(rom: RomSocketServer, tmp_path: Path) -> None:
    data = (b"compressible " * 20000)[:0x30000]
    blob = tmp_path / "blob.bin"
    blob.write_bytes(data)
    result = esptool(rom.url, "write-flash", "--compress", "0x100000", str(blob))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "compressed)" in result.stdout  # the FLASH_DEFL_* path was used
    assert rom.flash.md5(0x100000, len(data)) == hashlib.md5(data).hexdigest()
    verify = esptool(rom.url, "verify-flash", "0x100000", str(blob))
    assert "digest matched" in verify.stdout


def test_esptool_refuses_a_wrong_chip_argument(rom: RomSocketServer) -> None:
    result = esptool(rom.url, "--chip", "esp32s3", "chip-id")
    assert result.returncode != 0
    assert "This chip is ESP32, not ESP32-S3" in result.stdout + result.stderr
