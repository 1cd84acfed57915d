"""Hard reset and bootloader entry through the serial port's DTR and RTS lines.

The classic ESP32 devkit auto-reset circuit (two transistors, as esptool expects):

    DTR  RTS   ->  EN   IO0
    off  off       high high   (run)
    on   on        high high   (run: both asserted cancel out)
    off  on        LOW  high   (held in reset)
    on   off       high LOW    (IO0 low: download mode if EN rises now)

"on" is pyserial's ``True`` (the line asserted). So a reset needs DTR off while RTS is on,
and bootloader entry releases EN while DTR holds IO0 low. The sequences follow esptool's
(``esptool/reset.py``): classic, the POSIX "tight" variant that changes both lines in one
ioctl, and the USB-Serial/JTAG variant for chips using their own USB peripheral.

The sleeps here are pulse widths the hardware needs (EN held low long enough to reset,
IO0 held low until the ROM sampled it), not waits for an event.

Works on local ports and ``rfc2217://`` URLs alike (RFC2217 carries DTR/RTS as
SET_CONTROL commands); a ``socket://`` port has no modem lines and is refused clearly.
"""

from __future__ import annotations

import enum
import errno
import fcntl
import struct
import termios
import time

import serial

from harness.errors import DeviceError, DeviceLost

EN_LOW_S = 0.1  # esptool holds EN low 100 ms for a reset
BOOT_HOLD_S = 0.05  # IO0 stays low 50 ms after EN rises (esptool's DEFAULT_RESET_DELAY)
USB_JTAG_STEP_S = 0.1


class ResetMethod(enum.Enum):
    CLASSIC = "classic"  # two sequential line writes per step; works everywhere
    TIGHT = "tight"  # both lines in one TIOCMSET ioctl (local POSIX ports only)
    USB_JTAG = "usb-jtag"  # ESP32-C3/S3/C6 USB-Serial/JTAG peripheral


class ModemLinesUnsupported(DeviceError):
    """The port cannot drive DTR/RTS (a TCP socket, or a pty without modem lines)."""


def _lines(port: serial.Serial, *, dtr: bool, rts: bool, rts_first: bool = False) -> None:
    """Write both lines, DTR first unless ``rts_first`` (the order picks the in-between
    state the circuit sees for a moment)."""
    try:
        if rts_first:
            port.rts = rts
            port.dtr = dtr
        else:
            port.dtr = dtr
            port.rts = rts
    except OSError as exc:
        raise _line_error(port, exc) from exc
    except serial.SerialException as exc:
        raise DeviceLost(f"{port.name}: lost the port while setting DTR/RTS: {exc}") from exc


def _line_error(port: serial.Serial, exc: OSError) -> DeviceError:
    if exc.errno in (errno.ENOTTY, errno.EINVAL):
        return ModemLinesUnsupported(
            f"{port.name} cannot drive DTR/RTS, so the harness cannot reset the board",
            hint="use a USB port or an rfc2217:// server, or reset the board by hand",
        )
    if exc.errno in (errno.EIO, errno.ENODEV, errno.ENXIO):
        return DeviceLost(f"{port.name} vanished while resetting the board ({exc.strerror})")
    return DeviceError(f"{port.name}: setting DTR/RTS failed: {exc}")


def _check_port(port: serial.Serial) -> None:
    if not port.is_open:
        raise DeviceError(f"{port.name or 'serial port'} is closed; open it before resetting")
    if (port.name or "").startswith("socket://") or type(port).__module__.endswith(
        "protocol_socket"
    ):
        raise ModemLinesUnsupported(
            f"{port.name} is a raw TCP socket without DTR/RTS, so the board cannot be reset",
            hint="serve the port as rfc2217:// (ser2net, esptool's RFC2217 server) instead",
        )


def _tight(port: serial.Serial, *, dtr: bool, rts: bool) -> None:
    """Set both lines in one ioctl, so the circuit never sees an in-between state."""
    try:
        fd = port.fileno()
        status = struct.unpack("I", fcntl.ioctl(fd, termios.TIOCMGET, struct.pack("I", 0)))[0]
        status = status | termios.TIOCM_DTR if dtr else status & ~termios.TIOCM_DTR
        status = status | termios.TIOCM_RTS if rts else status & ~termios.TIOCM_RTS
        fcntl.ioctl(fd, termios.TIOCMSET, struct.pack("I", status))
    except OSError as exc:
        raise _line_error(port, exc) from exc


def is_usb_jtag(port: serial.Serial) -> bool:
    """True if ``port`` is a chip's own USB-Serial/JTAG (known from its USB VID:PID)."""
    name = port.name or ""
    if not name.startswith("/"):
        return False  # URLs carry no USB identity
    from harness.hardware.discovery import find_board

    board = find_board(name)
    return board is not None and board.native_usb_jtag


def default_method(port: serial.Serial, *, usb_jtag: bool | None = None) -> ResetMethod:
    if usb_jtag if usb_jtag is not None else is_usb_jtag(port):
        return ResetMethod.USB_JTAG
    name = port.name or ""
    local = name.startswith("/") and hasattr(port, "fileno")
    return ResetMethod.TIGHT if local else ResetMethod.CLASSIC


def hard_reset(port: serial.Serial, *, usb_jtag: bool | None = None) -> None:
    """Pulse EN low with IO0 high: the board reboots into its firmware (like the EN key).

    ``usb_jtag`` None looks the port's VID:PID up."""
    _check_port(port)
    if usb_jtag is None:
        usb_jtag = is_usb_jtag(port)
    hold = 0.2 if usb_jtag else EN_LOW_S  # native USB re-enumerates; esptool waits longer
    _lines(port, dtr=False, rts=True)  # IO0 high, EN low
    time.sleep(hold)
    _lines(port, dtr=False, rts=False)  # EN high: the chip boots from flash


def enter_bootloader(
    port: serial.Serial, *, method: ResetMethod | None = None, usb_jtag: bool | None = None
) -> None:
    """Reset into the ROM's serial download mode (IO0 low while EN rises)."""
    _check_port(port)
    method = method or default_method(port, usb_jtag=usb_jtag)
    if method is ResetMethod.USB_JTAG:
        _usb_jtag_sequence(port)
    elif method is ResetMethod.TIGHT:
        _tight(port, dtr=False, rts=False)
        _tight(port, dtr=True, rts=True)
        _tight(port, dtr=False, rts=True)  # IO0 high, EN low: in reset
        time.sleep(EN_LOW_S)
        _tight(port, dtr=True, rts=False)  # IO0 low, EN high: ROM samples IO0 low
        time.sleep(BOOT_HOLD_S)
        _tight(port, dtr=False, rts=False)
    else:
        _lines(port, dtr=False, rts=True)  # IO0 high, EN low: in reset
        time.sleep(EN_LOW_S)
        # DTR first passes through (on, on), i.e. EN released with IO0 still high for a
        # moment; the RC delay on EN is what makes IO0 low by the time the chip starts.
        _lines(port, dtr=True, rts=False)  # IO0 low, EN high
        time.sleep(BOOT_HOLD_S)
        _lines(port, dtr=False, rts=False)


def _usb_jtag_sequence(port: serial.Serial) -> None:
    # The USB-Serial/JTAG peripheral decodes DTR/RTS itself; this is esptool's order.
    _lines(port, dtr=False, rts=False)
    time.sleep(USB_JTAG_STEP_S)
    _lines(port, dtr=True, rts=False)  # IO0 low
    time.sleep(USB_JTAG_STEP_S)
    _lines(port, dtr=False, rts=True, rts_first=True)  # reset, via (on, on) not (off, off)
    time.sleep(USB_JTAG_STEP_S)
    _lines(port, dtr=False, rts=False)  # out of reset
