"""A ROM-level ESP32 double: a fake that ships with the package.

It exists to test the real-board path (discovery, DTR/RTS resets, esptool flashing)
without hardware and without the MicroPython interpreter the full emulator needs.

It is the wire-up part of an ESP32 devkit and nothing more, built from the emulator's own
parts: the auto-reset circuit (:mod:`~harness.emulator.reset_circuit`, with the RC delay on
EN that lets esptool's classic sequence work), the ROM's download mode answered by
:class:`~harness.emulator.rom.RomBootloader`, and a "firmware" that boots only if the flash
holds a valid app image (:func:`~harness.emulator.firmware_image.app_in_flash`) and then
prints its banner and a prompt. Serve it with the emulator's
:class:`~harness.emulator.rfc2217.Rfc2217Server` (pyserial's own RFC2217 ``PortManager``),
so the client side (pyserial's ``rfc2217://`` handler inside esptool and the harness) is
exercised unmodified::

    board = RomBoard(state_dir)
    with Rfc2217Server(board) as server:
        flash_firmware(server.url, image)
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from harness.emulator.firmware_image import FLASH_FILE_NAME, app_in_flash
from harness.emulator.reset_circuit import AutoResetCircuit
from harness.emulator.rom import FlashStore, RomBootloader, flash_boot_failure
from harness.emulator.serial_line import OutputSink
from harness.esp32.rom import DOWNLOAD_BANNER, FLASH_BOOT_BANNER, invalid_header_line

CTRL_B = 0x02  # the friendly REPL's "print the banner" key


class RomBoard:
    """The board as a serial endpoint (:class:`~harness.emulator.rfc2217.SerialEndpoint`):
    modem lines in, bytes in, bytes out to whoever listens."""

    def __init__(self, state_dir: Path, *, io0_stuck_low: bool = False) -> None:
        self.flash = FlashStore(state_dir / FLASH_FILE_NAME)
        self.io0_stuck_low = io0_stuck_low  # a BOOT button held down / a wiring fault
        self.boots: list[str] = []  # "download" or "flash", one entry per reset
        self.download_sessions: list[RomBootloader] = []  # one per download-mode boot
        self._circuit = AutoResetCircuit()
        self._lock = threading.Lock()
        self._boot_timer: threading.Timer | None = None
        self._rom: RomBootloader | None = None
        self._sinks: list[OutputSink] = []  # output with no listener is lost, as on a UART

    # --- the serial endpoint ------------------------------------------------------------
    def set_modem_lines(self, *, dtr: bool, rts: bool) -> None:
        with self._lock:
            if self._circuit.set_lines(dtr=dtr, rts=rts, now=time.monotonic()):
                self._rom = None  # EN low: the chip stops
            self._schedule_boot()

    def feed_input(self, data: bytes) -> None:
        rom = self._rom
        if rom is not None:
            rom.feed(data)
        elif CTRL_B in data and self.boots and self.boots[-1] == "flash":
            self._send(self._firmware_greeting())

    def add_output_sink(self, sink: OutputSink) -> None:
        with self._lock:
            self._sinks.append(sink)

    def remove_output_sink(self, sink: OutputSink) -> None:
        with self._lock:
            self._sinks.remove(sink)

    def wake(self) -> None:
        """A sink drained; nothing waits on that here (the board's output is small)."""

    def _send(self, data: bytes) -> None:
        for sink in list(self._sinks):
            sink.write(data)

    # --- reset and boot ---------------------------------------------------------------------
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
                self._rom = RomBootloader(self._send, self.flash)
                self.download_sessions.append(self._rom)
                self._send(DOWNLOAD_BANNER)
                return
            self.boots.append("flash")
            self._rom = None
        self._send(FLASH_BOOT_BANNER)
        self._send(self._firmware_greeting())

    def _firmware_greeting(self) -> bytes:
        flash = self.flash.read(0, self.flash.size)
        failure = flash_boot_failure(flash)
        image = app_in_flash(flash)
        if failure is not None or image is None or image.app is None:
            return failure[0] if failure else invalid_header_line(0xFFFFFFFF)
        return f"MicroPython {image.app.version} on 2024-01-01; Generic ESP32 module with " \
               f"ESP32\r\nType \"help()\" for more information.\r\n>>> ".encode()
