"""Synthetic MicroPython images, checked by esptool, and which profile the flash boots."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from harness import lifetime
from harness.emulator.firmware_image import (
    FLASH_FILE_NAME,
    build_app_image,
    build_merged_firmware,
    profile_for_version,
    profile_from_flash,
)
from harness.emulator.rom import FlashStore

pytestmark = pytest.mark.unit


def test_esptool_accepts_the_synthetic_app_image(tmp_path: Path) -> None:
    image = tmp_path / "app.bin"
    image.write_bytes(build_app_image("v1.23.0"))
    result = lifetime.run([sys.executable, "-m", "esptool", "image-info", str(image)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Checksum: 0x" in result.stdout and "(valid)" in result.stdout
    assert "Validation hash:" in result.stdout
    assert "Project name: micropython" in result.stdout
    assert "App version: v1.23.0" in result.stdout


@pytest.mark.parametrize(("version", "profile"), [
    ("v1.22.2", "v1.22"), ("v1.27.0-preview.120", "v1.27"), ("1.22", None), ("", None)])
def test_profile_for_version(version: str, profile: str | None) -> None:
    assert profile_for_version(version) == profile


def _flash_with(tmp_path: Path, offset: int, data: bytes) -> None:
    store = FlashStore(tmp_path / FLASH_FILE_NAME)
    store.erase(offset, len(data))
    store.program(offset, data)


def test_merged_firmware_at_0x1000_boots_its_profile(tmp_path: Path) -> None:
    _flash_with(tmp_path, 0x1000, build_merged_firmware("v1.24.1"))
    assert profile_from_flash(tmp_path) == "v1.24"


def test_bare_app_at_0x10000_boots_without_a_partition_table(tmp_path: Path) -> None:
    _flash_with(tmp_path, 0x10000, build_app_image("v1.20.0"))
    assert profile_from_flash(tmp_path) == "v1.20"


def test_empty_missing_foreign_or_corrupt_flash_boots_nothing(tmp_path: Path) -> None:
    assert profile_from_flash(tmp_path) is None  # no flash file at all
    FlashStore(tmp_path / FLASH_FILE_NAME)
    assert profile_from_flash(tmp_path) is None  # erased flash

    _flash_with(tmp_path, 0x10000, build_app_image("v5.1.0", project="arduino-app"))
    assert profile_from_flash(tmp_path) is None  # not MicroPython

    image = bytearray(build_app_image("v1.22.2"))
    image[100] ^= 0xFF  # one flipped byte inside a segment
    _flash_with(tmp_path, 0x10000, bytes(image))
    assert profile_from_flash(tmp_path) is None
