"""The board's serial port: a pseudo-terminal whose slave side users open like a USB-UART.

The supervisor owns the master side. It keeps one slave descriptor open itself, so the
line survives clients coming and going (otherwise the master reads EIO between clients),
and puts the slave in raw mode: no echo, no ONLCR (which would turn the board's ``\\r\\n``
into ``\\r\\r\\n``), no signals.
"""

from __future__ import annotations

import contextlib
import os
import termios
import tty


class SerialLine:
    """One pty pair. ``port`` is what mpremote/pyserial open."""

    def __init__(self) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self.master, False)
        self.port = os.ttyname(self._slave)
        self.dropped = 0  # bytes lost because nobody read the port (like a real UART)

    def read(self) -> bytes:
        """What the user sent; b"" if nothing is pending."""
        try:
            return os.read(self.master, 4096)
        except (BlockingIOError, InterruptedError):
            return b""

    def write(self, data: bytes) -> None:
        """Send board output; when no client drains the port, old output is discarded
        rather than blocking the board (a UART with nobody listening loses bytes too)."""
        view = memoryview(data)
        flushed = False
        while view:
            try:
                view = view[os.write(self.master, view):]
            except BlockingIOError:
                if flushed:
                    self.dropped += len(view)
                    return
                termios.tcflush(self._slave, termios.TCIFLUSH)
                flushed = True

    def close(self) -> None:
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)
