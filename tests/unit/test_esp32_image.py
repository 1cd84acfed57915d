"""Firmware files: the checks and the flash offset chosen before esptool runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.emulator.firmware_image import (
    build_app_image,
    build_bootloader_image,
    build_merged_firmware,
)
from harness.errors import FlashError
from harness.esp32.image import load_firmware, parse_image

pytestmark = pytest.mark.unit


def test_merged_firmware_goes_to_0x1000_and_names_its_app(tmp_path: Path) -> None:
    path = tmp_path / "ESP32_GENERIC.bin"
    path.write_bytes(build_merged_firmware("v1.22.2"))
    firmware = load_firmware(path)
    assert (firmware.kind, firmware.flash_offset, firmware.chip) == ("merged", 0x1000, "ESP32")
    assert firmware.app.app is not None
    assert (firmware.app.app.project_name, firmware.app.app.version) == ("micropython", "v1.22.2")


def test_bare_app_image_goes_to_the_app_partition(tmp_path: Path) -> None:
    path = tmp_path / "micropython.bin"
    path.write_bytes(build_app_image("v1.24.0", chip_id=9))
    firmware = load_firmware(path)
    assert (firmware.kind, firmware.flash_offset, firmware.chip) == ("app", 0x10000, "ESP32-S3")


def test_a_file_that_is_not_an_esp_image_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "firmware.uf2"
    path.write_bytes(b"UF2\nnot an esp image")
    with pytest.raises(FlashError, match=r"is not an ESP32 firmware image: it starts with 0x55"
                       ) as caught:
        load_firmware(path)
    assert "\n" not in str(caught.value)


def test_missing_firmware_file(tmp_path: Path) -> None:
    with pytest.raises(FlashError, match="does not exist"):
        load_firmware(tmp_path / "nope.bin")


def test_a_bootloader_alone_is_not_a_firmware(tmp_path: Path) -> None:
    path = tmp_path / "bootloader.bin"
    path.write_bytes(build_bootloader_image())
    with pytest.raises(FlashError, match="bootloader image without an app"):
        load_firmware(path)


def test_truncated_and_corrupt_images(tmp_path: Path) -> None:
    image = build_app_image("v1.22.2")
    with pytest.raises(FlashError, match="truncated"):
        parse_image(image[:200])
    corrupt = bytearray(image)
    corrupt[-33] ^= 0x01  # the checksum byte (just before the SHA-256)
    assert not parse_image(bytes(corrupt)).valid
    path = tmp_path / "corrupt.bin"
    path.write_bytes(bytes(corrupt))
    with pytest.raises(FlashError, match="corrupt"):
        load_firmware(path)
