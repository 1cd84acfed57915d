"""The emulated ESP32's real-time clock, and how the interpreter's mbedTLS is made to read it.

An ESP32 keeps one clock: ``gettimeofday()``, which MicroPython reads as seconds since
2000-01-01 (``time.time()``), ``machine.RTC().datetime()`` sets, and, since v1.22
(``platform_mbedtls_time()`` in ports/esp32/main.c), mbedTLS checks certificate dates
against. It starts at 0 (2000-01-01 00:00:00) on power-on and EN reset; a soft reset,
``machine.reset()``, a panic and deep sleep keep it (ESP-IDF keeps the boot time in RTC
registers that only a power-on clears).

Here the clock is one number in a board-private file, ``offset_us`` = board microseconds
since 2000 minus host microseconds since 1970, so it survives the interpreter process
being replaced at every reset. The supervisor writes it at power-on; the board's ``time``
module (mpy/time.py) reads it and writes it when the program sets the clock.

The unix-port interpreter's mbedTLS would check dates against the *host* clock: it calls
libc ``time()``. :class:`TlsClockPatch` closes that gap with a real mechanism, not a
simulation: in the interpreter process, before MicroPython starts, the extension's PLT slot
for ``time`` is pointed at a function that returns the board's clock, so mbedTLS verifies
dates against the board's RTC exactly as ``platform_mbedtls_time()`` makes it do on the chip.
For firmware built without ``CONFIG_MBEDTLS_HAVE_TIME_DATE`` (v1.20, v1.21), whose mbedTLS
checks no date at all, the patch also replaces modtls's per-certificate verify callback
(``ssl_sock_cert_verify``, which mbedTLS calls with each certificate's verification flags
and which may change them, x509_crt_merge_flags_with_cb) by one that clears exactly the
two date flags (``BADCERT_EXPIRED``, ``BADCERT_FUTURE``) and returns 0: the chain, the
signatures and the host name are still verified by mbedTLS; only dates are not, as there.
(That callback only ran a Python ``verify_callback``, which v1.20/v1.21 do not have.)

The patch needs the x86-64 ELF build of the extension (the Linux wheel). On any other
build the board falls back to the host clock for certificate dates (README's
known-divergences table says so) and :func:`tls_clock_patch` returns None.
"""

from __future__ import annotations

import functools
import json
import platform
import struct
import time
from dataclasses import asdict, dataclass
from pathlib import Path

SECONDS_1970_TO_2000 = 946_684_800
RTC_FILE = "rtc"  # in the board's scratch folder

# int verify(void *ctx, mbedtls_x509_crt *crt, int depth, uint32_t *flags) for x86-64
# (flags in rcx): and dword [rcx], ~(BADCERT_EXPIRED 0x01 | BADCERT_FUTURE 0x200);
# xor eax, eax; ret.
_CLEAR_DATE_FLAGS = bytes.fromhex("8121fefdffff" "31c0" "c3")
_ELF_X86_64 = 62
_ANCHOR = "mbedtls_x509_time_is_past"  # any exported symbol: it locates the load address
_VERIFY_CALLBACK = "ssl_sock_cert_verify"  # extmod/modtls_mbedtls.c (a local symbol)


class RtcFile:
    """The board's clock as the supervisor sees it (one per board)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def memory_path(self) -> Path:
        """RTC memory (``machine.RTC().memory()``): kept like the clock."""
        return self.path.with_name(self.path.name + "mem")

    def power_on(self) -> None:
        """Power-on / EN reset: the clock starts again at 2000-01-01 00:00:00 and RTC
        memory is lost."""
        self.set(0.0)
        self.memory_path.unlink(missing_ok=True)

    def set(self, board_seconds: float) -> None:
        """Set the board's clock to ``board_seconds`` since 2000-01-01 (tests, tools)."""
        offset = int(board_seconds * 1_000_000) - time.time_ns() // 1000
        partial = self.path.with_suffix(".partial")
        partial.write_text(str(offset), encoding="ascii")
        partial.replace(self.path)

    def board_seconds(self) -> float:
        """Seconds since 2000-01-01 on the board's clock now."""
        offset = int(self.path.read_text(encoding="ascii").strip() or 0)
        return (time.time_ns() // 1000 + offset) / 1_000_000


@dataclass(frozen=True)
class TlsClockPatch:
    """Where, in the interpreter extension, the board's clock is wired into mbedTLS."""

    time_slot: int  # offset of the PLT/GOT slot the extension calls libc time() through
    anchor: int  # st_value of _ANCHOR (to find the load address at run time)
    verify_callback: int  # st_value of ssl_sock_cert_verify
    no_dates_code: str  # hex of the replacement callback (see the module docstring)

    def launcher_arg(self, rtc: Path, *, check_dates: bool) -> str:
        """The JSON the interpreter launcher reads (see interpreter._LAUNCHER)."""
        return json.dumps({**asdict(self), "rtc": str(rtc), "check_dates": check_dates})


@functools.lru_cache(maxsize=4)
def tls_clock_patch(extension: Path) -> TlsClockPatch | None:
    """The patch points of ``extension`` (an ELF shared object), or None if it has none."""
    try:
        data = extension.read_bytes()
    except OSError:
        return None
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:  # ELF64, little-endian
        return None
    if struct.unpack_from("<H", data, 18)[0] != _ELF_X86_64 or platform.machine().lower() not in (
            "x86_64", "amd64"):
        return None
    sections = _sections(data)
    dynsym, dynstr = sections.get(".dynsym"), sections.get(".dynstr")
    symtab, strtab = sections.get(".symtab"), sections.get(".strtab")
    rela_plt = sections.get(".rela.plt")
    if None in (dynsym, dynstr, symtab, strtab, rela_plt):
        return None
    assert dynsym and dynstr and symtab and strtab and rela_plt
    symbols = _symbols(data, dynsym, dynstr)
    slot = None
    offset, size = rela_plt
    for at in range(offset, offset + size, 24):
        r_offset, r_info, _addend = struct.unpack_from("<QQq", data, at)
        name = symbols[r_info >> 32][0]
        if name == "time":
            slot = r_offset
    values = {name: value for name, value in symbols if value}
    local = {name: value for name, value in _symbols(data, symtab, strtab) if value}
    if slot is None or _ANCHOR not in values or _VERIFY_CALLBACK not in local:
        return None
    if local.get(_ANCHOR, values[_ANCHOR]) != values[_ANCHOR]:
        return None  # the two symbol tables disagree: not a build we understand
    return TlsClockPatch(time_slot=slot, anchor=values[_ANCHOR],
                         verify_callback=local[_VERIFY_CALLBACK],
                         no_dates_code=_CLEAR_DATE_FLAGS.hex())


def _sections(data: bytes) -> dict[str, tuple[int, int]]:
    """name -> (file offset, size) of each section."""
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    headers = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize)
               for i in range(shnum)]
    names_at = headers[shstrndx][4]
    found = {}
    for header in headers:
        name_end = data.index(b"\0", names_at + header[0])
        found[data[names_at + header[0]:name_end].decode()] = (header[4], header[5])
    return found


def _symbols(data: bytes, dynsym: tuple[int, int], dynstr: tuple[int, int],
             ) -> list[tuple[str, int]]:
    """(name, st_value) of every symbol of a symbol table, by index."""
    offset, size = dynsym
    strings = dynstr[0]
    result = []
    for at in range(offset, offset + size, 24):
        st_name, _info, _other, _shndx, st_value, _size = struct.unpack_from("<IBBHQQ", data, at)
        end = data.index(b"\0", strings + st_name)
        result.append((data[strings + st_name:end].decode(errors="replace"), st_value))
    return result
