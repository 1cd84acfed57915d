"""The ESP32 ROM's serial download protocol, as esptool speaks it, and its flasher stub's.

SLIP-framed packets: a request is ``00 op size(2) checksum(4) data``, a reply
``01 op size(2) value(4) data status``. The opcodes, status codes and framing were read
from esptool's loader (``ESPLoader``) and its serial-protocol documentation.
"""

from __future__ import annotations

from enum import IntEnum

from harness.esp32.image import CHECKSUM_SEED  # the image checksum's seed, the same XOR


class Op(IntEnum):
    """Request opcodes (esptool's ESP_CMDS)."""

    FLASH_BEGIN = 0x02
    FLASH_DATA = 0x03
    FLASH_END = 0x04
    MEM_BEGIN = 0x05
    MEM_END = 0x06
    MEM_DATA = 0x07
    SYNC = 0x08
    WRITE_REG = 0x09
    READ_REG = 0x0A
    SPI_SET_PARAMS = 0x0B
    SPI_ATTACH = 0x0D
    READ_FLASH_SLOW = 0x0E
    CHANGE_BAUDRATE = 0x0F
    FLASH_DEFL_BEGIN = 0x10
    FLASH_DEFL_DATA = 0x11
    FLASH_DEFL_END = 0x12
    SPI_FLASH_MD5 = 0x13
    # The flasher stub's own commands.
    ERASE_FLASH = 0xD0
    ERASE_REGION = 0xD1
    READ_FLASH = 0xD2
    RUN_USER_CODE = 0xD3


class RomError(IntEnum):
    """The ROM's error codes, carried in a reply's second status byte."""

    INVALID_MESSAGE = 0x05
    FAILED_TO_ACT = 0x06
    BAD_CHECKSUM = 0x07
    FLASH_WRITE = 0x08
    DEFLATE = 0x0B


class StubError(IntEnum):
    """The flasher stub's error codes (0xC*, 0xFF: not implemented)."""

    BAD_DATA_LEN = 0xC0
    BAD_DATA_CHECKSUM = 0xC1
    BAD_BLOCKSIZE = 0xC2
    INVALID_COMMAND = 0xC3
    FAILED_SPI_OP = 0xC4
    NOT_IN_FLASH_MODE = 0xC6
    INFLATE_ERROR = 0xC7
    NOT_IMPLEMENTED = 0xFF


REQUEST = 0x00  # the direction byte opening a request
RESPONSE = 0x01  # ... and a reply
STUB_GREETING = b"OHAI"  # the stub's first frame once it runs

SYNC_PAYLOAD = b"\x07\x07\x12\x20" + b"\x55" * 32
SYNC_REPLY_VALUE = 0x20120707  # any non-zero value tells esptool "ROM, not stub"
SYNC_REPLIES = 8  # the ROM answers one SYNC eight times; esptool reads all of them
READ_SLOW_BLOCK = 64  # READ_FLASH_SLOW returns this many bytes per request

SLIP_END = 0xC0
SLIP_ESC = 0xDB
SLIP_ESC_END = 0xDC
SLIP_ESC_ESC = 0xDD


def slip_encode(packet: bytes) -> bytes:
    body = packet.replace(bytes([SLIP_ESC]), bytes([SLIP_ESC, SLIP_ESC_ESC])).replace(
        bytes([SLIP_END]), bytes([SLIP_ESC, SLIP_ESC_END]))
    return bytes([SLIP_END]) + body + bytes([SLIP_END])


class SlipDecoder:
    """Splits a byte stream into SLIP frames; bytes between frames are line noise."""

    def __init__(self) -> None:
        self._frame = bytearray()
        self._in_frame = False
        self._escaped = False

    def feed(self, data: bytes) -> list[bytes]:
        frames: list[bytes] = []
        for byte in data:
            if byte == SLIP_END:
                if self._in_frame and self._frame:
                    frames.append(bytes(self._frame))
                self._frame.clear()
                self._in_frame = True
                self._escaped = False
            elif not self._in_frame:
                continue
            elif self._escaped:
                self._escaped = False
                if byte == SLIP_ESC_END:
                    self._frame.append(SLIP_END)
                elif byte == SLIP_ESC_ESC:
                    self._frame.append(SLIP_ESC)
                else:  # protocol violation: drop the frame, as the ROM does
                    self._frame.clear()
                    self._in_frame = False
            elif byte == SLIP_ESC:
                self._escaped = True
            else:
                self._frame.append(byte)
        return frames


def rom_checksum(data: bytes) -> int:
    """The data checksum of FLASH_DATA / MEM_DATA requests: XOR of the bytes, seed 0xEF."""
    state = CHECKSUM_SEED
    for byte in data:
        state ^= byte
    return state
