"""The emulated ESP32: a real MicroPython interpreter behind a serial line.

:class:`EmulatedBoard` is the supervisor. It owns the pseudo-terminal (see
:mod:`harness.emulator.serial_line`) and, per boot, one interpreter process running
``mpy/board_runtime.py`` (the REPL protocol, boot.py/main.py, the flash mount). One thread
per board relays bytes with a selector loop:

* user -> board: framed onto the child's stdin; a Ctrl-C while user code runs becomes
  SIGINT instead (the ESP32 UART's interrupt character);
* board -> user: bare ``\\n`` becomes ``\\r\\n`` like the ESP32's cooked stdout;
* events from the child (a pipe): booted, running code, back at the REPL, hard reset.

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
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from harness.deadline import Deadline
from harness.emulator import interpreter
from harness.emulator.flash import prepare_flash
from harness.emulator.profiles import DEFAULT_PROFILE, Profile, get_profile
from harness.emulator.scenario import WifiScenario
from harness.emulator.serial_line import SerialLine
from harness.emulator.umqtt_source import umqtt_134_dir, umqtt_from_checkout
from harness.errors import ConfigError, EmulatorError, HarnessError

# A real ESP32 (no PSRAM) starts MicroPython with a ~56 KiB heap and grows it from the IDF
# heap to ~110 KiB; the emulator gives device code that whole budget up front. The REPL
# runtime and the board modules (frozen bytecode on the chip, costing no heap there) live
# in the interpreter's heap too, so the interpreter gets RUNTIME_HEAP_KIB more.
DEFAULT_HEAP_KIB = 112
RUNTIME_HEAP_KIB = 52
EXIT_SOFT_FRIENDLY = 40
EXIT_SOFT_RAW = 41
PWRON_RESET, HARD_RESET, DEEPSLEEP_RESET = 1, 2, 4
DEFAULT_MAC = "246f28a1b2c3"

ROM_LINE = b"ets Jun  8 2016 00:22:57\r\n\r\n"
_SPI_BOOT = (b"configsip: 0, SPIWP:0xee\r\nclk_drv:0x00,q_drv:0x00,d_drv:0x00,cs0_drv:0x00,"
             b"hd_drv:0x00,wp_drv:0x00\r\nmode:DIO, clock div:2\r\nload:0x3fff0030,len:4728\r\n"
             b"load:0x40078000,len:14888\r\nload:0x40080400,len:3368\r\nentry 0x400805cc\r\n")
ROM_BOOT = {
    PWRON_RESET: b"rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n",
    HARD_RESET: b"rst:0xc (SW_CPU_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n",
    DEEPSLEEP_RESET: b"rst:0x5 (DEEPSLEEP_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n",
}
DOWNLOAD_BANNER = (ROM_LINE + b"rst:0x1 (POWERON_RESET),boot:0x3 "
                   b"(DOWNLOAD_BOOT(UART0/UART1/SDIO_REI_REO_V2))\r\nwaiting for download\r\n")
_CRASH_LIMIT = 3
# EN rising -> the ROM samples IO0 (the devkit's RC delay); long enough for RFC2217 clients,
# which set DTR and RTS ~50 ms apart.
EN_RC_DELAY_S = 0.15


class _Child:
    """One boot: an interpreter process and its pipes."""

    def __init__(self, argv: list[str], ctl_read: int, ctl_write: int) -> None:
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            pass_fds=(ctl_write,), start_new_session=True, bufsize=0)
        os.close(ctl_write)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin = self.proc.stdin.fileno()
        self.stdout = self.proc.stdout.fileno()
        self.ctl = ctl_read
        for fd in (self.stdin, self.stdout, self.ctl):
            os.set_blocking(fd, False)
        self.pending = bytearray()  # framed input not yet accepted by the pipe
        self.executing = False
        self.sigint_sent = False
        self.booted = False

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                stream.close()  # type: ignore[union-attr]
        with contextlib.suppress(OSError):
            os.close(self.ctl)


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
        mac: str = DEFAULT_MAC,
    ) -> None:
        self.profile: Profile = get_profile(profile)
        self.flash_dir = Path(flash_dir).resolve()
        self.state_dir = Path(state_dir) if state_dir else self.flash_dir.with_name(
            self.flash_dir.name + ".state")
        self.heap_kib = DEFAULT_HEAP_KIB if heap_kib is None else heap_kib
        if not 16 <= self.heap_kib <= 65536:
            raise ConfigError(f"heap of {self.heap_kib} KiB is out of range; give 16..65536")
        self._wifi = wifi or WifiScenario()
        self._hosts = dict(hosts or {})
        self._rfc2217_port = rfc2217_port
        self._erase = erase
        self._micropython_lib = micropython_lib
        self._mac = mac
        self._line: SerialLine | None = None
        self._thread: threading.Thread | None = None
        self._commands: queue.Queue[tuple[str, Any, threading.Event]] = queue.Queue()
        self._wake_r, self._wake_w = -1, -1
        self._tmp: Path | None = None
        self._child: _Child | None = None
        self._booted = threading.Event()
        self._stopped = False
        self._crashes = 0
        self._last_output = bytearray()  # tail for error messages
        self._prev_out = 0  # last byte written, for \n -> \r\n across chunks
        self._sinks: list[Callable[[bytes], None]] = []
        self._in_reset = False  # EN held low
        self._rom: Any = None  # a RomBootloader while in download mode
        self._en, self._io0 = True, True
        self._release_at: float | None = None
        self._rfc2217: Any = None
        self.rfc2217_url: str | None = None
        self._failure: Exception | None = None
        self._module_dirs: list[str] = []

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
        self._module_dirs = [str(interpreter.MPY_DIR), str(self._umqtt_dir(self.profile))]
        try:
            self._tmp = Path(tempfile.mkdtemp(prefix="esp32-emu-"))
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
            if self._rfc2217 is not None:
                self._rfc2217.start()
        except BaseException:
            self.stop()
            raise

    def hard_reset(self) -> None:
        """Like pressing EN: ROM boot lines, banner, boot.py/main.py."""
        self._call("reset", PWRON_RESET)

    def set_modem_lines(self, *, dtr: bool, rts: bool) -> None:
        """The devkit auto-reset circuit: EN = not (RTS and not DTR), IO0 = not (DTR and
        not RTS). EN rising resets the chip; IO0 low at that moment = ROM download mode."""
        self._call("lines", (dtr, rts))

    def set_wifi(self, scenario: WifiScenario) -> None:
        """Takes effect from the next boot (reset), like changing the room's access points."""
        self._wifi = scenario

    def set_hosts(self, mapping: Mapping[str, str]) -> None:
        self._hosts = dict(mapping)

    def add_output_sink(self, sink: Callable[[bytes], None]) -> None:
        """Also send board output to ``sink`` (the RFC2217 endpoint uses this)."""
        self._sinks.append(sink)

    def remove_output_sink(self, sink: Callable[[bytes], None]) -> None:
        with contextlib.suppress(ValueError):
            self._sinks.remove(sink)

    def feed_input(self, data: bytes) -> None:
        """Bytes from another serial endpoint (RFC2217), as if typed on ``port``."""
        self._call("input", data, wait=False)

    def stop(self) -> None:
        """Idempotent: ends the child, closes the port, removes temporary files."""
        if self._stopped:
            return
        self._stopped = True
        if self._rfc2217 is not None:
            self._rfc2217.stop()
        if self._thread is not None and self._thread.is_alive():
            self._commands.put(("stop", None, threading.Event()))
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
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> EmulatedBoard:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # --- setup helpers ----------------------------------------------------------------
    def _umqtt_dir(self, profile: Profile) -> Path:
        if profile.umqtt_from_pypi:
            return umqtt_134_dir()
        return umqtt_from_checkout(self._micropython_lib, profile.umqtt_version)

    def _call(self, command: str, arg: Any, *, wait: bool = True, timeout: float = 10.0) -> None:
        if self._thread is None or self._stopped:
            raise EmulatorError("the board is not running; call start() first")
        done = threading.Event()
        self._commands.put((command, arg, done))
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"!")
        if wait:
            deadline = Deadline(timeout, f"the emulated ESP32 to handle {command!r}")
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
        try:
            self._power_on(PWRON_RESET)
            while not self._handle_events():
                pass
        except Exception as exc:  # keep the reason for start()/the log, then power off
            self._failure = exc
            self._emit(f"\r\n[emulated ESP32] supervisor failed: {exc!r}\r\n".encode())
        finally:
            if self._child is not None:
                self._child.kill()
                self._child = None
            self._selector.close()

    def _handle_events(self) -> bool:
        """One selector round; True when the board is told to stop."""
        timeout = None
        if self._release_at is not None:
            timeout = max(0.0, self._release_at - time.monotonic())
        events = self._selector.select(timeout)
        if self._release_at is not None and time.monotonic() >= self._release_at:
            self._release_at = None
            self._come_out_of_reset()
        # Child events before output: 'I' (back at the REPL) is written before the prompt,
        # so a Ctrl-C sent after the prompt is never mistaken for one during user code.
        events.sort(key=lambda item: item[0].data != "ctl")
        for key, mask in events:
            what = key.data
            if what == "wake":
                os.read(self._wake_r, 512)
                if self._run_commands():
                    return True
            elif what == "serial":
                self._on_input(self._line.read() if self._line else b"")
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
                if command == "stop":
                    done.set()
                    return True
                if command == "reset":
                    self._reboot(arg)
                elif command == "lines":
                    self._on_modem_lines(*arg)
                elif command == "input":
                    self._on_input(arg)
            finally:
                done.set()

    # --- boots ------------------------------------------------------------------------
    def _power_on(self, cause: int) -> None:
        self._emit(ROM_LINE + ROM_BOOT[cause] + _SPI_BOOT)
        self._spawn("friendly", cause)

    def _reboot(self, cause: int) -> None:
        self._end_child()
        self._rom = None
        self._power_on(cause)

    def _spawn(self, mode: str, cause: int) -> None:
        assert self._tmp is not None
        profile = self._boot_profile()
        try:
            umqtt_dir = self._umqtt_dir(profile)
        except HarnessError as exc:  # a flashed image names a profile we cannot supply
            self._emit(f"[emulated ESP32] cannot boot {profile.name}: {exc}\r\n".encode())
            profile, umqtt_dir = self.profile, self._umqtt_dir(self.profile)
        config = self._tmp / "boot.json"
        config.write_text(json.dumps({
            "flash": str(self.flash_dir),
            "scratch": str(self._tmp),
            "module_dirs": [str(interpreter.MPY_DIR), str(umqtt_dir)],
            "preload": ["_board", "network", "machine", "socket", "ssl", "umqtt.simple"],
            "aliases": {"usocket": "socket", "umachine": "machine",
                        **({"ussl": "ssl"} if profile.ussl_alias else {})},
            "banner": profile.banner,
            "mode": mode,
            "reset_cause": cause,
            "wifi": self._wifi.to_board(),
            "hosts": self._hosts,
            "mac": self._mac,
        }), encoding="utf-8")
        ctl_read, ctl_write = os.pipe()
        argv = interpreter.command(parent_pid=os.getpid(),
                                   heap_kib=self.heap_kib + RUNTIME_HEAP_KIB,
                                   config=config, ctl_fd=ctl_write)
        child = _Child(argv, ctl_read, ctl_write)
        self._child = child
        self._selector.register(child.stdout, selectors.EVENT_READ, "stdout")
        self._selector.register(child.ctl, selectors.EVENT_READ, "ctl")
        self._cause = cause

    def _boot_profile(self) -> Profile:
        """The profile a firmware image written to the emulated flash names, else ours."""
        try:
            from harness.emulator.firmware_image import profile_from_flash
        except ImportError:
            return self.profile
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
        for code in events:
            if code == ord("B"):
                child.booted = True
                self._crashes = 0
                self._booted.set()
            elif code == ord("X"):
                child.executing, child.sigint_sent = True, False
            elif code == ord("I"):
                child.executing, child.sigint_sent = False, False
            elif code in (ord("H"), ord("D")):
                self._drain_output(child)
                self._reboot(HARD_RESET if code == ord("H") else DEEPSLEEP_RESET)
                return

    def _drain_output(self, child: _Child) -> None:
        with contextlib.suppress(OSError):
            while data := os.read(child.stdout, 65536):
                self._emit(self._cook(data))

    def _on_output(self) -> None:
        child = self._child
        assert child is not None
        try:
            data = os.read(child.stdout, 65536)
        except BlockingIOError:
            return
        if data:
            self._emit(self._cook(data))
            return
        self._on_exit(child)

    def _on_exit(self, child: _Child) -> None:
        mode = "raw" if child.proc.wait() == EXIT_SOFT_RAW else "friendly"
        code = child.proc.returncode
        self._end_child()
        if code in (EXIT_SOFT_FRIENDLY, EXIT_SOFT_RAW):
            self._spawn(mode, self._cause)
            return
        # The interpreter died (fatal error, heap too small...): like a panic, reboot,
        # but give up on a board that cannot even boot.
        self._crashes += 1
        self._emit(f"\r\n[emulated ESP32] interpreter exited with code {code}\r\n".encode())
        if self._crashes < _CRASH_LIMIT:
            self._power_on(HARD_RESET)

    def _cook(self, data: bytes) -> bytes:
        """ESP32 stdout is cooked: every bare \\n goes out as \\r\\n."""
        if b"\n" not in data:
            self._prev_out = data[-1]
            return data
        out = bytearray()
        prev = self._prev_out
        for index, part in enumerate(data.split(b"\n")):
            if index:
                out += b"\n" if prev == 13 else b"\r\n"
                prev = 10
            if part:
                out += part
                prev = part[-1]
        self._prev_out = prev
        return bytes(out)

    def _emit(self, data: bytes) -> None:
        if not data:
            return
        self._last_output += data
        del self._last_output[:-4096]
        if self._line is not None:
            self._line.write(data)
        for sink in list(self._sinks):
            sink(data)

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
        if child.executing and b"\x03" in data:
            # The UART interrupt character: consumed, and KeyboardInterrupt raised.
            data = data.replace(b"\x03", b"")
            if not child.sigint_sent:
                child.sigint_sent = True
                with contextlib.suppress(ProcessLookupError):
                    child.proc.send_signal(signal.SIGINT)
        for start in range(0, len(data), 65535):
            chunk = data[start:start + 65535]
            child.pending += struct.pack("<H", len(chunk)) + chunk
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
        want = selectors.EVENT_WRITE if child.pending else 0
        key = self._selector.get_map().get(child.stdin)
        if want and key is None:
            self._selector.register(child.stdin, selectors.EVENT_WRITE, "stdin")
        elif not want and key is not None:
            self._selector.unregister(child.stdin)

    # --- DTR/RTS -> EN/IO0 ------------------------------------------------------------
    def _on_modem_lines(self, dtr: bool, rts: bool) -> None:
        en = not (rts and not dtr)
        io0 = not (dtr and not rts)
        was_en, self._en, self._io0 = self._en, en, io0
        if was_en and not en:  # EN pulled low: the chip stops
            self._release_at = None
            self._end_child()
            self._rom = None
            self._in_reset = True
        elif not was_en and en:
            # EN released. On the devkit an RC network delays EN, so the ROM samples IO0
            # a moment later; tools rely on that (esptool flips DTR and RTS one by one).
            self._release_at = time.monotonic() + EN_RC_DELAY_S
        elif not en:
            self._release_at = None

    def _come_out_of_reset(self) -> None:
        if not self._en:
            return
        self._in_reset = False
        if self._io0:
            self._power_on(PWRON_RESET)
        else:
            self._enter_download_mode()

    def _enter_download_mode(self) -> None:
        self._emit(DOWNLOAD_BANNER)
        try:
            from harness.emulator.rom import FlashStore, RomBootloader
        except ImportError:
            return  # no ROM protocol available: the chip just waits
        self.state_dir.mkdir(parents=True, exist_ok=True)
        store = FlashStore(self.state_dir / "flash.bin")
        self._rom = RomBootloader(self._emit, store,
                                  mac=bytes.fromhex(self._mac),
                                  on_run_user_code=lambda: self._reboot(PWRON_RESET))
