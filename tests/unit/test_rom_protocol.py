"""The emulated ROM bootloader, driven packet by packet (the SLIP/command layer)."""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path

import pytest

from harness.emulator.rom import FlashStore, RegisterFile, RomBootloader
from harness.esp32 import rom
from harness.esp32.protocol import (
    SYNC_PAYLOAD,
    Op,
    RomError,
    SlipDecoder,
    rom_checksum,
    slip_encode,
)

pytestmark = pytest.mark.unit


class Host:
    """Talks to a RomBootloader the way esptool does, and decodes its replies."""

    def __init__(self, tmp_path: Path, **kwargs: object) -> None:
        self.flash = FlashStore(tmp_path / "flash.bin", size=0x40000)
        self.sent: list[bytes] = []
        self.rom = RomBootloader(self.sent.append, self.flash, **kwargs)  # type: ignore[arg-type]
        self._decoder = SlipDecoder()

    def request(
        self, op: int, data: bytes = b"", checksum: int = 0
    ) -> list[tuple[int, int, bytes]]:
        self.sent.clear()
        self.rom.feed(slip_encode(struct.pack("<BBHI", 0, op, len(data), checksum) + data))
        replies = []
        for frame in self._decoder.feed(b"".join(self.sent)):
            direction, rop, size, value = struct.unpack("<BBHI", frame[:8])
            assert direction == 1 and len(frame) - 8 == size
            replies.append((rop, value, frame[8:]))
        return replies

    def ok(self, op: int, data: bytes = b"", checksum: int = 0) -> tuple[int, bytes]:
        [(rop, value, body)] = self.request(op, data, checksum)
        assert rop == op
        assert body[-4:] == b"\x00\x00\x00\x00", f"status {body[-4:].hex()}"
        return value, body[:-4]


def test_sync_is_answered_eight_times_with_a_rom_value(tmp_path: Path) -> None:
    host = Host(tmp_path)
    replies = host.request(Op.SYNC, SYNC_PAYLOAD)
    assert len(replies) == 8
    assert all(op == Op.SYNC and value != 0 for op, value, _ in replies)  # 0 would mean "stub"


def test_read_reg_reports_the_esp32_magic_and_the_mac_in_efuse(tmp_path: Path) -> None:
    host = Host(tmp_path, mac=bytes.fromhex("a0b1c2d3e4f5"))
    assert host.ok(Op.READ_REG, struct.pack("<I", 0x40001000))[0] == 0x00F01D83
    word1 = host.ok(Op.READ_REG, struct.pack("<I", 0x3FF5A004))[0]
    word2 = host.ok(Op.READ_REG, struct.pack("<I", 0x3FF5A008))[0]
    assert struct.pack(">II", word2, word1)[2:] == bytes.fromhex("a0b1c2d3e4f5")


def test_spi_user_command_returns_the_jedec_id_of_the_flash_size(tmp_path: Path) -> None:
    regs = RegisterFile(mac=bytes(6), flash_size=4 * 1024 * 1024)
    regs.write(rom.SPI_USR2, (7 << 28) | 0x9F)
    regs.write(rom.SPI_CMD, rom.SPI_CMD_USR)
    assert regs.read(rom.SPI_CMD) == 0  # done at once
    assert regs.read(rom.SPI_W0) >> 16 == 0x16  # 2**22 bytes = 4 MB


def test_write_reg_applies_the_mask(tmp_path: Path) -> None:
    host = Host(tmp_path)
    address = 0x3FF00000
    host.ok(Op.WRITE_REG, struct.pack("<IIII", address, 0xFFFFFFFF, 0x0000FF00, 0))
    assert host.ok(Op.READ_REG, struct.pack("<I", address))[0] == 0x0000FF00


def test_flash_write_lands_in_the_store_and_md5_matches(tmp_path: Path) -> None:
    host = Host(tmp_path)
    data = bytes(range(256)) * 8  # two 1 KiB blocks
    host.ok(Op.FLASH_BEGIN, struct.pack("<IIII", len(data), 2, 1024, 0x2000))
    for seq in range(2):
        block = data[seq * 1024 : (seq + 1) * 1024]
        host.ok(Op.FLASH_DATA, struct.pack("<IIII", 1024, seq, 0, 0) + block, rom_checksum(block))
    host.ok(Op.FLASH_END, struct.pack("<I", 1))
    assert host.flash.read(0x2000, len(data)) == data
    _, digest = host.ok(Op.SPI_FLASH_MD5, struct.pack("<IIII", 0x2000, len(data), 0, 0))
    assert digest.decode() == hashlib.md5(data).hexdigest()


def test_compressed_write_is_inflated_into_flash(tmp_path: Path) -> None:
    host = Host(tmp_path)
    data = b"micropython " * 400
    packed = zlib.compress(data, 9)
    host.ok(Op.FLASH_DEFL_BEGIN, struct.pack("<IIII", len(data), 1, 0x4000, 0x1000))
    host.ok(Op.FLASH_DEFL_DATA, struct.pack("<IIII", len(packed), 0, 0, 0) + packed,
            rom_checksum(packed))
    assert host.flash.read(0x1000, len(data)) == data


def test_a_block_with_a_bad_checksum_is_refused_and_not_written(tmp_path: Path) -> None:
    host = Host(tmp_path)
    host.ok(Op.FLASH_BEGIN, struct.pack("<IIII", 1024, 1, 1024, 0))
    block = b"\x00" * 1024
    [(_, _, body)] = host.request(Op.FLASH_DATA, struct.pack("<IIII", 1024, 0, 0, 0) + block,
                                  rom_checksum(block) ^ 0x55)
    assert body[:2] == bytes([1, RomError.BAD_CHECKSUM])
    assert host.flash.read(0, 1024) == b"\xff" * 1024


def _run_stub(host: Host) -> None:
    code = b"\x36\x41\x00" * 100  # whatever esptool uploads; the chip takes it as its stub
    host.ok(Op.MEM_BEGIN, struct.pack("<IIII", len(code), 1, 0x1800, 0x40080000))
    host.ok(Op.MEM_DATA, struct.pack("<IIII", len(code), 0, 0, 0) + code, rom_checksum(code))
    host.sent.clear()
    host.rom.feed(slip_encode(struct.pack("<BBHI", 0, Op.MEM_END, 8, 0)
                              + struct.pack("<II", 0, 0x4008_0400)))
    frames = SlipDecoder().feed(b"".join(host.sent))
    assert frames[0][:2] == bytes([1, Op.MEM_END]) and frames[1] == b"OHAI"
    assert host.rom.stub


def test_the_stub_upload_runs_the_stub_which_says_ohai(tmp_path: Path) -> None:
    host = Host(tmp_path)
    _run_stub(host)
    replies = host.request(Op.SYNC, SYNC_PAYLOAD)
    assert len(replies) == 8 and all(value == 0 for _, value, _ in replies)  # "stub"
    [(op, _, body)] = host.request(Op.READ_REG, struct.pack("<I", 0x40001000))
    assert op == Op.READ_REG and body == b"\x00\x00"  # the stub's two status bytes


def test_stub_md5_is_raw_and_erase_region_and_erase_flash_work(tmp_path: Path) -> None:
    host = Host(tmp_path)
    host.flash.program(0x2000, b"\x00" * 16)
    _run_stub(host)
    [(_, _, body)] = host.request(Op.SPI_FLASH_MD5, struct.pack("<IIII", 0x2000, 16, 0, 0))
    assert body == hashlib.md5(b"\x00" * 16).digest() + b"\x00\x00"
    [(_, _, body)] = host.request(Op.ERASE_REGION, struct.pack("<II", 0x2000, 0x1000))
    assert body == b"\x00\x00" and host.flash.read(0x2000, 16) == b"\xff" * 16
    [(_, _, body)] = host.request(Op.ERASE_REGION, struct.pack("<II", 0x2001, 0x1000))
    assert body == bytes([1, 0xC0])  # not sector-aligned
    host.flash.program(0x3000, b"\x12")
    host.request(Op.ERASE_FLASH)
    assert host.flash.read(0, host.flash.size) == b"\xff" * host.flash.size
    [(_, _, body)] = host.request(Op.READ_FLASH_SLOW, struct.pack("<II", 0, 4))
    assert body == bytes([1, 0xFF])  # a ROM-only command: not implemented by the stub


def test_stub_read_flash_waits_for_acks_and_ends_with_the_md5(tmp_path: Path) -> None:
    host = Host(tmp_path)
    data = bytes(range(256)) * 40  # 10 KiB
    host.flash.program(0x4000, data)
    _run_stub(host)
    host.sent.clear()
    host.rom.feed(slip_encode(struct.pack("<BBHI", 0, Op.READ_FLASH, 16, 0)
                              + struct.pack("<IIII", 0x4000, len(data), 0x1000, 2)))
    decoder = SlipDecoder()
    frames = decoder.feed(b"".join(host.sent))
    assert frames[0][:2] == bytes([1, Op.READ_FLASH])
    assert [len(f) for f in frames[1:]] == [0x1000, 0x1000]  # two in flight, then wait

    def ack(total: int) -> list[bytes]:
        host.sent.clear()
        host.rom.feed(slip_encode(struct.pack("<I", total)))
        return decoder.feed(b"".join(host.sent))

    received = b"".join(frames[1:])
    while len(received) < len(data):
        more = ack(len(received))
        assert more, "the stub sent nothing after an ack"
        received += b"".join(more)
    assert received == data
    assert ack(len(received)) == [hashlib.md5(data).digest()]


def test_read_flash_slow_returns_64_byte_blocks(tmp_path: Path) -> None:
    host = Host(tmp_path)
    host.flash.program(0x100, b"hello")
    _, block = host.ok(Op.READ_FLASH_SLOW, struct.pack("<II", 0x100, 5))
    assert len(block) == 64 and block[:5] == b"hello"


def test_flash_end_without_stay_flag_runs_user_code(tmp_path: Path) -> None:
    ran: list[bool] = []
    host = Host(tmp_path, on_run_user_code=lambda: ran.append(True))
    host.ok(Op.FLASH_END, struct.pack("<I", 1))
    assert ran == []
    host.ok(Op.FLASH_END, struct.pack("<I", 0))
    assert ran == [True]


def test_noise_outside_frames_is_ignored_and_escapes_are_decoded() -> None:
    decoder = SlipDecoder()
    stream = b"boot noise\r\n" + slip_encode(b"\xc0\xdb\x01")
    assert decoder.feed(stream[:7]) == []
    assert decoder.feed(stream[7:]) == [b"\xc0\xdb\x01"]


def test_flash_store_programs_like_nor_flash(tmp_path: Path) -> None:
    store = FlashStore(tmp_path / "f.bin", size=0x2000)
    store.program(0x10, b"\x0f")
    store.program(0x10, b"\xf1")  # without an erase only 1->0 transitions happen
    assert store.read(0x10, 1) == b"\x01"
    store.erase(0x10, 1)  # erases the whole 4 KiB sector
    assert store.read(0, 0x1000) == b"\xff" * 0x1000
    with pytest.raises(ValueError, match="outside"):
        store.read(0x1FFF, 2)


def test_flash_store_persists_across_instances(tmp_path: Path) -> None:
    FlashStore(tmp_path / "f.bin", size=0x1000).program(0, b"kept")
    assert FlashStore(tmp_path / "f.bin", size=0x1000).read(0, 4) == b"kept"
