"""Find ESP32 boards on this machine's serial ports, and turn a user's port spec into a port.

A board is recognised by its USB-to-UART bridge (the VID:PID of the chip on the devkit),
not by talking to it, so listing never disturbs a running board. A spec may be ``auto``,
a device path, a USB serial number, a USB location (``1-1.4``, as ``lsusb -t``/sysfs
name it), or a pyserial URL (``rfc2217://host:port``, ``socket://host:port``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from harness import lifetime
from harness.errors import PortNotFound, ProcessFailed

URL_SCHEMES = ("rfc2217://", "socket://", "loop://")
ESPRESSIF_VID = 0x303A
USB_JTAG_SERIAL_PID = 0x1001

# USB bridges found on ESP32 boards, by (VID, PID). PID None: any product of that vendor.
KNOWN_BRIDGES: dict[tuple[int, int | None], str] = {
    (0x10C4, 0xEA60): "Silicon Labs CP210x",
    (0x10C4, 0xEA70): "Silicon Labs CP2105",
    (0x1A86, 0x7523): "WCH CH340",
    (0x1A86, 0x7522): "WCH CH340K",
    (0x1A86, 0x55D4): "WCH CH9102",
    (0x1A86, 0x55D3): "WCH CH343",
    (0x0403, 0x6001): "FTDI FT232R",
    (0x0403, 0x6010): "FTDI FT2232",
    (0x0403, 0x6014): "FTDI FT232H",
    (0x0403, 0x6015): "FTDI FT-X",
    (ESPRESSIF_VID, USB_JTAG_SERIAL_PID): "Espressif USB-Serial/JTAG",
    (ESPRESSIF_VID, None): "Espressif native USB",
}


class PortInfo(Protocol):
    """The fields of pyserial's ``ListPortInfo`` that discovery reads."""

    device: str
    vid: int | None
    pid: int | None
    serial_number: str | None
    location: str | None
    description: str


@dataclass(frozen=True)
class BoardPort:
    """One serial port that looks like an ESP32 board."""

    device: str
    vid: int
    pid: int
    bridge: str
    serial_number: str | None
    location: str | None
    description: str

    @property
    def vid_pid(self) -> str:
        return f"{self.vid:04x}:{self.pid:04x}"

    @property
    def native_usb_jtag(self) -> bool:
        """True for the chip's own USB-Serial/JTAG, which needs esptool's USB reset."""
        return (self.vid, self.pid) == (ESPRESSIF_VID, USB_JTAG_SERIAL_PID)

    def describe(self) -> str:
        parts = [self.device, self.vid_pid, self.bridge]
        if self.serial_number:
            parts.append(f"serial {self.serial_number}")
        if self.location:
            parts.append(f"location {self.location}")
        return ", ".join(parts)


def bridge_name(vid: int | None, pid: int | None) -> str | None:
    """The ESP32 bridge a VID:PID belongs to, or None if it is not a known one."""
    if vid is None:
        return None
    return KNOWN_BRIDGES.get((vid, pid)) or KNOWN_BRIDGES.get((vid, None))


def system_ports() -> list[PortInfo]:
    from serial.tools import list_ports

    return list(list_ports.comports())


def list_boards(ports: Iterable[PortInfo] | None = None) -> list[BoardPort]:
    """Ports whose USB identity is a known ESP32 bridge, sorted by device path."""
    found: list[BoardPort] = []
    for port in system_ports() if ports is None else ports:
        name = bridge_name(port.vid, port.pid)
        if name is None or port.vid is None or port.pid is None:
            continue
        found.append(
            BoardPort(
                device=port.device,
                vid=port.vid,
                pid=port.pid,
                bridge=name,
                serial_number=port.serial_number or None,
                location=port.location or None,
                description=port.description,
            )
        )
    return sorted(found, key=lambda board: board.device)


def find_board(device: str, ports: Iterable[PortInfo] | None = None) -> BoardPort | None:
    """The board record for an already-resolved device path (None for URLs/unknown)."""
    real = os.path.realpath(device) if device.startswith("/") else device
    for board in list_boards(ports):
        if board.device in (device, real):
            return board
    return None


def resolve_port(
    spec: str, *, ports: Sequence[PortInfo] | None = None
) -> str:
    """Turn ``auto``, a path, a USB serial number, a USB location or a URL into a port.

    Raises :class:`PortNotFound` with the choices when the spec matches no port, or when
    ``auto`` finds zero or several boards.
    """
    spec = spec.strip()
    if not spec:
        raise PortNotFound("empty port given; pass --hil-device auto, a path, a USB serial "
                           "number, a USB location or rfc2217://host:port")
    if spec.startswith(URL_SCHEMES):
        return spec
    available = list(system_ports() if ports is None else ports)
    boards = list_boards(available)
    if spec == "auto":
        if len(boards) == 1:
            return boards[0].device
        if not boards:
            raise PortNotFound(
                "no ESP32 board found: no serial port with a CP210x, CH340/CH9102, FTDI or "
                "Espressif USB bridge is attached",
                hint="plug the board in (check the cable carries data), or pass its port "
                "path or rfc2217://host:port to --hil-device",
            )
        choices = "; ".join(board.describe() for board in boards)
        raise PortNotFound(
            f"{len(boards)} ESP32 boards found, --hil-device auto needs exactly one",
            hint=f"pick one by path, serial number or location: {choices}",
        )
    if spec.startswith("/") or spec.upper().startswith("COM"):
        if spec.startswith("/") and not Path(spec).exists():
            raise PortNotFound(
                f"serial port {spec} does not exist",
                hint="run `python -m harness ports` to list attached boards",
            )
        return spec
    for port in available:
        if spec in (port.serial_number, port.location):
            return port.device
    known = "; ".join(board.describe() for board in boards) or "none attached"
    raise PortNotFound(
        f"no serial port has the USB serial number or location {spec!r}",
        hint=f"ESP32 boards here: {known}",
    )


# --- who holds a port ----------------------------------------------------------------
def port_holder(device: str, *, proc: Path = Path("/proc")) -> str | None:
    """``"pid 1234 (screen)"`` for the process holding ``device`` open, where the OS tells.

    Scans ``/proc/*/fd`` on Linux (only processes we may inspect), else asks ``lsof``.
    """
    if not device.startswith("/"):
        return None
    target = os.path.realpath(device)
    if proc.is_dir():
        return _scan_proc(target, proc)
    return _ask_lsof(target)


def _scan_proc(target: str, proc: Path) -> str | None:
    pty_index = _pty_index(target)
    me = os.getpid()
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue
        holds_port = holds_master = False
        for fd in fds:
            try:
                link = str(fd.readlink())
            except OSError:
                continue
            holds_port = holds_port or link == target
            if pty_index is not None and link == "/dev/ptmx":
                holds_master = holds_master or _fd_pty_index(entry, fd.name) == pty_index
        # The process serving a pseudo-terminal's master side is the "board" (an emulator,
        # socat, ser2net's pty); it may keep the slave open too. Anyone else is a rival reader.
        if holds_port and not holds_master:
            return f"pid {entry.name} ({_process_name(entry)})"
    return None


def _pty_index(target: str) -> int | None:
    """N for ``/dev/pts/N``, else None (a real UART)."""
    folder, _, name = target.rpartition("/")
    return int(name) if folder == "/dev/pts" and name.isdigit() else None


def _fd_pty_index(entry: Path, fd: str) -> int | None:
    """Which pty a ``/dev/ptmx`` descriptor is the master of (Linux fdinfo ``tty-index``)."""
    try:
        info = (entry / "fdinfo" / fd).read_text()
    except OSError:
        return None
    for line in info.splitlines():
        key, _, value = line.partition(":")
        if key == "tty-index" and value.strip().isdigit():
            return int(value.strip())
    return None


def _process_name(entry: Path) -> str:
    try:
        return (entry / "comm").read_text().strip() or "?"
    except OSError:
        return "?"


def _ask_lsof(target: str, *, lsof: str | None = None,
              run: Callable[..., subprocess.CompletedProcess[str]] | None = None) -> str | None:
    lsof = lsof or shutil.which("lsof")
    if lsof is None:
        return None
    runner = run or lifetime.run
    try:
        result = runner([lsof, "-F", "pc", "--", target], stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, text=True, timeout=5, check=False)
    except (OSError, ProcessFailed):
        return None
    pid = name = None
    for line in result.stdout.splitlines():
        if line.startswith("p") and int(line[1:] or 0) != os.getpid():
            pid = line[1:]
        elif line.startswith("c") and pid is not None:
            name = line[1:]
            break
    return f"pid {pid} ({name or '?'})" if pid else None
