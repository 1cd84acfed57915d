"""ESP32 firmware files: the app image format, the partition table, and merged binaries.

Layouts (read from esptool's ``bin_image.py`` and ESP-IDF's ``esp_app_format.h``):

* app/bootloader image: 8-byte header (magic 0xE9, segment count, SPI mode, size/freq,
  entry), 16-byte extended header (chip id at byte 4, hash-appended flag last), then
  segments (load address, length, data); a checksum byte (XOR of all segment data, seed
  0xEF) at the end of the next 16-byte boundary; optionally a SHA-256 of all of that.
* ``esp_app_desc_t`` (magic 0xABCD5432) opens an app's first segment: version, project
  name, compile time/date, IDF version.
* partition table at flash 0x8000: 32-byte entries starting 0xAA 0x50.

A MicroPython download for the ESP32 is either a merged binary written at 0x1000
(bootloader, partition table at file offset 0x7000, app at 0xF000) or a bare app image
written at the app partition (0x10000).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import FlashError

IMAGE_MAGIC = 0xE9
APP_DESC_MAGIC = 0xABCD5432
CHECKSUM_SEED = 0xEF
HEADER = struct.Struct("<BBBBI")
EXTENDED_HEADER = struct.Struct("<BBBBHBHH4BB")
SEGMENT_HEADER = struct.Struct("<II")
APP_DESC = struct.Struct("<II8s32s32s16s16s32s32s")
PARTITION_ENTRY = struct.Struct("<2sBBII16sI")
PARTITION_MAGIC = b"\xaa\x50"
PARTITION_TABLE_OFFSET = 0x8000
ESP32_BOOTLOADER_OFFSET = 0x1000
DEFAULT_APP_OFFSET = 0x10000
MAX_SEGMENTS = 16

# Chip ids in the extended header (esptool's IMAGE_CHIP_ID per target).
CHIP_NAMES = {
    0: "ESP32",
    2: "ESP32-S2",
    5: "ESP32-C3",
    9: "ESP32-S3",
    12: "ESP32-C2",
    13: "ESP32-C6",
    16: "ESP32-H2",
    18: "ESP32-P4",
    23: "ESP32-C5",
    20: "ESP32-C61",
}


@dataclass(frozen=True)
class AppDescription:
    project_name: str
    version: str
    idf_version: str
    compile_date: str
    compile_time: str
    secure_version: int


@dataclass(frozen=True)
class Segment:
    load_address: int
    length: int


@dataclass(frozen=True)
class EspImage:
    chip: str
    chip_id: int
    entry: int
    segments: tuple[Segment, ...]
    length: int  # bytes from the magic to the end of the checksum / hash
    checksum_ok: bool
    sha256_ok: bool | None  # None: the image carries no hash
    app: AppDescription | None  # None for a bootloader or a non-IDF image

    @property
    def valid(self) -> bool:
        return self.checksum_ok and self.sha256_ok is not False


@dataclass(frozen=True)
class Partition:
    label: str
    type: int
    subtype: int
    offset: int
    size: int

    @property
    def is_app(self) -> bool:
        return self.type == 0


@dataclass(frozen=True)
class FirmwareFile:
    """A firmware file checked and placed: what to write, and where."""

    path: Path
    data: bytes = field(repr=False)
    flash_offset: int
    kind: str  # "merged" (bootloader + partitions + app) or "app"
    app: EspImage

    @property
    def chip(self) -> str:
        return self.app.chip


def _cstr(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("ascii", "replace")


def parse_image(data: bytes, *, source: str = "image") -> EspImage:
    """Parse an ESP app or bootloader image at the start of ``data`` (trailing bytes ok)."""
    if len(data) < HEADER.size + EXTENDED_HEADER.size or data[0] != IMAGE_MAGIC:
        first = f"{data[0]:#04x}" if data else "nothing"
        raise FlashError(
            f"{source} is not an ESP32 firmware image: it starts with {first}, not 0xe9",
            hint="pass the .bin firmware for your board (e.g. ESP32_GENERIC-*.bin)",
        )
    _magic, count, _mode, _size_freq, entry = HEADER.unpack_from(data, 0)
    ext = EXTENDED_HEADER.unpack_from(data, HEADER.size)
    chip_id, hash_appended = ext[4], ext[-1]
    if not 0 < count <= MAX_SEGMENTS or hash_appended not in (0, 1):
        raise FlashError(f"{source} has a corrupt image header ({count} segments)")
    position = HEADER.size + EXTENDED_HEADER.size
    checksum = CHECKSUM_SEED
    segments: list[Segment] = []
    app: AppDescription | None = None
    for index in range(count):
        if position + SEGMENT_HEADER.size > len(data):
            raise FlashError(f"{source} is truncated in segment {index}")
        address, length = SEGMENT_HEADER.unpack_from(data, position)
        position += SEGMENT_HEADER.size
        body = data[position : position + length]
        if len(body) != length:
            raise FlashError(f"{source} is truncated in segment {index}")
        if index == 0 and len(body) >= APP_DESC.size:
            app = _parse_app_description(body)
        for byte in body:
            checksum ^= byte
        segments.append(Segment(address, length))
        position += length
    position += 15 - position % 16  # the checksum byte ends a 16-byte block
    if position >= len(data):
        raise FlashError(f"{source} is truncated before its checksum")
    checksum_ok = data[position] == checksum
    position += 1
    sha256_ok: bool | None = None
    if hash_appended:
        digest = data[position : position + 32]
        sha256_ok = len(digest) == 32 and hashlib.sha256(data[:position]).digest() == digest
        position += 32
    return EspImage(
        chip=CHIP_NAMES.get(chip_id, f"unknown chip id {chip_id}"),
        chip_id=chip_id,
        entry=entry,
        segments=tuple(segments),
        length=position,
        checksum_ok=checksum_ok,
        sha256_ok=sha256_ok,
        app=app,
    )


def _parse_app_description(segment: bytes) -> AppDescription | None:
    fields = APP_DESC.unpack_from(segment, 0)
    if fields[0] != APP_DESC_MAGIC:
        return None
    _, secure_version, _, version, project, time, date, idf, _ = fields
    return AppDescription(
        project_name=_cstr(project),
        version=_cstr(version),
        idf_version=_cstr(idf),
        compile_date=_cstr(date),
        compile_time=_cstr(time),
        secure_version=secure_version,
    )


def parse_partition_table(table: bytes) -> list[Partition]:
    """Entries of a partition table (stops at the MD5 entry or erased flash)."""
    partitions: list[Partition] = []
    for start in range(0, len(table) - PARTITION_ENTRY.size + 1, PARTITION_ENTRY.size):
        magic, ptype, subtype, offset, size, label, _flags = PARTITION_ENTRY.unpack_from(
            table, start
        )
        if magic != PARTITION_MAGIC:
            break
        partitions.append(Partition(_cstr(label), ptype, subtype, offset, size))
    return partitions


def first_app_partition(partitions: list[Partition]) -> Partition | None:
    return next((p for p in partitions if p.is_app), None)


def load_firmware(path: Path) -> FirmwareFile:
    """Read and check a firmware file; decide its flash offset from its layout."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FlashError(
            f"firmware file {path} does not exist", hint="check the --hil-firmware path"
        ) from None
    except OSError as exc:
        raise FlashError(f"cannot read firmware file {path}: {exc.strerror}") from exc
    image = parse_image(data, source=str(path))
    if image.app is not None:
        kind, offset, app = "app", DEFAULT_APP_OFFSET, image
    else:
        app_start = _merged_app_start(data)
        if app_start is None:
            raise FlashError(
                f"{path} is an ESP bootloader image without an app",
                hint="pass the full firmware (merged .bin) or the application image",
            )
        kind, offset = "merged", ESP32_BOOTLOADER_OFFSET
        app = parse_image(data[app_start:], source=f"{path} (app at +{app_start:#x})")
    if not app.valid:
        raise FlashError(f"{path} is corrupt: its image checksum or SHA-256 does not match")
    return FirmwareFile(path=path, data=data, flash_offset=offset, kind=kind, app=app)


def _merged_app_start(data: bytes) -> int | None:
    """File offset of the app inside a merged binary that starts at the bootloader (0x1000)."""
    table_at = PARTITION_TABLE_OFFSET - ESP32_BOOTLOADER_OFFSET
    partitions = parse_partition_table(data[table_at : table_at + 0xC00])
    app = first_app_partition(partitions)
    if app is None:
        return None
    start = app.offset - ESP32_BOOTLOADER_OFFSET
    return start if 0 < start < len(data) else None
