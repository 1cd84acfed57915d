"""A ROM-level ESP32 double served over real RFC2217: a fake that ships with the package.

It exists to test the real-board path (discovery, DTR/RTS resets, esptool flashing)
without hardware, independently of the full emulator.

It is the wire-up part of an ESP32 devkit and nothing more: the DTR/RTS auto-reset
circuit (with the RC delay on EN that lets esptool's classic sequence work), the ROM's
download mode answered by the real :class:`harness.emulator.rom.RomBootloader`, and a
"firmware" that boots only if the flash holds a valid MicroPython app image
(:func:`profile_from_flash`) and then prints its banner and a prompt. The full
MicroPython emulation lives in :mod:`harness.emulator`; this double models only the line.
The server is pyserial's own RFC2217 ``PortManager``, so the client side (pyserial's
``rfc2217://`` handler inside esptool and the harness) is exercised unmodified.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path

from serial import rfc2217

from harness.emulator.firmware_image import FLASH_FILE_NAME, app_in_flash
from harness.emulator.reset_circuit import AutoResetCircuit
from harness.emulator.rom import FlashStore, RomBootloader, flash_boot_failure
from harness.esp32.rom import DOWNLOAD_BANNER, FLASH_BOOT_BANNER, invalid_header_line


class RomBoard:
    """The serial-port side of the board: what pyserial's PortManager calls ``serial``."""

    def __init__(self, state_dir: Path, *, io0_stuck_low: bool = False) -> None:
        self.flash = FlashStore(state_dir / FLASH_FILE_NAME)
        self.io0_stuck_low = io0_stuck_low  # a BOOT button held down / a wiring fault
        self.boots: list[str] = []  # "download" or "flash", one entry per reset
        self.baudrate, self.bytesize, self.parity, self.stopbits = 115200, 8, "N", 1
        self.rtscts = self.xonxoff = self.break_condition = False
        self.cts = self.dsr = self.ri = self.cd = False
        self._dtr = self._rts = False
        self._circuit = AutoResetCircuit()
        self._lock = threading.Lock()
        self._boot_timer: threading.Timer | None = None
        self._rom: RomBootloader | None = None
        self.download_sessions: list[RomBootloader] = []  # one per download-mode boot
        self.output: list[bytes] = []  # what the board printed
        self.send = self._record

    def _record(self, data: bytes) -> None:
        self.output.append(data)

    # --- the auto-reset circuit --------------------------------------------------
    @property
    def dtr(self) -> bool:
        return self._dtr

    @dtr.setter
    def dtr(self, value: bool) -> None:
        self._set_lines(dtr=value, rts=self._rts)

    @property
    def rts(self) -> bool:
        return self._rts

    @rts.setter
    def rts(self, value: bool) -> None:
        self._set_lines(dtr=self._dtr, rts=value)

    def _set_lines(self, *, dtr: bool, rts: bool) -> None:
        with self._lock:
            self._dtr, self._rts = dtr, rts
            if self._circuit.set_lines(dtr=dtr, rts=rts, now=time.monotonic()):
                self._rom = None  # EN low: the chip stops
            self._schedule_boot()

    def _schedule_boot(self) -> None:
        """A timer for the moment the circuit lets the chip out of reset (none in reset)."""
        if self._boot_timer is not None:
            self._boot_timer.cancel()
            self._boot_timer = None
        wait = self._circuit.seconds_to_release(time.monotonic())
        if wait is not None:
            self._boot_timer = threading.Timer(wait, self._boot)
            self._boot_timer.daemon = True
            self._boot_timer.start()

    def _boot(self) -> None:
        with self._lock:
            if not self._circuit.released(time.monotonic()):
                self._schedule_boot()  # reset again meanwhile, or the timer ran early
                return
            self._boot_timer = None
            if self.io0_stuck_low or not self._circuit.io0:
                self.boots.append("download")
                self._rom = RomBootloader(lambda data: self.send(data), self.flash)
                self.download_sessions.append(self._rom)
                self.send(DOWNLOAD_BANNER)
                return
            self.boots.append("flash")
            self._rom = None
        self.send(FLASH_BOOT_BANNER)
        self.send(self._firmware_greeting())

    def _firmware_greeting(self) -> bytes:
        flash = self.flash.read(0, self.flash.size)
        failure = flash_boot_failure(flash)
        image = app_in_flash(flash)
        if failure is not None or image is None or image.app is None:
            return failure[0] if failure else invalid_header_line(0xFFFFFFFF)
        return f"MicroPython {image.app.version} on 2024-01-01; Generic ESP32 module with " \
               f"ESP32\r\nType \"help()\" for more information.\r\n>>> ".encode()

    # --- data from the host ---------------------------------------------------------
    def write(self, data: bytes) -> None:
        rom = self._rom
        if rom is not None:
            rom.feed(data)
        elif b"\x02" in data and self.boots and self.boots[-1] == "flash":
            self.send(self._firmware_greeting())

    def reset_input_buffer(self) -> None:
        pass

    def reset_output_buffer(self) -> None:
        pass


class Rfc2217BoardServer:
    """Serves one :class:`RomBoard` on ``rfc2217://127.0.0.1:<port>``, one client at a time."""

    def __init__(self, board: RomBoard) -> None:
        self.board = board
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"rfc2217://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="rfc2217-board", daemon=True)
        self._client: socket.socket | None = None

    def __enter__(self) -> Rfc2217BoardServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept()
        self._listener.close()
        if self._client is not None:
            with contextlib.suppress(OSError):
                self._client.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small replies
            self._client = client
            self._session(client)
            client.close()
            self._client = None

    def _session(self, client: socket.socket) -> None:
        send_lock = threading.Lock()

        class _Connection:
            @staticmethod
            def write(data: bytes) -> None:
                with send_lock, contextlib.suppress(OSError):
                    client.sendall(data)

        manager = rfc2217.PortManager(self.board, _Connection())
        self.board.send = lambda data: _Connection.write(b"".join(manager.escape(data)))
        try:
            while not self._stop.is_set():
                try:
                    data = client.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                payload = b"".join(manager.filter(data))
                if payload:
                    self.board.write(payload)
        finally:
            self.board.send = self.board._record
