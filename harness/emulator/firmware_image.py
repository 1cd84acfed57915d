"""What the emulated board's flash holds, and synthetic MicroPython images to put there.

The emulated ESP32 cannot execute Xtensa code, so "booting the flash" means: find the app
the way the second-stage bootloader does (first app partition in the table at 0x8000,
else 0x10000), check its image checksum and SHA-256, and read its ``esp_app_desc_t``.
An app whose project name is ``micropython`` and whose version is e.g. ``v1.22.2`` boots
the emulator's firmware profile ``v1.22``.

The builders below make such images for tests and demos. They are SYNTHETIC: a valid
ESP32 image container (header, segments, checksum, appended SHA-256, app descriptor)
around filler bytes, not MicroPython firmware. Never flash one to a real board.
"""

from __future__ import annotations

import hashlib
import re
import struct
from pathlib import Path

from harness.errors import FlashError
from harness.esp32.image import (
    APP_DESC,
    APP_DESC_MAGIC,
    CHECKSUM_SEED,
    DEFAULT_APP_OFFSET,
    ESP32_BOOTLOADER_OFFSET,
    EXTENDED_HEADER,
    HEADER,
    IMAGE_MAGIC,
    PARTITION_ENTRY,
    PARTITION_MAGIC,
    PARTITION_TABLE_OFFSET,
    EspImage,
    first_app_partition,
    parse_image,
    parse_partition_table,
)

FLASH_FILE_NAME = "flash.bin"
MICROPYTHON_PROJECT = "micropython"
DROM_ADDRESS = 0x3F400020  # where an ESP32 app's first (rodata) segment is mapped
IROM_ADDRESS = 0x400D0020
ENTRY_ADDRESS = 0x40081000
SPI_DIO = 2
SIZE_4MB_FREQ_40M = 0x20
_VERSION = re.compile(r"^v(\d+)\.(\d+)")


def profile_for_version(version: str) -> str | None:
    """``v1.22.2`` (or ``v1.27.0-preview.120``) -> the profile name ``v1.22``."""
    match = _VERSION.match(version)
    return f"v{match.group(1)}.{match.group(2)}" if match else None


def build_app_image(
    version: str = "v1.22.2",
    *,
    project: str = MICROPYTHON_PROJECT,
    chip_id: int = 0,
    filler_size: int = 4096,
) -> bytes:
    """A synthetic, structurally valid ESP32 app image (see the module docstring)."""
    desc = APP_DESC.pack(
        APP_DESC_MAGIC,
        0,
        b"",
        version.encode()[:31],
        project.encode()[:31],
        b"00:00:00",
        b"Jan  1 2024",
        b"v5.0.4",
        b"\x00" * 32,
    ).ljust(256, b"\x00")
    filler = hashlib.sha256(f"{project} {version}".encode()).digest()
    rodata = desc + (filler * (filler_size // 32 + 1))[:filler_size]
    code = b"\x00" * 64  # the IROM segment; never executed
    return _image([(DROM_ADDRESS, rodata), (IROM_ADDRESS, code)], chip_id=chip_id)


def build_bootloader_image(chip_id: int = 0) -> bytes:
    """A synthetic second-stage bootloader image (no app descriptor)."""
    return _image([(0x3FFF0030, b"\x00" * 256)], chip_id=chip_id, append_hash=False)


def build_partition_table(app_size: int = 0x1F0000) -> bytes:
    """The layout MicroPython's ESP32_GENERIC build uses: nvs, phy_init, factory, vfs."""
    entries = [
        ("nvs", 1, 0x02, 0x9000, 0x6000),
        ("phy_init", 1, 0x01, 0xF000, 0x1000),
        ("factory", 0, 0x00, DEFAULT_APP_OFFSET, app_size),
        ("vfs", 1, 0x81, DEFAULT_APP_OFFSET + app_size, 0x200000),
    ]
    table = b"".join(
        PARTITION_ENTRY.pack(PARTITION_MAGIC, ptype, sub, offset, size, label.encode(), 0)
        for label, ptype, sub, offset, size in entries
    )
    return table.ljust(0xC00, b"\xff")


def build_merged_firmware(version: str = "v1.22.2", *, chip_id: int = 0) -> bytes:
    """Bootloader + partition table + app, laid out to be written at 0x1000 like the
    merged ``ESP32_GENERIC-*.bin`` downloads."""
    image = bytearray(b"\xff" * (DEFAULT_APP_OFFSET - ESP32_BOOTLOADER_OFFSET))
    boot = build_bootloader_image(chip_id)
    image[: len(boot)] = boot
    table_at = PARTITION_TABLE_OFFSET - ESP32_BOOTLOADER_OFFSET
    table = build_partition_table()
    image[table_at : table_at + len(table)] = table
    return bytes(image) + build_app_image(version, chip_id=chip_id)


def _image(segments: list[tuple[int, bytes]], *, chip_id: int, append_hash: bool = True) -> bytes:
    out = bytearray(HEADER.pack(IMAGE_MAGIC, len(segments), SPI_DIO, SIZE_4MB_FREQ_40M,
                                ENTRY_ADDRESS))
    out += EXTENDED_HEADER.pack(0xEE, 0, 0, 0, chip_id, 0, 0, 0xFFFF, 0, 0, 0, 0,
                                int(append_hash))
    checksum = CHECKSUM_SEED
    for address, data in segments:
        data = data.ljust(-(-len(data) // 4) * 4, b"\x00")  # segments are word-aligned
        out += struct.pack("<II", address, len(data)) + data
        for byte in data:
            checksum ^= byte
    out += b"\x00" * (15 - len(out) % 16)
    out.append(checksum)
    if append_hash:
        out += hashlib.sha256(out).digest()
    return bytes(out)


def app_in_flash(flash: bytes) -> EspImage | None:
    """The app the second-stage bootloader would pick, if it is a valid image."""
    table = parse_partition_table(flash[PARTITION_TABLE_OFFSET : PARTITION_TABLE_OFFSET + 0xC00])
    partition = first_app_partition(table)
    offset = partition.offset if partition is not None else DEFAULT_APP_OFFSET
    if offset >= len(flash) or flash[offset] != IMAGE_MAGIC:
        return None
    try:
        image = parse_image(flash[offset:], source=f"flash at {offset:#x}")
    except FlashError:  # structural damage: the bootloader would not boot it
        return None
    return image if image.valid else None


FILESYSTEM_SUBTYPES = (0x81, 0x82, 0x83)  # data partitions FAT, SPIFFS, littlefs


def filesystem_range(flash: bytes) -> tuple[int, int]:
    """(offset, size) of the filesystem partition MicroPython mounts as "/": the one its
    partition table names "vfs" (or the first filesystem-type data partition), else the
    ESP32_GENERIC layout's."""
    table = parse_partition_table(flash[PARTITION_TABLE_OFFSET : PARTITION_TABLE_OFFSET + 0xC00])
    candidates = [p for p in table if p.label == "vfs"] or [
        p for p in table if p.type == 1 and p.subtype in FILESYSTEM_SUBTYPES]
    if candidates:
        return candidates[0].offset, candidates[0].size
    return DEFAULT_APP_OFFSET + 0x1F0000, 0x200000


def profile_from_flash(state_dir: Path) -> str | None:
    """The firmware profile the emulated flash boots, or None (no/foreign/corrupt app)."""
    path = Path(state_dir) / FLASH_FILE_NAME
    if not path.exists():
        return None
    image = app_in_flash(path.read_bytes())
    if image is None or image.app is None or image.app.project_name != MICROPYTHON_PROJECT:
        return None
    return profile_for_version(image.app.version)
