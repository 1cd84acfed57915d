"""The ESP32 ROM serial bootloader, as the emulated board's download mode.

A real ESP32 that comes out of reset with IO0 held low runs the ROM's UART download
protocol: SLIP-framed request/response packets that esptool speaks. This module answers
it for unmodified esptool, with and without its flasher stub:

* SYNC, READ_REG, WRITE_REG (with the SPI "user command" registers, so esptool can read
  the flash JEDEC id and SFDP signature), SPI_ATTACH, SPI_SET_PARAMS, CHANGE_BAUDRATE;
* FLASH_BEGIN/DATA/END and FLASH_DEFL_BEGIN/DATA/END, landing in a :class:`FlashStore`;
* SPI_FLASH_MD5 and READ_FLASH_SLOW for verification and read-back;
* MEM_BEGIN/MEM_DATA/MEM_END: the RAM upload esptool uses for its stub. The emulated chip
  cannot execute what it is sent, so code it is told to run is taken to be esptool's
  flasher stub: it greets with ``OHAI`` and from then on serves the stub's protocol
  (two status bytes, raw MD5, ERASE_FLASH, ERASE_REGION, the windowed READ_FLASH).

The protocol's words (opcodes, status codes, SLIP) are in :mod:`harness.esp32.protocol`,
the chip's addresses and boot lines in :mod:`harness.esp32.rom`; this module is the
behaviour. The register *values* describe one made-up ESP32-D0WD-V3 rev 3.0 with a 40 MHz
crystal and 4 MB of Winbond flash.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from harness.emulator.firmware_image import app_in_flash
from harness.esp32 import rom
from harness.esp32.image import ESP32_BOOTLOADER_OFFSET, IMAGE_MAGIC
from harness.esp32.protocol import (
    READ_SLOW_BLOCK,
    REQUEST,
    RESPONSE,
    STUB_GREETING,
    SYNC_PAYLOAD,
    SYNC_REPLIES,
    SYNC_REPLY_VALUE,
    Op,
    RomError,
    SlipDecoder,
    StubError,
    rom_checksum,
    slip_encode,
)

BOOT_RETRY_S = 1.0  # how long one failed boot attempt takes before the next


def flash_boot_failure(flash: bytes) -> tuple[bytes, bytes] | None:
    """Why ``flash`` boots nothing, as the chip prints it (after the ROM's reset line),
    and the reset line of the retry; None when it holds a bootable MicroPython."""
    header = flash[ESP32_BOOTLOADER_OFFSET:ESP32_BOOTLOADER_OFFSET + 4]
    if len(header) < 4 or header[0] != IMAGE_MAGIC:
        word = int.from_bytes(header.ljust(4, b"\xff"), "little")
        return rom.invalid_header_line(word) * rom.INVALID_HEADER_LINES, \
            rom.RESET_LINE_RTC_WATCHDOG
    if app_in_flash(flash) is None:
        return rom.NO_APP_LINES, rom.RESET_LINE_SW
    return None



class RegisterFile:
    """The few ESP32 registers esptool reads in download mode, plus the SPI user-command
    unit it drives to query the flash chip. Unknown addresses read as 0, as on a bus
    with nothing there."""

    def __init__(self, *, mac: bytes, flash_size: int) -> None:
        self._values: dict[int, int] = {}
        self.flash_size = flash_size
        mac_high = int.from_bytes(mac[:2], "big")
        mac_low = int.from_bytes(mac[2:], "big")
        efuse = {
            1: mac_low,
            2: (_mac_crc8(mac) << 16) | mac_high,
            # word 3: package ESP32-D0WD(-V3) (bits 9..11 = 1), rev bit 0 (bit 15)
            3: (1 << 9) | (1 << 15),
            # word 4: 8 MHz oscillator calibration, so the ROM-computed crystal is 40 MHz
            4: 0x80,
            # word 5: rev bit 1 (bit 20) -> with APB_CTL_DATE bit 31: chip revision 3
            5: 1 << 20,
        }
        for word, value in efuse.items():
            self._values[rom.EFUSE_BASE + 4 * word] = value
        self._values[rom.CHIP_DETECT_MAGIC_ADDR] = rom.ESP32_MAGIC
        self._values[rom.APB_CTL_DATE] = 1 << 31
        self._values[rom.RTC_CALI] = 800 << 7  # 800 * 15625 * 0x80 / 40 = 40 MHz
        self._values[rom.GPIO_STRAP] = 0x03  # boot:0x3, the download strapping
        self.set_baudrate(115200)

    def set_baudrate(self, baud: int) -> None:
        # esptool estimates the crystal from baud * divider; keep it at 40 MHz.
        self._values[rom.UART_CLKDIV] = round(rom.XTAL_HZ / baud) & 0xFFFFF

    def read(self, address: int) -> int:
        return self._values.get(address, 0)

    def write(self, address: int, value: int, mask: int = 0xFFFFFFFF) -> None:
        old = self._values.get(address, 0)
        self._values[address] = (old & ~mask | value & mask) & 0xFFFFFFFF
        if address == rom.SPI_CMD and value & mask & rom.SPI_CMD_USR:
            self._run_spi_user_command()

    def _run_spi_user_command(self) -> None:
        command = self._values.get(rom.SPI_USR2, 0) & 0xFF
        if command == rom.FLASH_RDID:
            capacity = self.flash_size.bit_length() - 1
            result = rom.WINBOND | (0x40 << 8) | (capacity << 16)
        elif command == rom.FLASH_RDSFDP:
            result = rom.SFDP_SIGNATURE if self._values.get(rom.SPI_ADDR, 0) == 0 else 0xFFFFFFFF
        else:  # status registers and the rest: idle, nothing protected
            result = 0
        self._values[rom.SPI_W0] = result
        self._values[rom.SPI_CMD] = 0  # the command completes at once


def _mac_crc8(mac: bytes) -> int:
    """A CRC-8 over the MAC for the eFuse word's top byte; esptool ignores this byte."""
    crc = 0
    for byte in reversed(mac):
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8C if crc & 1 else crc >> 1
    return crc


class FlashStore:
    """The board's SPI NOR flash, kept in a file so it survives resets and restarts.

    Programming follows NOR rules: a write can only clear bits (``new = old & data``),
    so writing without erasing first corrupts data exactly as on a real chip.
    """

    def __init__(self, path: Path, size: int = rom.DEFAULT_FLASH_SIZE) -> None:
        if size <= 0 or size % rom.SECTOR_SIZE:
            raise ValueError(f"flash size must be a positive multiple of {rom.SECTOR_SIZE:#x}")
        self.path = Path(path)
        self.size = size
        if not self.path.exists() or self.path.stat().st_size != size:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_bytes(b"\xff" * size)
        self.touched: list[tuple[int, int]] = []  # (offset, length) programmed or erased

    def _check_range(self, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ValueError(
                f"flash range {offset:#x}+{length:#x} is outside the {self.size:#x}-byte flash"
            )

    def read(self, offset: int, length: int) -> bytes:
        self._check_range(offset, length)
        with self.path.open("rb") as f:
            f.seek(offset)
            return f.read(length)

    def program(self, offset: int, data: bytes) -> None:
        """NOR-program ``data`` at ``offset`` (bits can only go from 1 to 0)."""
        self._check_range(offset, len(data))
        old = self.read(offset, len(data))
        merged = (int.from_bytes(old, "little") & int.from_bytes(data, "little")).to_bytes(
            len(data), "little"
        )
        with self.path.open("r+b") as f:
            f.seek(offset)
            f.write(merged)
        self.touched.append((offset, len(data)))

    def erase(self, offset: int, length: int) -> None:
        """Erase every sector touched by ``offset``..``offset+length`` to 0xFF."""
        start = offset - offset % rom.SECTOR_SIZE
        end = -(-(offset + length) // rom.SECTOR_SIZE) * rom.SECTOR_SIZE
        self._check_range(start, end - start)
        with self.path.open("r+b") as f:
            f.seek(start)
            f.write(b"\xff" * (end - start))
        self.touched.append((start, end - start))

    def md5(self, offset: int, length: int) -> str:
        return hashlib.md5(self.read(offset, length)).hexdigest()


class _Download:
    """One FLASH_BEGIN / FLASH_DEFL_BEGIN session."""

    def __init__(self, offset: int, block_size: int, compressed: bool) -> None:
        self.offset = offset
        self.block_size = block_size
        self.compressed = compressed
        self.written = 0  # bytes of (decompressed) image programmed so far
        self.inflater = zlib.decompressobj() if compressed else None


class _FlashRead:
    """The stub's READ_FLASH: data packets, each acknowledged by the host with the total
    it has received, at most ``in_flight`` unacknowledged; then the MD5 of it all."""

    def __init__(self, offset: int, length: int, packet: int, in_flight: int) -> None:
        self.offset = offset
        self.length = length
        self.packet = packet
        self.in_flight = in_flight
        self.sent = 0
        self.acked = 0
        self.md5 = hashlib.md5()


class RomBootloader:
    """Answers the ESP32 ROM download protocol, and the flasher stub's once esptool has
    "run" it; feed it host bytes, it replies via ``send``."""

    def __init__(
        self,
        send: Callable[[bytes], None],
        flash: FlashStore,
        *,
        mac: bytes = rom.DEFAULT_MAC,
        on_run_user_code: Callable[[], None] | None = None,
        on_baudrate: Callable[[int], None] | None = None,
    ) -> None:
        if len(mac) != 6:
            raise ValueError(f"a MAC address has 6 bytes, got {len(mac)}")
        self._send = send
        self.flash = flash
        self.mac = mac
        self.registers = RegisterFile(mac=mac, flash_size=flash.size)
        self._on_run_user_code = on_run_user_code
        self._on_baudrate = on_baudrate
        self._slip = SlipDecoder()
        self._download: _Download | None = None
        self._reading: _FlashRead | None = None
        self._ram: dict[int, bytes] = {}  # MEM_DATA blocks by address (never executed)
        self._ram_next = 0
        self.baudrate = 115200
        self.stub = False  # True once the flasher stub "runs"
        self.commands: list[int] = []  # opcodes handled, in order (for logs and tests)

    def feed(self, data: bytes) -> None:
        for frame in self._slip.feed(data):
            if self._reading is not None:
                self._read_ack(frame)
            else:
                self._handle(frame)

    # --- framing ------------------------------------------------------------------
    def _reply(self, op: int, *, value: int = 0, payload: bytes = b"", error: int = 0) -> None:
        # ESP32 ROM replies end with four status bytes (failed?, error code, 2 reserved);
        # the stub's with two.
        status = bytes([1 if error else 0, error]) + (b"" if self.stub else b"\0\0")
        body = payload + status
        header = struct.pack("<BBHI", RESPONSE, op, len(body), value)
        self._send(slip_encode(header + body))

    def _fail(self, op: int, rom_error: RomError, stub_error: StubError) -> None:
        """The error reply, in the words of whichever is answering: the ROM or its stub."""
        self._reply(op, error=stub_error if self.stub else rom_error)

    def _handle(self, frame: bytes) -> None:
        if len(frame) < 8 or frame[0] != REQUEST:
            return  # not a request; the ROM stays silent
        _, op, size, checksum = struct.unpack("<BBHI", frame[:8])
        data = frame[8:]
        self.commands.append(op)
        if len(data) != size:
            self._fail(op, RomError.INVALID_MESSAGE, StubError.BAD_DATA_LEN)
            return
        handler = (self._STUB_HANDLERS if self.stub else self._HANDLERS).get(op)
        if handler is None:
            self._fail(op, RomError.INVALID_MESSAGE, StubError.NOT_IMPLEMENTED)
            return
        handler(self, op, data, checksum)

    def _invalid(self, op: int) -> None:
        self._fail(op, RomError.INVALID_MESSAGE, StubError.BAD_DATA_LEN)

    # --- commands -----------------------------------------------------------------
    def _sync(self, op: int, data: bytes, _chk: int) -> None:
        if data != SYNC_PAYLOAD:
            self._invalid(op)
            return
        # Both answer eight times; the ROM with a non-zero value, the stub with 0 (which
        # is how esptool tells that its stub is already running).
        for _ in range(SYNC_REPLIES):
            self._reply(op, value=0 if self.stub else SYNC_REPLY_VALUE)

    def _read_reg(self, op: int, data: bytes, _chk: int) -> None:
        if len(data) != 4:
            self._invalid(op)
            return
        (address,) = struct.unpack("<I", data)
        self._reply(op, value=self.registers.read(address))

    def _write_reg(self, op: int, data: bytes, _chk: int) -> None:
        if not data or len(data) % 16:
            self._invalid(op)
            return
        for start in range(0, len(data), 16):
            address, value, mask, _delay_us = struct.unpack("<IIII", data[start : start + 16])
            self.registers.write(address, value, mask)
        self._reply(op)

    def _ok(self, op: int, _data: bytes, _chk: int) -> None:
        self._reply(op)  # SPI_ATTACH, SPI_SET_PARAMS: nothing to model

    def _change_baudrate(self, op: int, data: bytes, _chk: int) -> None:
        if len(data) != 8:
            self._invalid(op)
            return
        new_baud, _old = struct.unpack("<II", data)
        self._reply(op)  # acknowledged at the old rate, then the UART switches
        self.baudrate = new_baud
        self.registers.set_baudrate(new_baud)
        if self._on_baudrate is not None:
            self._on_baudrate(new_baud)

    def _begin(self, op: int, data: bytes, _chk: int) -> None:
        if len(data) not in (16, 20):  # ESP32 ROM: 16; later chips add an encryption word
            self._invalid(op)
            return
        erase_size, _blocks, block_size, offset = struct.unpack("<IIII", data[:16])
        if offset + erase_size > self.flash.size or block_size == 0:
            self._fail(op, RomError.FAILED_TO_ACT, StubError.BAD_BLOCKSIZE)
            return
        if erase_size:
            self.flash.erase(offset, erase_size)
        self._download = _Download(offset, block_size, compressed=op == Op.FLASH_DEFL_BEGIN)
        self._reply(op)

    def _data(self, op: int, data: bytes, checksum: int) -> None:
        download = self._download
        compressed = op == Op.FLASH_DEFL_DATA
        if download is None or download.compressed != compressed or len(data) < 16:
            self._fail(op, RomError.FAILED_TO_ACT, StubError.NOT_IN_FLASH_MODE)
            return
        length, seq, _, _ = struct.unpack("<IIII", data[:16])
        block = data[16:]
        if len(block) != length:
            self._invalid(op)
            return
        if rom_checksum(block) != checksum & 0xFF:
            self._fail(op, RomError.BAD_CHECKSUM, StubError.BAD_DATA_CHECKSUM)
            return
        if download.inflater is not None:
            try:
                chunk = download.inflater.decompress(block)
            except zlib.error:
                self._fail(op, RomError.DEFLATE, StubError.INFLATE_ERROR)
                return
            address = download.offset + download.written
        else:
            chunk = block
            address = download.offset + seq * download.block_size
        try:
            self.flash.program(address, chunk)
        except ValueError:
            self._fail(op, RomError.FLASH_WRITE, StubError.FAILED_SPI_OP)
            return
        download.written += len(chunk)
        self._reply(op)

    def _end(self, op: int, data: bytes, _chk: int) -> None:
        stay_in_loader = len(data) >= 4 and struct.unpack("<I", data[:4])[0] != 0
        self._download = None
        self._reply(op)
        if not stay_in_loader and self._on_run_user_code is not None:
            self._on_run_user_code()

    def _md5(self, op: int, data: bytes, _chk: int) -> None:
        if len(data) != 16:
            self._invalid(op)
            return
        address, size, _, _ = struct.unpack("<IIII", data)
        try:
            digest = self.flash.md5(address, size)
        except ValueError:
            self._fail(op, RomError.FAILED_TO_ACT, StubError.FAILED_SPI_OP)
            return
        # The ROM sends the digest as 32 hex characters, the stub as 16 raw bytes.
        self._reply(op, payload=bytes.fromhex(digest) if self.stub else digest.encode())

    def _read_flash_slow(self, op: int, data: bytes, _chk: int) -> None:
        if len(data) != 8:
            self._invalid(op)
            return
        address, length = struct.unpack("<II", data)
        if length > READ_SLOW_BLOCK:
            self._invalid(op)
            return
        try:
            block = self.flash.read(address, length)
        except ValueError:
            self._reply(op, error=RomError.FAILED_TO_ACT)
            return
        self._reply(op, payload=block.ljust(READ_SLOW_BLOCK, b"\xff"))

    # --- RAM download: what esptool's stub upload looks like to the chip ---------------
    def _mem_begin(self, op: int, data: bytes, _chk: int) -> None:
        if len(data) != 16:
            self._invalid(op)
            return
        _size, _blocks, _block_size, offset = struct.unpack("<IIII", data)
        self._ram_next = offset
        self._reply(op)

    def _mem_data(self, op: int, data: bytes, checksum: int) -> None:
        if len(data) < 16:
            self._invalid(op)
            return
        length, _seq, _, _ = struct.unpack("<IIII", data[:16])
        block = data[16:]
        if len(block) != length:
            self._invalid(op)
            return
        if rom_checksum(block) != checksum & 0xFF:
            self._reply(op, error=RomError.BAD_CHECKSUM)
            return
        self._ram[self._ram_next] = block
        self._ram_next += len(block)
        self._reply(op)

    def _mem_end(self, op: int, data: bytes, _chk: int) -> None:
        if len(data) != 8:
            self._invalid(op)
            return
        no_entry, entry = struct.unpack("<II", data)
        self._reply(op)
        if no_entry == 0 and entry and self._ram:
            # The chip jumps to ``entry``: the flasher stub starts and says hello.
            self.stub = True
            self._ram.clear()
            self._send(slip_encode(STUB_GREETING))

    # --- the stub's own commands ------------------------------------------------------
    def _erase_flash(self, op: int, _data: bytes, _chk: int) -> None:
        self.flash.erase(0, self.flash.size)
        self._reply(op)

    def _erase_region(self, op: int, data: bytes, _chk: int) -> None:
        if len(data) != 8:
            self._invalid(op)
            return
        offset, size = struct.unpack("<II", data)
        if offset % rom.SECTOR_SIZE or size % rom.SECTOR_SIZE or offset + size > self.flash.size:
            self._reply(op, error=StubError.BAD_DATA_LEN)
            return
        self.flash.erase(offset, size)
        self._reply(op)

    def _read_flash(self, op: int, data: bytes, _chk: int) -> None:
        if len(data) != 16:
            self._invalid(op)
            return
        offset, length, packet, in_flight = struct.unpack("<IIII", data)
        if offset + length > self.flash.size or not packet or not in_flight:
            self._reply(op, error=StubError.BAD_DATA_LEN)
            return
        self._reply(op)
        self._reading = _FlashRead(offset, length, packet, in_flight)
        self._pump_read()

    def _pump_read(self) -> None:
        reading = self._reading
        assert reading is not None
        while (reading.sent < reading.length
               and reading.sent - reading.acked < reading.packet * reading.in_flight):
            size = min(reading.packet, reading.length - reading.sent)
            block = self.flash.read(reading.offset + reading.sent, size)
            reading.md5.update(block)
            reading.sent += size
            self._send(slip_encode(block))
        if reading.acked >= reading.length:
            self._reading = None
            self._send(slip_encode(reading.md5.digest()))

    def _read_ack(self, frame: bytes) -> None:
        reading = self._reading
        assert reading is not None
        if len(frame) == 4:
            reading.acked = max(reading.acked, struct.unpack("<I", frame)[0])
            self._pump_read()

    def _run_user_code(self, op: int, _data: bytes, _chk: int) -> None:
        if self._on_run_user_code is not None:
            self._on_run_user_code()

    _HANDLERS: ClassVar[dict[int, Callable[[RomBootloader, int, bytes, int], None]]] = {
        Op.SYNC: _sync,
        Op.READ_REG: _read_reg,
        Op.WRITE_REG: _write_reg,
        Op.SPI_ATTACH: _ok,
        Op.SPI_SET_PARAMS: _ok,
        Op.CHANGE_BAUDRATE: _change_baudrate,
        Op.FLASH_BEGIN: _begin,
        Op.FLASH_DATA: _data,
        Op.FLASH_END: _end,
        Op.FLASH_DEFL_BEGIN: _begin,
        Op.FLASH_DEFL_DATA: _data,
        Op.FLASH_DEFL_END: _end,
        Op.SPI_FLASH_MD5: _md5,
        Op.READ_FLASH_SLOW: _read_flash_slow,
        Op.MEM_BEGIN: _mem_begin,
        Op.MEM_DATA: _mem_data,
        Op.MEM_END: _mem_end,
    }
    _STUB_HANDLERS: ClassVar[dict[int, Callable[[RomBootloader, int, bytes, int], None]]] = {
        **{op: handler for op, handler in _HANDLERS.items()
           if op not in (Op.READ_FLASH_SLOW, Op.MEM_BEGIN, Op.MEM_DATA, Op.MEM_END)},
        Op.ERASE_FLASH: _erase_flash,
        Op.ERASE_REGION: _erase_region,
        Op.READ_FLASH: _read_flash,
        Op.RUN_USER_CODE: _run_user_code,
    }
