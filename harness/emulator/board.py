"""The emulated ESP32: a real MicroPython interpreter behind a serial line.

:class:`EmulatedBoard` is the supervisor. It owns the pseudo-terminal (see
:mod:`harness.emulator.serial_line`) and, per boot, one interpreter process running
``mpy/board_runtime.py`` (the REPL protocol, boot.py/main.py, the flash mount). One thread
per board relays bytes with a selector loop:

* user -> board: the bytes as sent, onto the child's stdin; the UART's interrupt
  character (Ctrl-C while code runs, unless ``micropython.kbd_intr`` changed it) becomes
  SIGINT instead, as the ESP32's UART driver turns it into KeyboardInterrupt;
* board -> user: the child's stdout bytes as written (the firmware's text-path
  ``\\n`` -> ``\\r\\n`` happens in the child, see mpy/_stdio.py);
* events from the child, out of band on their own pipe: booted, running code, back at
  the REPL, interrupt character, hard reset.

A soft reset is a fresh interpreter process (clean heap and modules) started in the REPL
mode that was active; the serial line stays open throughout.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import selectors
import shutil
import signal
import threading
import time
from collections.abc import Callable, Mapping
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any

from harness import lifetime
from harness.deadline import Deadline
from harness.emulator import interpreter
from harness.emulator.boot import (
    CRASH_LIMIT,
    CTRL_C,
    DEFAULT_MAC,
    ROM_BOOT,
    BootProcess,
    write_boot_config,
)
from harness.emulator.clock import RTC_FILE, RtcFile, tls_clock_patch
from harness.emulator.firmware_image import (
    FLASH_FILE_NAME,
    build_merged_firmware,
    filesystem_range,
    profile_from_flash,
)
from harness.emulator.flash import prepare_flash
from harness.emulator.heap import HeapPlan
from harness.emulator.mpy import _board_wire as wire
from harness.emulator.mpy._board_wire import (
    DEEPSLEEP_RESET,
    HARD_RESET,
    PWRON_RESET,
    WDT_FILE,
    WDT_RESET,
)
from harness.emulator.profiles import DEFAULT_PROFILE, Profile, get_profile
from harness.emulator.reset_circuit import AutoResetCircuit
from harness.emulator.rom import BOOT_RETRY_S, FlashStore, RomBootloader, flash_boot_failure
from harness.emulator.scenario import LINK_CONTROL_FILE, WIFI_STATE_FILE, WifiScenario
from harness.emulator.serial_line import OutputSink, SerialLine
from harness.emulator.umqtt_source import (
    PackageSources,
    umqtt_134_dir,
    umqtt_from_checkout,
    umqtt_robust_dir,
)
from harness.errors import ConfigError, EmulatorError, HarnessError
from harness.esp32.image import ESP32_BOOTLOADER_OFFSET
from harness.esp32.rom import BOOTLOADER_LOAD_LINES, DOWNLOAD_BANNER, ROM_BOOT_LINE

# The program's heap is the real board's (the profile's, in 32-bit KiB), scaled to the 64-bit
# interpreter, with the runtime's own memory kept out of it (harness/emulator/heap.py).
DEFAULT_HEAP_KIB = 110


# Removed by stop(), or by harness.lifetime's reaper if the owner dies first.
SCRATCH_PREFIX = "esp32-emu-"


# An interpreter that dies this soon after a Ctrl-C died handling it (see _on_exit).
_SIGINT_GRACE_S = 2.0

# Host->board bytes held for a board that is not reading (its UART RX ring buffer and the
# stdin pipe beyond); past it the supervisor stops reading the port, so the sender blocks.
RX_BACKLOG = 4096
# The ESP32 UART's TX/RX FIFOs are 128 bytes: with pacing, bytes move in such bursts.
UART_FIFO = 128


class Pacer:
    """Line-rate pacing for one direction: 8N1 framing takes 10 bit times a byte."""

    def __init__(self, baud: int) -> None:
        self.baud = baud
        self._busy_until = 0.0

    def spend(self, count: int, now: float) -> None:
        # A wake-up that came a little late (up to a FIFO's time) does not lose line time:
        # the average rate stays the baud rate, whatever the scheduler's latency.
        fifo_time = UART_FIFO * 10 / self.baud
        self._busy_until = max(self._busy_until, now - fifo_time) + count * 10 / self.baud

    def wait(self, now: float) -> float:
        """Seconds until another FIFO's worth may go (0 when it may go now)."""
        return max(0.0, self._busy_until - now - UART_FIFO * 10 / self.baud)


class _CallableSink:
    """A plain function as an always-ready :class:`OutputSink`."""

    def __init__(self, call: Callable[[bytes], None]) -> None:
        self.call = call

    def write(self, data: bytes) -> None:
        self.call(data)

    def has_room(self) -> bool:
        return True


class _Command(StrEnum):
    """What a caller's thread asks the board's own thread to do."""

    STOP = "stop"
    RESET = "reset"  # power-on reset
    LINES = "lines"  # the modem lines (DTR, RTS) changed
    INPUT = "input"  # bytes for the UART's RX


class EmulatedBoard:
    """An ESP32 running MicroPython, driven through ``port`` by unmodified tools."""

    def __init__(
        self,
        flash_dir: Path,
        *,
        profile: str = DEFAULT_PROFILE,
        wifi: WifiScenario | None = None,
        hosts: Mapping[str, str] | None = None,
        heap_kib: int | None = None,
        rfc2217_port: int | None = None,
        erase: bool = False,
        state_dir: Path | None = None,
        micropython_lib: Path | None = None,
        packages: PackageSources | None = None,
        mac: str = DEFAULT_MAC,
        baud: int | None = None,
        boot_button: bool = False,
    ) -> None:
        self.profile: Profile = get_profile(profile)
        if baud is not None and not 300 <= baud <= 5_000_000:
            raise ConfigError(f"baud rate {baud} is out of range; give 300..5000000")
        self._baud = baud  # None: bytes move as fast as both ends take them
        self._boot_button = boot_button  # IO0 held low: every reset enters download mode
        self.flash_dir = Path(flash_dir).resolve()
        self.state_dir = Path(state_dir) if state_dir else self.flash_dir.with_name(
            self.flash_dir.name + ".state")
        self.heap_kib = self.profile.heap_kib if heap_kib is None else heap_kib
        if not 16 <= self.heap_kib <= 65536:
            raise ConfigError(f"heap of {self.heap_kib} KiB is out of range; give 16..65536")
        self._wifi = wifi or WifiScenario()
        self._hosts = dict(hosts or {})
        self._udp_ports: dict[int, int] = {}
        self._wdt: tuple[float, float] | None = None  # (timeout s, due at, monotonic)
        self._rfc2217_port = rfc2217_port
        self._erase = erase
        self._micropython_lib = micropython_lib
        self._packages = packages or PackageSources()  # cache, offline sdists (harness.env)
        self._mac = mac
        self._line: SerialLine | None = None
        self._thread: threading.Thread | None = None
        self._commands: queue.Queue[tuple[_Command, Any, threading.Event]] = queue.Queue()
        self._wake_r, self._wake_w = -1, -1
        self._tmp: Path | None = None
        self._child: BootProcess | None = None
        self._booted = threading.Event()
        self._stopped = False
        self._crashes = 0
        self._last_sigint = -1e9  # when Ctrl-C last became SIGINT (monotonic)
        self._last_output = bytearray()  # tail for error messages
        self._sinks: list[OutputSink] = []
        self._tx_pace = Pacer(baud) if baud else None
        self._rx_pace = Pacer(baud) if baud else None
        self._rx_cond = threading.Condition()
        self._rx_queued = 0  # bytes feed_input() handed over, not yet at the child
        self._rx_pending = 0  # bytes at the child's stdin not yet taken by the pipe
        self._in_reset = False  # EN held low
        self._rom: Any = None  # a RomBootloader while in download mode
        self._circuit = AutoResetCircuit()
        self._rfc2217: Any = None
        self.rfc2217_url: str | None = None
        self._failure: EmulatorError | None = None  # why the board cannot run
        self._link_seq = 0
        self.firmware_missing = False  # the flash holds nothing bootable (ROM boot loop)
        self._boot_retry_at: tuple[float, bytes] | None = None  # next attempt, its reset line

    # --- public API -------------------------------------------------------------------
    @property
    def port(self) -> str:
        if self._line is None:
            raise EmulatorError("the board is not started; call start() first")
        return self._line.port

    def start(self, timeout: float = 10.0) -> None:
        """Power the board on; returns once mpremote can drive ``port``."""
        if self._thread is not None:
            return
        interpreter.extension_dir()  # InterpreterMissing early, with its one line
        prepare_flash(self.flash_dir, erase=self._erase)
        self._umqtt_dir(self.profile)  # fetch/check umqtt now: its error is the user's line
        umqtt_robust_dir(self._packages)
        try:
            self._tmp = lifetime.temp_dir(SCRATCH_PREFIX)
            self._line = SerialLine()
            self._wake_r, self._wake_w = os.pipe()
            if self._rfc2217_port is not None:
                from harness.emulator.rfc2217 import Rfc2217Server

                self._rfc2217 = Rfc2217Server(self, self._rfc2217_port)
                self.rfc2217_url = self._rfc2217.url
            self._thread = threading.Thread(target=self._run, name=f"esp32-emu {self.port}",
                                            daemon=True)
            self._thread.start()
            deadline = Deadline(timeout, f"the emulated ESP32 on {self.port} to boot")
            if not self._booted.wait(deadline.remaining()):
                raise deadline.fail(self._tail())
            if self._failure is not None:
                raise self._failure
            if self._rfc2217 is not None:
                self._rfc2217.start()
        except BaseException:
            self.stop()
            raise

    def hard_reset(self) -> None:
        """Like pressing EN: ROM boot lines, banner, boot.py/main.py."""
        self._call(_Command.RESET, PWRON_RESET)

    def set_boot_button(self, pressed: bool) -> None:
        """Hold (or release) the BOOT button, i.e. IO0 low: from the next reset on, the
        ROM enters its download mode, so ``esptool --before no-reset`` works on ``port``
        (a pty has no DTR/RTS for esptool's own reset sequence)."""
        self._boot_button = pressed

    def set_modem_lines(self, *, dtr: bool, rts: bool) -> None:
        """The devkit auto-reset circuit: EN = not (RTS and not DTR), IO0 = not (DTR and
        not RTS). EN rising resets the chip; IO0 low at that moment = ROM download mode."""
        self._call(_Command.LINES, (dtr, rts))

    def set_wifi(self, scenario: WifiScenario) -> None:
        """Takes effect from the next boot (reset), like changing the room's access points."""
        self._wifi = scenario
        if self._tmp is not None:  # a new scenario starts with the link as it describes
            (self._tmp / LINK_CONTROL_FILE).unlink(missing_ok=True)
            self._forget_association()

    def _forget_association(self) -> None:
        """The Wi-Fi driver's state is gone (any reset but a soft one, or new access points)."""
        if self._tmp is not None:
            (self._tmp / WIFI_STATE_FILE).unlink(missing_ok=True)

    def set_link(self, *, down: bool, ip: str | None = None) -> None:
        """Drop (``down``) or restore the Wi-Fi link now; ``ip`` is the address after
        reassociation. Acts only when the booted scenario has ``link_control`` on."""
        if self._tmp is None:
            raise EmulatorError("the board is not started; call start() first")
        self._link_seq += 1
        path = self._tmp / LINK_CONTROL_FILE
        partial = path.with_suffix(".tmp")
        partial.write_text(json.dumps({"down": down, "ip": ip, "seq": self._link_seq}),
                           encoding="utf-8")
        partial.replace(path)  # atomic: the board never reads half a file

    def set_udp_ports(self, mapping: Mapping[int, int]) -> None:
        """Where the board's UDP datagrams to a well-known port really go, from the next
        boot: ``{123: 40123}`` sends NTP (port 123, which needs root to bind) to the rig's
        NTP server on 40123 of the same host."""
        self._udp_ports = {int(k): int(v) for k, v in mapping.items()}

    def add_output_sink(self, sink: OutputSink | Callable[[bytes], None]) -> None:
        """Also send board output to ``sink`` (the RFC2217 endpoint uses this): an
        :class:`OutputSink`, whose lack of room makes the board's writes wait as for the
        pty, or a plain callable that takes every byte at once."""
        if isinstance(sink, OutputSink):
            self._sinks.append(sink)
        else:
            self._sinks.append(_CallableSink(sink))
        self.wake()

    def remove_output_sink(self, sink: OutputSink | Callable[[bytes], None]) -> None:
        for entry in list(self._sinks):
            if entry is sink or getattr(entry, "call", None) is sink:
                self._sinks.remove(entry)
        self.wake()

    def wake(self) -> None:
        """Make the supervisor look again at its sinks (one has drained)."""
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"!")

    def feed_input(self, data: bytes, timeout: float = 30.0) -> None:
        """Bytes from another serial endpoint (RFC2217), as if typed on ``port``. Blocks
        while the board has a full backlog (it is not reading), like a port's writes."""
        if self._rx_pace is not None:
            now = time.monotonic()
            time.sleep(self._rx_pace.wait(now))
            self._rx_pace.spend(len(data), time.monotonic())
        deadline = Deadline(timeout, "the emulated ESP32 to read its serial input")
        with self._rx_cond:
            while (self._rx_queued + self._rx_pending >= RX_BACKLOG and not self._stopped
                   and not deadline.expired):
                self._rx_cond.wait(min(0.1, deadline.remaining()))
            self._rx_queued += len(data)
        self._call(_Command.INPUT, data, wait=False)

    def stop(self) -> None:
        """Idempotent: ends the child, closes the port, removes temporary files."""
        if self._stopped:
            return
        self._stopped = True
        if self._rfc2217 is not None:
            self._rfc2217.stop()
        if self._thread is not None and self._thread.is_alive():
            self._commands.put((_Command.STOP, None, threading.Event()))
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"!")
            self._thread.join(10.0)
        if self._child is not None:
            self._child.kill()
            self._child = None
        if self._line is not None:
            self._line.close()
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        if self._tmp is not None:
            lifetime.remove_dir(self._tmp)

    def __enter__(self) -> EmulatedBoard:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # --- setup helpers ----------------------------------------------------------------
    def _umqtt_dir(self, profile: Profile) -> Path:
        if profile.umqtt_from_pypi:
            return umqtt_134_dir(self._packages)
        return umqtt_from_checkout(self._micropython_lib, profile.umqtt_version)

    def _frozen_dir(self, profile: Profile) -> Path:
        """The profile's frozen micropython-lib packages in one folder (``umqtt`` is one
        package on the board, though simple and robust come from two sdists)."""
        assert self._tmp is not None
        folder = self._tmp / "frozen" / profile.name
        if not folder.exists():
            package = folder.with_suffix(".partial") / "umqtt"
            shutil.rmtree(package.parent, ignore_errors=True)
            package.mkdir(parents=True)
            shutil.copy(self._umqtt_dir(profile) / "umqtt" / "simple.py", package)
            robust = self._umqtt_dir(profile).parent / "umqtt.robust" / "umqtt" / "robust.py"
            if profile.umqtt_from_pypi or not robust.is_file():
                robust = umqtt_robust_dir(self._packages) / "umqtt" / "robust.py"
            shutil.copy(robust, package)
            package.parent.replace(folder)
        return folder

    def _call(self, command: _Command, arg: Any, *, wait: bool = True,
              timeout: float = 10.0) -> None:
        if self._thread is None or self._stopped:
            raise EmulatorError("the board is not running; call start() first")
        done = threading.Event()
        self._commands.put((command, arg, done))
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"!")
        if wait:
            deadline = Deadline(timeout, f"the emulated ESP32 to handle '{command}'")
            if not done.wait(deadline.remaining()):
                raise deadline.fail(self._tail())

    def _tail(self) -> str:
        return bytes(self._last_output[-200:]).decode("utf-8", "replace")

    # --- the supervisor thread --------------------------------------------------------
    def _run(self) -> None:
        assert self._line is not None
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._line.master, selectors.EVENT_READ, "serial")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        if self._line.watch_fd >= 0:
            self._selector.register(self._line.watch_fd, selectors.EVENT_READ, "clients")
        try:
            self._power_on(PWRON_RESET)
            while not self._handle_events():
                self._update_interest()
        except Exception as exc:  # keep the reason for start()/the log, then power off
            self._failure = EmulatorError(f"the emulated ESP32 supervisor failed: {exc!r}")
            self._emit(f"\r\n[emulated ESP32] supervisor failed: {exc!r}\r\n".encode())
            self._booted.set()
        finally:
            if self._child is not None:
                self._child.kill()
                self._child = None
            self._selector.close()

    def _handle_events(self) -> bool:
        """One selector round; True when the board is told to stop."""
        events = self._selector.select(self._select_timeout())
        if self._circuit.released(time.monotonic()):
            self._come_out_of_reset()
        retry = self._boot_retry_at
        if retry is not None and time.monotonic() >= retry[0] and not self._in_reset:
            self._power_on(PWRON_RESET, reset_line=retry[1])
        self._check_watchdog()
        # Child events before output: 'I' (back at the REPL) is written before the prompt,
        # so a Ctrl-C sent after the prompt is never mistaken for one during user code.
        events.sort(key=lambda item: item[0].data != "ctl")
        for key, mask in events:
            what = key.data
            if what == "wake":
                os.read(self._wake_r, 512)
                if self._run_commands():
                    return True
            elif what == "clients":
                assert self._line is not None
                self._line.clients_changed()
            elif what == "serial":
                assert self._line is not None
                if mask & selectors.EVENT_WRITE:
                    self._line.flush()
                if mask & selectors.EVENT_READ:
                    data = self._line.read(4096 if self._rx_pace is None else UART_FIFO)
                    if self._rx_pace is not None:
                        self._rx_pace.spend(len(data), time.monotonic())
                    self._on_input(data)
            elif self._child is None or key.fd not in (
                    self._child.ctl, self._child.stdout, self._child.stdin):
                continue  # a descriptor of a child already gone
            elif what == "ctl":
                self._on_ctl()
            elif what == "stdout":
                self._on_output()
            elif what == "stdin" and mask & selectors.EVENT_WRITE:
                self._flush_input()
        return False

    def _run_commands(self) -> bool:
        while True:
            try:
                command, arg, done = self._commands.get_nowait()
            except queue.Empty:
                return False
            try:
                if command is _Command.STOP:
                    done.set()
                    return True
                if command is _Command.RESET:
                    self._reboot(arg)
                elif command is _Command.LINES:
                    self._on_modem_lines(*arg)
                elif command is _Command.INPUT:
                    self._on_input(arg)
                    with self._rx_cond:
                        self._rx_queued -= len(arg)
                        self._rx_cond.notify_all()
            finally:
                done.set()

    # --- boots ------------------------------------------------------------------------
    @property
    def rtc(self) -> RtcFile:
        """The board's real-time clock (power-on sets it to 2000-01-01 00:00:00)."""
        if self._tmp is None:
            raise EmulatorError("the board is not started; call start() first")
        return RtcFile(self._tmp / RTC_FILE)

    @property
    def interpreter_pid(self) -> int | None:
        """The process running MicroPython now (None between boots), for tests that make
        the unix port die where a real board would not."""
        child = self._child
        return child.proc.pid if child is not None else None

    # --- the task watchdog (machine.WDT) ------------------------------------------------
    def _arm_watchdog(self) -> None:
        assert self._tmp is not None
        try:
            timeout = int((self._tmp / WDT_FILE).read_text(encoding="ascii")) / 1000
        except (OSError, ValueError):
            return
        self._wdt = (timeout, time.monotonic() + timeout)

    def _check_watchdog(self) -> None:
        # Not fed in time: the IDF task watchdog panics and the chip restarts. It runs
        # whatever the interpreter does (a soft reset, the REPL) until a hard reset.
        if self._wdt is None or time.monotonic() < self._wdt[1]:
            return
        child = self._child
        if child is not None:
            self._drain_output(child)
        self._emit(b"E (%d) task_wdt: Task watchdog got triggered. The following tasks did not "
                   b"reset the watchdog in time:\r\nE (%d) task_wdt:  - mp_task (CPU 0)\r\n"
                   b"E (%d) task_wdt: Aborting.\r\n" % ((int(time.monotonic() * 1000),) * 3))
        self._reboot(WDT_RESET)

    def _power_on(self, cause: int, reset_line: bytes | None = None) -> None:
        self._boot_retry_at = None
        self._wdt = None  # every reset but a soft one stops the task watchdog
        self._forget_association()  # and the Wi-Fi driver starts again, unassociated
        if cause == PWRON_RESET or not self.rtc.path.exists():
            self.rtc.power_on()  # only a power-on clears the RTC; resets and panics keep it
        if self._boot_button:
            self._enter_download_mode()
            self._booted.set()
            return
        failure = self._flash_boot_failure()
        if failure is not None:
            # Nothing bootable in the flash: the ROM says so and its watchdog resets the
            # chip, again and again; esptool can still reach the ROM to flash it.
            lines, retry_line = failure
            self._emit(ROM_BOOT_LINE + (reset_line or ROM_BOOT[cause]) + lines)
            self.firmware_missing = True
            self._boot_retry_at = (time.monotonic() + BOOT_RETRY_S, retry_line)
            self._booted.set()
            return
        self.firmware_missing = False
        if reset_line is not None:
            self._emit(ROM_BOOT_LINE + reset_line + BOOTLOADER_LOAD_LINES)
            self._spawn("friendly", PWRON_RESET)
            return
        self._emit(ROM_BOOT_LINE + ROM_BOOT[cause] + BOOTLOADER_LOAD_LINES)
        self._spawn("friendly", cause)

    def _reboot(self, cause: int) -> None:
        self._end_child()
        self._leave_download_mode()
        self._power_on(cause)

    def _flash_boot_failure(self) -> tuple[bytes, bytes] | None:
        """Why the flash boots nothing, or None. A board whose flash was never written
        through its ROM came with the configured profile's MicroPython on it."""
        path = self.state_dir / FLASH_FILE_NAME
        if not path.exists():
            return None
        return flash_boot_failure(path.read_bytes())

    def check_firmware(self) -> None:
        """EmulatorError in one line when the board's flash holds no firmware."""
        if self.firmware_missing:
            raise EmulatorError(
                f"no firmware: the emulated ESP32's flash ({self.state_dir}) holds no "
                "bootable MicroPython image; flash one (python -m harness flash FIRMWARE "
                "--port rfc2217://...) or delete that folder for a factory-flashed board")

    def _leave_download_mode(self) -> None:
        """The ROM session ends (reset). Flash writes over the filesystem partition
        destroy the filesystem there, so MicroPython starts the next boot with an empty
        one, as it reformats a flash it cannot mount."""
        rom, self._rom = self._rom, None
        if rom is None or not rom.flash.touched:
            return
        start, size = filesystem_range(rom.flash.read(0, rom.flash.size))
        if any(offset < start + size and start < offset + length
               for offset, length in rom.flash.touched):
            prepare_flash(self.flash_dir, erase=True)

    def _spawn(self, mode: str, cause: int, *, skip_boot: bool = False) -> None:
        assert self._tmp is not None
        profile = self._boot_profile()
        try:
            frozen = self._frozen_dir(profile)
        except HarnessError as exc:  # a flashed image names a profile we cannot supply
            self._emit(f"[emulated ESP32] cannot boot {profile.name}: {exc}\r\n".encode())
            profile, frozen = self.profile, self._frozen_dir(self.profile)
        config = self._tmp / "boot.json"
        heap = HeapPlan(self.heap_kib * 1024,
                        min(profile.initial_heap_kib, self.heap_kib) * 1024)
        write_boot_config(config, flash=self.flash_dir, scratch=self._tmp,
                          module_dirs=[interpreter.MPY_DIR, frozen], profile=profile,
                          mode=mode, cause=cause, wifi=self._wifi, hosts=self._hosts,
                          mac=self._mac, skip_boot=skip_boot, rtc=self.rtc.path,
                          udp_ports=self._udp_ports, heap=heap.to_board())
        patch = tls_clock_patch(interpreter.extension_file())
        ctl_read, ctl_write = os.pipe()
        argv = interpreter.command(
            heap_kib=heap.interpreter_kib, config=config, ctl_fd=ctl_write,
            clock_patch=patch.launcher_arg(self.rtc.path, check_dates=profile.checks_cert_dates)
            if patch else "-")
        child = BootProcess(argv, ctl_read, ctl_write)
        self._child = child
        self._selector.register(child.stdout, selectors.EVENT_READ, "stdout")
        self._selector.register(child.ctl, selectors.EVENT_READ, "ctl")
        self._cause = cause

    def _boot_profile(self) -> Profile:
        """The profile a firmware image written to the emulated flash names, else ours."""
        try:
            name = profile_from_flash(self.state_dir)
        except Exception:  # a corrupt image boots nothing better than the configured one
            name = None
        if name is None or name == self.profile.name:
            return self.profile
        try:
            return get_profile(name)
        except ConfigError:
            return self.profile

    def _end_child(self) -> None:
        child = self._child
        if child is None:
            return
        for fd in (child.stdout, child.ctl):
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(fd)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(child.stdin)
        child.kill()
        self._child = None

    # --- child -> user ----------------------------------------------------------------
    def _on_ctl(self) -> None:
        child = self._child
        assert child is not None
        try:
            events = os.read(child.ctl, 256)
        except BlockingIOError:
            return
        if not events:  # the child is exiting; its stdout's end says how
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(child.ctl)
            return
        events = child.partial_event + events
        child.partial_event = b""
        index = 0
        while index < len(events):
            code = events[index:index + 1]
            index += 1
            if code == wire.EVENT_BOOTED:
                child.booted = True
                self._crashes = 0
                self._booted.set()
            elif code == wire.EVENT_RUNNING:  # pyexec: interrupt char Ctrl-C while code runs
                child.executing, child.sigint_sent = True, False
                child.intr_char = CTRL_C
            elif code == wire.EVENT_REPL:
                child.executing, child.sigint_sent = False, False
                child.intr_char = None
            elif code == wire.EVENT_INTR_CHAR:  # micropython.kbd_intr(c)
                if index >= len(events):
                    child.partial_event = code
                    return
                child.intr_char = events[index]
                index += 1
            elif code == wire.EVENT_INTR_OFF:  # micropython.kbd_intr(-1)
                child.intr_char = None
            elif code == wire.EVENT_WDT_START:  # machine.WDT(timeout=...)
                self._arm_watchdog()
            elif code == wire.EVENT_WDT_FEED and self._wdt is not None:  # WDT.feed()
                self._wdt = (self._wdt[0], time.monotonic() + self._wdt[0])
            elif code in (wire.EVENT_HARD_RESET, wire.EVENT_DEEP_SLEEP):
                self._drain_output(child)
                self._reboot(HARD_RESET if code == wire.EVENT_HARD_RESET else DEEPSLEEP_RESET)
                return

    def _drain_output(self, child: BootProcess) -> None:
        with contextlib.suppress(OSError):
            while data := os.read(child.stdout, 65536):
                self._emit(data)

    def _on_output(self) -> None:
        child = self._child
        assert child is not None
        try:
            data = os.read(child.stdout, 65536 if self._tx_pace is None else UART_FIFO)
        except BlockingIOError:
            return
        if self._tx_pace is not None:
            self._tx_pace.spend(len(data), time.monotonic())
        if data:
            self._emit(data)
            return
        self._on_exit(child)

    def _on_exit(self, child: BootProcess) -> None:
        mode = "raw" if child.proc.wait() == wire.EXIT_SOFT_RAW else "friendly"
        code = child.proc.returncode
        self._end_child()
        if code in (wire.EXIT_SOFT_FRIENDLY, wire.EXIT_SOFT_RAW):
            self._spawn(mode, self._cause)
            return
        if child.sigint_sent or time.monotonic() - self._last_sigint < _SIGINT_GRACE_S:
            # The unix port can die handling an asynchronous SIGINT (e.g. one landing in a
            # heap-locked section: "MemoryError: heap is locked"). On a real ESP32 Ctrl-C
            # just stops the program, so go back to the REPL instead of rebooting.
            self._emit(b"\r\nKeyboardInterrupt: \r\n")
            self._spawn("friendly", self._cause, skip_boot=True)
            return
        # The interpreter died (fatal error, heap too small...): like a panic, reboot,
        # but give up on a board that cannot even boot.
        self._crashes += 1
        self._emit(f"\r\n[emulated ESP32] interpreter exited with code {code}\r\n".encode())
        if self._crashes < CRASH_LIMIT:
            self._power_on(HARD_RESET)
        elif not self._booted.is_set():
            self._failure = EmulatorError(
                f"the MicroPython interpreter exits at boot (code {code}); last output: "
                f"{self._tail()[-160:].strip()!r}; check --heap-kib and the interpreter wheel")
            self._booted.set()

    def _emit(self, data: bytes) -> None:
        if not data:
            return
        self._last_output += data
        del self._last_output[:-4096]
        if self._line is not None:
            self._line.write(data)
        for sink in list(self._sinks):
            sink.write(data)

    # --- user -> child ----------------------------------------------------------------
    def _on_input(self, data: bytes) -> None:
        if not data or self._in_reset:
            return
        if self._rom is not None:
            self._rom.feed(data)
            return
        child = self._child
        if child is None:
            return  # between boots the UART is not listening
        intr = child.intr_char
        if intr is not None and intr in data:
            # The UART interrupt character: consumed, and KeyboardInterrupt raised.
            data = data.replace(bytes((intr,)), b"")
            if not child.sigint_sent:
                child.sigint_sent = True
                self._last_sigint = time.monotonic()
                with contextlib.suppress(ProcessLookupError):
                    child.proc.send_signal(signal.SIGINT)
        child.pending += data
        self._flush_input()

    def _flush_input(self) -> None:
        child = self._child
        if child is None:
            return
        if child.pending:
            try:
                written = os.write(child.stdin, child.pending)
                del child.pending[:written]
            except BlockingIOError:
                pass
            except BrokenPipeError:
                child.pending.clear()
        self._note_rx_pending(len(child.pending))

    def _note_rx_pending(self, count: int) -> None:
        if count != self._rx_pending:
            with self._rx_cond:
                self._rx_pending = count
                self._rx_cond.notify_all()

    # --- flow control -----------------------------------------------------------------
    def _output_room(self) -> bool:
        """May the board write more? Only while every listener has room (back-pressure)."""
        if self._line is not None and not self._line.has_room():
            return False
        return all(sink.has_room() for sink in list(self._sinks))

    def _input_room(self) -> bool:
        child = self._child
        if self._rom is not None or child is None:
            return True
        with self._rx_cond:
            queued = self._rx_queued
        return len(child.pending) + queued < RX_BACKLOG

    def _select_timeout(self) -> float | None:
        now = time.monotonic()
        waits = [self._circuit.seconds_to_release(now)]
        if self._boot_retry_at is not None:
            waits.append(max(0.0, self._boot_retry_at[0] - now))
        if self._tx_pace is not None and self._child is not None:
            waits.append(self._tx_pace.wait(now))
        if self._rx_pace is not None:
            waits.append(self._rx_pace.wait(now))
        if self._wdt is not None:
            waits.append(max(0.0, self._wdt[1] - now))
        known = [w for w in waits if w is not None]
        return min(known) if known else None

    def _want(self, fd: int, events: int, what: str) -> None:
        key = self._selector.get_map().get(fd)
        if not events:
            if key is not None:
                self._selector.unregister(fd)
        elif key is None:
            self._selector.register(fd, events, what)
        elif key.events != events:
            self._selector.modify(fd, events, what)

    def _update_interest(self) -> None:
        """Which descriptors the next round waits on: the port is read only while the
        board can take input, the board's stdout only while every listener has room."""
        now = time.monotonic()
        line = self._line
        if line is not None:
            events = 0
            if self._input_room() and (self._rx_pace is None or not self._rx_pace.wait(now)):
                events |= selectors.EVENT_READ
            if line.pending:
                events |= selectors.EVENT_WRITE
            self._want(line.master, events, "serial")
        child = self._child
        if child is not None:
            paced = self._tx_pace is not None and self._tx_pace.wait(now) > 0
            read = self._output_room() and not paced
            self._want(child.stdout, selectors.EVENT_READ if read else 0, "stdout")
            self._want(child.stdin, selectors.EVENT_WRITE if child.pending else 0, "stdin")

    # --- DTR/RTS -> EN/IO0 ------------------------------------------------------------
    def _on_modem_lines(self, dtr: bool, rts: bool) -> None:
        if self._circuit.set_lines(dtr=dtr, rts=rts, now=time.monotonic()):
            self._end_child()  # EN low: the chip stops
            self._leave_download_mode()
            self._boot_retry_at = None
            self._in_reset = True

    def _come_out_of_reset(self) -> None:
        self._in_reset = False
        if self._circuit.io0 and not self._boot_button:
            self._power_on(PWRON_RESET)
        else:
            self._enter_download_mode()

    def _enter_download_mode(self) -> None:
        self._emit(DOWNLOAD_BANNER)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        path = self.state_dir / FLASH_FILE_NAME
        fresh = not path.exists()
        store = FlashStore(path)
        if fresh:  # what the board came with: the configured profile's MicroPython
            store.program(ESP32_BOOTLOADER_OFFSET, build_merged_firmware(self.profile.version))
            store.touched.clear()
        self._rom = RomBootloader(self._emit, store,
                                  mac=bytes.fromhex(self._mac),
                                  on_run_user_code=lambda: self._reboot(PWRON_RESET),
                                  on_baudrate=self._set_line_rate)

    def _set_line_rate(self, baud: int) -> None:
        """The chip's UART switched rate (CHANGE_BAUDRATE): pacing follows it."""
        for pacer in (self._tx_pace, self._rx_pace):
            if pacer is not None:
                pacer.baud = baud
