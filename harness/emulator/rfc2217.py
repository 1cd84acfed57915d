"""A board's serial line over RFC2217 (telnet COM-port control) on 127.0.0.1.

The one RFC2217 server of the emulator: it serves any :class:`SerialEndpoint`, the full
:class:`~harness.emulator.board.EmulatedBoard` (``--rfc2217``) and the ROM-only
:class:`~harness.emulator.rom_board.RomBoard` alike. pyserial's
:class:`serial.rfc2217.PortManager` speaks the protocol; this module gives it a serial-like
object whose DTR/RTS go to the board's auto-reset circuit (``set_modem_lines``). One
client at a time, like a real port.

The line is lossless here too: board output for the client waits in a bounded buffer
(:data:`~harness.emulator.serial_line.BRIDGE_BUFFER`) that a sender thread drains into
the socket; while it is full the board's writes wait (a board that honours ``has_room``).
Input from the client is handed to the board with ``feed_input``, which may block while
the board is not reading, so TCP flow control reaches the client.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Any, Protocol

import serial.rfc2217

from harness.emulator.serial_line import BRIDGE_BUFFER, OutputSink
from harness.errors import EmulatorError, PortInUse


class SerialEndpoint(Protocol):
    """The board side of a serial port: what the server drives and listens to."""

    def set_modem_lines(self, *, dtr: bool, rts: bool) -> None:
        """DTR/RTS as the client set them (pyserial's True: asserted)."""

    def feed_input(self, data: bytes) -> None:
        """Bytes from the client, as if typed on the port."""

    def add_output_sink(self, sink: OutputSink) -> None:
        """Send the board's output to ``sink`` too, until removed."""

    def remove_output_sink(self, sink: OutputSink) -> None: ...

    def wake(self) -> None:
        """A sink that had no room has drained."""


class _ModemLines:
    """What PortManager reads and writes on "the serial port"."""

    def __init__(self, board: SerialEndpoint) -> None:
        self._board = board
        self._dtr = False
        self._rts = False
        self.baudrate = 115200
        self.bytesize, self.parity, self.stopbits = 8, "N", 1
        self.rtscts = self.xonxoff = False
        self.cts = self.dsr = self.ri = self.cd = False
        self.name = "emulated-esp32"

    def _apply(self) -> None:
        self._board.set_modem_lines(dtr=self._dtr, rts=self._rts)

    @property
    def dtr(self) -> bool:
        return self._dtr

    @dtr.setter
    def dtr(self, value: bool) -> None:
        self._dtr = bool(value)
        self._apply()

    @property
    def rts(self) -> bool:
        return self._rts

    @rts.setter
    def rts(self, value: bool) -> None:
        self._rts = bool(value)
        self._apply()

    def break_condition(self, *_: Any) -> None:
        pass

    def reset_input_buffer(self) -> None:
        pass

    def reset_output_buffer(self) -> None:
        pass


class _ClientSink:
    """Board output for one client: a bounded buffer and the thread that sends it."""

    def __init__(self, client: socket.socket, send_lock: threading.Lock,
                 escape: Callable[[bytes], bytes], drained: Callable[[], None]) -> None:
        self._client = client
        self._send_lock = send_lock
        self._escape = escape
        self._drained = drained
        self._buffer = bytearray()
        self._cond = threading.Condition()
        self._open = True
        self._thread = threading.Thread(target=self._send_loop, name="rfc2217 sender",
                                        daemon=True)
        self._thread.start()

    def write(self, data: bytes) -> None:
        with self._cond:
            if self._open:
                self._buffer += self._escape(data)
                self._cond.notify()

    def has_room(self) -> bool:
        with self._cond:
            return len(self._buffer) < BRIDGE_BUFFER or not self._open

    def _send_loop(self) -> None:
        while True:
            with self._cond:
                while self._open and not self._buffer:
                    self._cond.wait()
                if not self._open:
                    return
                chunk = bytes(self._buffer)
                self._buffer.clear()
            try:
                with self._send_lock:
                    self._client.sendall(chunk)
            except OSError:
                with self._cond:
                    self._open = False
                    self._buffer.clear()
            self._drained()

    def close(self) -> None:
        with self._cond:
            self._open = False
            self._cond.notify()
        self._thread.join(5.0)


class Rfc2217Server:
    """Serves ``board`` on ``rfc2217://127.0.0.1:<port>`` (0: a free port) once started."""

    def __init__(self, board: SerialEndpoint, port: int = 0) -> None:
        self._board = board
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._listener.bind(("127.0.0.1", port))
        except OSError as exc:
            self._listener.close()
            raise PortInUse(f"RFC2217 port 127.0.0.1:{port} is busy ({exc.strerror}); "
                            "give another --rfc2217 PORT, or 0 for a free one") from exc
        self._listener.listen(1)
        self.port = self._listener.getsockname()[1]
        self.url = f"rfc2217://127.0.0.1:{self.port}"
        self._client: socket.socket | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, name=f"rfc2217 {self.port}",
                                        daemon=True)
        self._running = False

    def start(self) -> None:
        self._running = True
        self._thread.start()

    def __enter__(self) -> Rfc2217Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Idempotent: closes the listener and the client's connection."""
        self._running = False
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            if self._client is not None:
                with contextlib.suppress(OSError):
                    self._client.shutdown(socket.SHUT_RDWR)
        if self._thread.is_alive():
            self._thread.join(5.0)

    def _serve(self) -> None:
        while self._running:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._handle(client)

    def _handle(self, client: socket.socket) -> None:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        lock = threading.Lock()

        class _Connection:
            def write(self, data: bytes) -> None:
                with lock:
                    client.sendall(data)

        manager = serial.rfc2217.PortManager(_ModemLines(self._board), _Connection())
        to_client = _ClientSink(client, lock, lambda data: b"".join(manager.escape(data)),
                                self._board.wake)

        with self._lock:
            self._client = client
        self._board.add_output_sink(to_client)
        try:
            while self._running:
                data = client.recv(4096)
                if not data:
                    break
                payload = b"".join(manager.filter(data))
                if payload:
                    self._board.feed_input(payload)
        except (OSError, EmulatorError):  # the client left, or the board is stopping
            pass
        finally:
            self._board.remove_output_sink(to_client)
            to_client.close()
            with self._lock:
                self._client = None
            client.close()
