"""Opening a board's serial port, with the failure a user can act on, and a REPL probe.

``open_serial`` accepts a device path or any pyserial URL (``rfc2217://host:port``). It
opens with DTR and RTS both asserted, which the ESP32 auto-reset circuit reads as "run",
so opening never resets the board.
"""

from __future__ import annotations

import errno
import re
from dataclasses import dataclass
from pathlib import Path

import serial

from harness.deadline import Deadline
from harness.errors import DeviceError, PortBusy, PortNotFound
from harness.esp32.rom import DOWNLOAD_WAIT
from harness.hardware.discovery import port_holder

DEFAULT_BAUD = 115200
_BANNER = re.compile(rb"MicroPython (v[^\s;,]+)[^\r\n]*")
_PROMPTS = (b">>> ", b"raw REPL; CTRL-B to exit")


def open_serial(port: str, *, baudrate: int = DEFAULT_BAUD, timeout: float = 0.1,
                exclusive: bool = True) -> serial.Serial:
    """Open ``port`` (path or URL) or raise PortNotFound / PortBusy with the reason."""
    try:
        line = serial.serial_for_url(port, baudrate=baudrate, timeout=timeout,
                                     do_not_open=True)
        line.dtr = True  # both asserted = EN and IO0 high: opening does not reset the chip
        line.rts = True
        if exclusive and not port.startswith(("rfc2217://", "socket://", "loop://")):
            line.exclusive = True
        line.open()
    except (serial.SerialException, OSError, ValueError) as exc:
        raise explain_open_failure(port, exc) from exc
    return line


def explain_open_failure(port: str, exc: BaseException) -> DeviceError:
    text = str(exc)
    if port.startswith(("rfc2217://", "socket://")):
        return PortNotFound(
            f"cannot connect to {port}: {_short(text)}",
            hint="check the server (ser2net, esptool's RFC2217 server, labgrid) runs there",
        )
    if not Path(port).exists():
        return PortNotFound(f"serial port {port} does not exist",
                            hint="run `python -m harness ports` to list attached boards")
    errnum = getattr(exc, "errno", None)
    if errnum in (errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK) or "lock" in text.lower():
        holder = port_holder(port)
        who = f"held by {holder}" if holder else "held by another program"
        return PortBusy(f"serial port {port} is busy: {who}",
                        hint="close that program (a serial monitor, mpremote, esptool) and retry")
    if errnum == errno.EACCES:
        return PortBusy(f"no permission to open {port}",
                        hint="add your user to the dialout (or uucp) group and log in again")
    return PortNotFound(f"cannot open serial port {port}: {_short(text)}")


def _short(text: str) -> str:
    return text.splitlines()[0] if text else "unknown error"


@dataclass(frozen=True)
class ProbeResult:
    answers: bool
    version: str | None  # "v1.22.2" when the banner was seen
    seen: bytes  # what the port printed (for error messages)

    def describe(self) -> str:
        if self.answers:
            return f"MicroPython {self.version}" if self.version else "MicroPython REPL"
        if DOWNLOAD_WAIT in self.seen:
            return "ROM download mode"
        return "no REPL answer"


def probe_micropython(line: serial.Serial, *, timeout: float = 2.0) -> ProbeResult:
    """Ask the REPL for its banner: Ctrl-C (stop a running program), then Ctrl-B (friendly
    REPL, which prints the banner). A board running ``main.py`` is interrupted, as mpremote
    would interrupt it."""
    deadline = Deadline(timeout, f"a MicroPython REPL answer on {line.name}")
    line.reset_input_buffer()
    line.write(b"\r\x03\x03")
    line.write(b"\x02")
    seen = bytearray()
    while not deadline.expired:
        seen += line.read(max(1, line.in_waiting))
        banner = _BANNER.search(seen)
        if banner and (seen.endswith(b">>> ") or b">>> " in seen[banner.end():]):
            return ProbeResult(True, banner.group(1).decode(), bytes(seen))
        if banner is None and any(prompt in seen for prompt in _PROMPTS) and deadline.elapsed(
        ) > timeout / 2:
            return ProbeResult(True, None, bytes(seen))
    return ProbeResult(False, None, bytes(seen))


def answers_rom_sync(line: serial.Serial, *, attempts: int = 3) -> bool:
    """Whether the board answers esptool's SYNC request: what a chip in its ROM download
    mode does, banner or not (a board that was reset into download mode long ago has
    nothing left to print). Uses esptool itself, so it speaks exactly the ROM's protocol."""
    from esptool.loader import ESPLoader

    previous_timeout = line.timeout
    try:
        loader = ESPLoader(port=line)
        for _ in range(attempts):
            try:
                loader.flush_input()
                loader.sync()
                return True
            except Exception:  # esptool's FatalError/timeout: not the ROM, try again
                continue
        return False
    finally:
        line.timeout = previous_timeout

