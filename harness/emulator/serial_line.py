"""The board's serial port: a pseudo-terminal whose slave side users open like a USB-UART.

The supervisor owns the master side. It keeps one slave descriptor open itself, so the
line survives clients coming and going (otherwise the master reads EIO between clients),
and puts the slave in raw mode: no echo, no ONLCR (which would turn the board's ``\\r\\n``
into ``\\r\\r\\n``), no signals.

The line is lossless while a client has the port open, as a USB-UART bridge is while the
host reads: board output the client has not read yet waits in the pty and then in a
bounded buffer here (:data:`BRIDGE_BUFFER`), and once that is full the supervisor stops
reading the board's stdout, so the board's own writes block. Nothing is ever dropped
behind an open port. While *no* client has the port open the board's output goes nowhere,
as a real UART's does with nothing listening (counted in :attr:`SerialLine.unattended`),
so a board left running is never stalled by an absent reader. Clients are seen with
inotify on the slave's device node (Linux); elsewhere the port counts as always open.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import struct
import sys
import termios
import tty
from typing import Protocol, runtime_checkable

# What a USB-UART bridge plus the host driver hold for a reader that is not reading, on
# top of the pty's own queue; past it the board's writes block.
BRIDGE_BUFFER = 4096

_IN_OPEN = 0x20
_IN_CLOSE = 0x08 | 0x10  # IN_CLOSE_WRITE | IN_CLOSE_NOWRITE
_EVENT = struct.Struct("iIII")


@runtime_checkable
class OutputSink(Protocol):
    """Somewhere board output goes (the pty, an RFC2217 client). ``write`` never blocks;
    ``has_room`` says whether the board may produce more (back-pressure)."""

    def write(self, data: bytes) -> None: ...

    def has_room(self) -> bool: ...


class ClientWatch:
    """Counts the processes that have a tty device open, from inotify open/close events."""

    def __init__(self, path: str) -> None:
        self.fd = -1
        self.clients = 0
        if not sys.platform.startswith("linux"):
            return
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            return
        if libc.inotify_add_watch(fd, path.encode(), _IN_OPEN | _IN_CLOSE) < 0:
            os.close(fd)
            return
        self.fd = fd

    @property
    def supported(self) -> bool:
        return self.fd >= 0

    def update(self) -> None:
        """Read pending events; ``clients`` is then the number of open descriptions."""
        while self.fd >= 0:
            try:
                data = os.read(self.fd, 4096)
            except (BlockingIOError, InterruptedError):
                return
            offset = 0
            while offset + _EVENT.size <= len(data):
                _wd, mask, _cookie, name_len = _EVENT.unpack_from(data, offset)
                offset += _EVENT.size + name_len
                if mask & _IN_OPEN:
                    self.clients += 1
                elif mask & _IN_CLOSE:
                    self.clients = max(0, self.clients - 1)

    def close(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1


class SerialLine:
    """One pty pair. ``port`` is what mpremote/pyserial open."""

    def __init__(self, buffer_size: int = BRIDGE_BUFFER) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self.master, False)
        self.port = os.ttyname(self._slave)
        self._watch = ClientWatch(self.port)
        self._pending = bytearray()
        self._buffer_size = buffer_size
        self.unattended = 0  # bytes the board sent while no client had the port open
        self.delivered = 0  # bytes handed to the pty while a client had it open

    @property
    def watch_fd(self) -> int:
        """inotify descriptor to select on (-1 when clients cannot be watched)."""
        return self._watch.fd

    @property
    def attached(self) -> bool:
        return self._watch.clients > 0 or not self._watch.supported

    def clients_changed(self) -> None:
        """Call when :attr:`watch_fd` is readable. A port the last client closed loses what
        it held, as a real tty's input queue does on the last close."""
        was = self.attached
        self._watch.update()
        if was and not self.attached:
            self.unattended += len(self._pending)
            self._pending.clear()
            with contextlib.suppress(termios.error):
                termios.tcflush(self._slave, termios.TCIFLUSH)

    def read(self, size: int = 4096) -> bytes:
        """What the user sent; b"" if nothing is pending."""
        try:
            return os.read(self.master, size)
        except (BlockingIOError, InterruptedError):
            return b""

    def write(self, data: bytes) -> None:
        """Queue board output; never blocks (see :meth:`has_room` for back-pressure)."""
        if not self.attached:
            self.unattended += len(data)
            return
        self._pending += data
        self.flush()

    def flush(self) -> None:
        """Hand queued output to the pty as far as it takes it."""
        while self._pending:
            try:
                written = os.write(self.master, self._pending)
            except (BlockingIOError, InterruptedError):
                return
            self.delivered += written
            del self._pending[:written]

    @property
    def pending(self) -> int:
        """Bytes waiting for the client to read enough for the pty to take them."""
        return len(self._pending)

    def has_room(self) -> bool:
        return len(self._pending) < self._buffer_size

    def close(self) -> None:
        self._watch.close()
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)
