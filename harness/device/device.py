"""The device under test: one interface over every backend.

A :class:`Device` drives a board through its serial line, whatever is behind it: the
emulated ESP32's pseudo-terminal, a USB port, or an ``rfc2217://`` URL. It owns the port
for the whole session through one unmodified mpremote ``SerialTransport`` and keeps a
reader thread copying everything the board prints into a :class:`SerialLog`, so the log
includes what came before and during a reset. Raw-REPL work (deploy, settings, exec)
pauses the reader, borrows the transport, and hands the port back.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import select
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import serial
from mpremote.transport import TransportError, TransportExecError
from mpremote.transport_serial import SerialTransport

from harness.deadline import Deadline
from harness.device.serial_log import SerialLog
from harness.errors import (
    BootloaderStuck,
    BootLoop,
    DeployError,
    DeviceCodeRaised,
    DeviceError,
    DeviceLost,
    ExpectTimeout,
    NotMicroPython,
    PortBusy,
    PortNotFound,
)
from harness.esp32.rom import DOWNLOAD_BOOT, DOWNLOAD_WAIT
from harness.hardware.serial_port import answers_rom_sync
from harness.settings import SETTINGS_PATH, settings_text

#: How a backend performs a hard reset, given the open serial line.
HardReset = Callable[[serial.Serial], None]

REPL_PROMPT = ">>> "  # MicroPython's friendly-REPL prompt, at the start of a line
# A reboot on the serial line: MicroPython's soft-reboot line, or the ROM's reset-reason
# line that starts every hard reset, watchdog reset and panic.
REBOOT_SIGNS = ("MPY: soft reboot", "rst:0x")

_READER_POLL_S = 0.05  # reader wake-up period; bounds how long closing the reader takes
_URL_POLL_S = 0.005  # ports without a file descriptor (rfc2217://) are polled this often
_URL_PROBE_S = 0.5  # ... and read once this often even when idle, to notice a lost link
_REPL_READ_TIMEOUT_S = 0.25  # per-read timeout while mpremote drives the line
_CTRL_C_RETRY_S = 0.2  # a running program answers Ctrl-C within milliseconds
_BANNER_WAIT_S = 1.0  # leaving the raw REPL: the banner and prompt come back this fast
# A MicroPython board answers Ctrl-C with a prompt within milliseconds. A port that, this
# long after the first Ctrl-C of a session, has shown no sign of MicroPython and is silent
# or prints garbage is not MicroPython: no need to wait out the whole REPL timeout.
_ANSWER_WINDOW_S = 2.0
_QUIET_S = 1.0  # "silent": no byte from the port for this long
_MICROPYTHON_SIGNS = (REPL_PROMPT.encode(), b"raw REPL", b"MicroPython",
                      b"Traceback (most recent call last)", b"KeyboardInterrupt")
_BOOTLOADER_SIGNS = (DOWNLOAD_WAIT, DOWNLOAD_BOOT)
_SKIP_NAMES = {"__pycache__", ".git", ".DS_Store"}

# Runs on the board in one raw-REPL exec: the sha256 of each file, or None if absent.
_HASH_SCRIPT = """
import hashlib
def _h(p):
    try:
        f = open(p, 'rb')
    except OSError:
        return None
    h = hashlib.sha256()
    b = bytearray(512)
    while True:
        n = f.readinto(b)
        if not n:
            break
        h.update(b[:n])
    f.close()
    return ''.join('%02x' % x for x in h.digest())
print(repr([_h(p) for p in {paths!r}]))
del _h
"""


@dataclass
class DeployReport:
    """What :meth:`Device.deploy` did, for logs and benchmarks."""

    copied: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{len(self.copied)} copied, {len(self.unchanged)} up to date"


def collect_files(src_dir: Path) -> dict[str, bytes]:
    """The device program as ``{device path: content}``, skipping caches and dotfiles."""
    if not src_dir.is_dir():
        raise DeployError(f"device program folder {src_dir} does not exist; pass an existing "
                          "folder with --hil-device-src")
    files: dict[str, bytes] = {}
    for path in sorted(src_dir.rglob("*")):
        relative = path.relative_to(src_dir)
        if any(part in _SKIP_NAMES or part.startswith(".") for part in relative.parts):
            continue
        if path.is_file():
            files["/" + relative.as_posix()] = path.read_bytes()
    return files


class Device:
    """A MicroPython board behind a serial line."""

    def __init__(
        self,
        port: str,
        *,
        hard_reset: HardReset,
        baudrate: int = 115200,
        log: SerialLog | None = None,
        name: str = "dut",
    ) -> None:
        self.port = port
        self.name = name
        self.log = log or SerialLog()
        self._hard_reset = hard_reset
        self._baudrate = baudrate
        self._transport: SerialTransport | None = None
        # Held by REPL users for their whole exchange, and by the reader only while it
        # copies bytes that are already waiting: it waits for bytes without it.
        self._io_lock = threading.Lock()
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None
        self._lost: str | None = None
        self._last_rx = time.monotonic()  # when the port last sent anything
        self._answered = False  # the board has shown it runs MicroPython

    # --- lifecycle ---------------------------------------------------------------
    def open(self) -> Device:
        # A reader without a lock (`cat /dev/ttyUSB0`) would silently share the bytes with
        # us; find it before opening, whoever it is.
        holder = _port_holder(self.port)
        if holder:
            raise _busy(self.port, holder)
        try:
            self._transport = SerialTransport(self.port, baudrate=self._baudrate)
        except TransportError as exc:
            raise _explain_open_failure(self.port) from exc
        self._transport.serial.timeout = _READER_POLL_S
        self._stop.clear()
        self._reader = threading.Thread(target=self._read_forever, name=f"{self.name}-serial",
                                        daemon=True)
        self._reader.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._reader is not None:
            self._reader.join(timeout=2)
            self._reader = None
        if self._transport is not None:
            with contextlib.suppress(Exception):
                self._transport.close()
            self._transport = None

    def __enter__(self) -> Device:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def line(self) -> serial.Serial:
        return self._require_transport().serial

    # --- reading -----------------------------------------------------------------
    def _read_forever(self) -> None:
        assert self._transport is not None
        line = self._transport.serial
        try:
            fd: int | None = line.fileno()
        except (AttributeError, OSError, serial.SerialException):
            fd = None  # rfc2217:// and socket:// ports: polled
        idle_since = time.monotonic()
        while not self._stop.is_set():
            try:
                probe = False
                if fd is not None:
                    readable, _, _ = select.select([fd], [], [], _READER_POLL_S)
                    if not readable:
                        continue
                elif not line.in_waiting:
                    probe = time.monotonic() - idle_since > _URL_PROBE_S
                    if not probe:
                        time.sleep(_URL_POLL_S)
                        continue
                with self._io_lock:
                    # Only bytes already waiting; a REPL user may have taken them meanwhile.
                    waiting = line.in_waiting
                    if waiting:
                        data = line.read(waiting)
                    elif probe or (fd is not None and _still_readable(fd)):
                        # Readable with nothing to read is a hang-up: read() says which.
                        data = line.read(1)
                    else:
                        data = b""
            except (serial.SerialException, OSError, TypeError, ValueError) as exc:
                if not self._stop.is_set():
                    self._lost = f"{type(exc).__name__}: {exc}"
                    self.log.mark(f"serial port lost: {self._lost}")
                return
            idle_since = time.monotonic()
            if data:
                self._last_rx = idle_since
                self.log.append(data)

    def check_alive(self) -> None:
        """Raise :class:`DeviceLost` if the serial port has gone away."""
        self._require_transport()

    def _require_transport(self) -> SerialTransport:
        if self._lost is not None:
            raise DeviceLost(f"serial port {self.port} was lost ({self._lost}); reconnect the "
                             "board and rerun — the remaining tests of this session cannot run")
        if self._transport is None:
            raise DeviceError(f"device on {self.port} is not open; call open() first")
        return self._transport

    # --- raw REPL ----------------------------------------------------------------
    @contextlib.contextmanager
    def repl(self, timeout: float = 10.0, *,
             soft_reset: bool = False) -> Iterator[SerialTransport]:
        """Stop the running program, enter the raw REPL and lend out mpremote's transport.
        ``soft_reset``: a soft reset in the raw REPL first (a clean heap; main.py does not
        run), for a board whose last program may have left its heap full.

        On leaving, the board is back in the friendly REPL (no program running)."""
        transport = self._require_transport()
        with self._io_lock:
            transport.serial.timeout = _REPL_READ_TIMEOUT_S
            try:
                seen = bytearray()
                answer = _AnswerWatch(seen, self._last_rx, timeout, early=not self._answered)
                try:
                    with _recording_reads(transport.serial, seen, answer), \
                            contextlib.redirect_stdout(io.StringIO()):  # mpremote prints junk
                        transport.enter_raw_repl(soft_reset=soft_reset, timeout_overall=timeout)
                except TransportError as exc:
                    raise self._diagnose_no_repl(bytes(seen), transport.serial,
                                                 answer.verdict) from exc
                except (serial.SerialException, OSError) as exc:
                    self._lost = str(exc)
                    raise self._require_transport_error() from exc
                self._answered = True
                yield transport
                transport.exit_raw_repl()
                self._collect_banner(transport.serial)
            finally:
                transport.serial.timeout = _READER_POLL_S

    def _collect_banner(self, line: serial.Serial) -> None:
        """Read what leaving the raw REPL prints (banner, prompt) into the log now, so it
        cannot arrive after a later mark and pass for output of what follows."""
        deadline = Deadline(_BANNER_WAIT_S, "the friendly prompt after the raw REPL")
        tail = b""
        with contextlib.suppress(serial.SerialException, OSError):
            while not deadline.expired:
                data = line.read(max(1, line.in_waiting))
                if data:
                    self.log.append(data)
                    tail = (tail + data)[-len(REPL_PROMPT) - 2:]
                    if tail.endswith(REPL_PROMPT.encode()):
                        return

    def _require_transport_error(self) -> DeviceLost:
        return DeviceLost(f"serial port {self.port} was lost ({self._lost}); reconnect the board")

    def _diagnose_no_repl(self, answer: bytes, line: serial.Serial,
                          verdict: str | None) -> DeviceError:
        """Why no raw REPL answered, from what the board printed (before and in reply) and,
        failing that, from whether it answers the ROM's SYNC as a board in download mode does."""
        self.log.append(answer)
        seen = self.log.tail(5)
        raw = self.log.raw()[-400:]
        if verdict == _FLOOD:
            return self._diagnose_flood(answer)
        evidence = None
        if any(sign in raw for sign in _BOOTLOADER_SIGNS):
            evidence = "its ROM printed 'waiting for download'"
        elif answers_rom_sync(line):
            evidence = "it answers esptool's SYNC"
        if evidence is not None:
            return BootloaderStuck(
                f"the board on {self.port} is in its ROM bootloader (download mode), not "
                f"MicroPython ({evidence}); release IO0/BOOT and press EN, or flash firmware "
                "with --hil-firmware")
        return NotMicroPython(
            f"no MicroPython REPL answered on {self.port} within the deadline; check that "
            "MicroPython is flashed (--hil-firmware) and the baud rate is 115200"
            + (f"; it printed: {seen[-200:]!r}" if seen.strip() else "; it printed nothing"))

    def _diagnose_flood(self, stream: bytes) -> DeviceError:
        """A port that never stopped talking: a boot loop, or a stream that is no REPL."""
        text = stream.decode("utf-8", errors="replace")
        reboots = sum(text.count(sign) for sign in REBOOT_SIGNS)
        if reboots >= 2:
            return BootLoop(
                f"the device on {self.port} is in a boot loop: it rebooted {reboots} times "
                "while the harness tried to reach its REPL; fix the program (a main.py that "
                "ends in SystemExit or a crash into a reset) or erase it and redeploy")
        # Quoted from the start of a line when it has lines: the read began mid-stream.
        newline = stream.find(b"\n", 0, len(stream) - 1)
        sample = stream[newline + 1:] if newline >= 0 else stream
        return NotMicroPython(
            f"the port {self.port} sends a continuous stream that is not a MicroPython REPL: "
            f"{sample[:48]!r}…; check the baud rate (115200) or reflash MicroPython")

    def exec(self, code: str, timeout: float = 10.0) -> str:
        """Run ``code`` in the raw REPL and return what it printed."""
        with self.repl() as transport:
            try:
                out, err = transport.exec_raw(code, timeout=timeout)
            except TransportError as exc:
                raise DeviceError(f"running code on {self.port} failed: {exc}") from exc
        if err:
            raise DeviceCodeRaised(
                f"code raised on the device: {err.decode(errors='replace').strip()}")
        return bytes(out).decode(errors="replace")

    # --- deploy ------------------------------------------------------------------
    def deploy(self, src_dir: Path | None = None, *,
               files: Mapping[str, bytes] | None = None,
               soft_reset: bool = False) -> DeployReport:
        """Copy a device program (and/or in-memory ``files``) to the board's flash,
        skipping files whose sha256 on the board already matches (``soft_reset``: see
        :meth:`repl`)."""
        wanted: dict[str, bytes] = {}
        if src_dir is not None:
            wanted.update(collect_files(src_dir))
        wanted.update(files or {})
        report = DeployReport()
        paths = sorted(wanted)
        with self.repl(soft_reset=soft_reset) as transport:
            try:
                try:
                    remote = _parse_literal(transport.exec(_HASH_SCRIPT.format(paths=paths)))
                except TransportExecError as exc:
                    if "MemoryError" not in str(exc):
                        raise
                    # The stopped program's objects still fill the heap (as on a board
                    # after Ctrl-C): a soft reset frees it, and the raw REPL comes back.
                    with contextlib.redirect_stdout(io.StringIO()):
                        transport.enter_raw_repl(soft_reset=True)
                    self.log.mark("soft reset: the heap was full")
                    remote = _parse_literal(transport.exec(_HASH_SCRIPT.format(paths=paths)))
                made_dirs: set[str] = set()
                for path, remote_hash in zip(paths, remote, strict=True):
                    if remote_hash == hashlib.sha256(wanted[path]).hexdigest():
                        report.unchanged.append(path)
                        continue
                    self._make_parents(transport, path, made_dirs)
                    transport.fs_writefile(path, wanted[path])
                    report.copied.append(path)
            except (TransportError, TransportExecError) as exc:
                raise DeployError(f"copying files to {self.port} failed: {exc}; is the flash "
                                  "full or read-only?") from exc
        self.log.mark(f"deployed: {report}")
        return report

    @staticmethod
    def _make_parents(transport: SerialTransport, path: str, made: set[str]) -> None:
        parts = path.strip("/").split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            folder = "/" + "/".join(parts[:depth])
            if folder not in made:
                if not transport.fs_exists(folder):
                    transport.fs_mkdir(folder)
                made.add(folder)

    def remove(self, *paths: str) -> None:
        """Delete files from the board's flash (missing ones are ignored)."""
        code = "import os\n" + "".join(
            f"try:\n    os.remove({path!r})\nexcept OSError:\n    pass\n" for path in paths)
        self.exec(code)

    def write_settings(self, settings: Mapping[str, Any] | str, *,
                       files: Mapping[str, bytes] | None = None,
                       path: str = SETTINGS_PATH) -> DeployReport:
        """Write the device program's settings file (and files it names, e.g. the CA)."""
        text = settings if isinstance(settings, str) else settings_text(settings)
        return self.deploy(files={path: text.encode(), **(files or {})})

    # --- resets ------------------------------------------------------------------
    def hard_reset(self) -> int:
        """Reset the board like its EN button; returns the log position before the reset."""
        position = self.log.mark("hard reset")
        self._hard_reset(self._require_transport().serial)
        return position

    def soft_reset(self, timeout: float = 10.0) -> int:
        """Ctrl-C the running program, then Ctrl-D: ``MPY: soft reboot``, boot.py, main.py."""
        deadline = Deadline(timeout, "a soft reboot")
        line = self._require_transport().serial
        position = self.log.mark("soft reset")
        line.write(b"\r\x03\x03")
        self.log.expect(re.escape(REPL_PROMPT), deadline.remaining(), since=position,
                        what="the '>>> ' prompt after Ctrl-C")
        line.write(b"\x04")
        self.log.expect_exact("soft reboot", deadline.remaining(), since=position)
        return position

    def interrupt(self, timeout: float = 5.0) -> None:
        """Stop the running program (Ctrl-C) and wait for the friendly prompt.

        Ctrl-C is repeated: one that lands while the board reboots (between two runs of a
        program that resets itself) is lost on a real ESP32 too, as a person at the
        keyboard knows."""
        deadline = Deadline(timeout, "the '>>> ' prompt after Ctrl-C")
        line = self._require_transport().serial
        position = self.log.position()
        while True:
            line.write(b"\r\x03\x03")
            try:
                self.log.expect(re.escape(REPL_PROMPT), min(_CTRL_C_RETRY_S, deadline.remaining()),
                                since=position, what=deadline.what)
                return
            except ExpectTimeout:
                if deadline.expired:
                    raise

    def expect(self, pattern: str, timeout: float, *, since: int = 0) -> str:
        """Wait for ``pattern`` (regex) in the serial log; returns the matched text."""
        if self._lost is not None:
            self._require_transport()
        return self.log.expect(pattern, timeout, since=since).group(0)


def _still_readable(fd: int) -> bool:
    readable, _, _ = select.select([fd], [], [], 0)
    return bool(readable)


class _NoAnswer(TransportError):  # type: ignore[misc]
    """The port has shown it is not a MicroPython REPL; stop waiting for one."""


_FLOOD = "flood"


class _AnswerWatch:
    """Ends a wait for the REPL that cannot succeed. Always: at ``timeout``, whatever the
    port keeps sending (mpremote checks its own limit only when no byte comes, so a port
    that floods would hold it forever). With ``early``, on a port not yet known to be
    MicroPython: after ``_ANSWER_WINDOW_S`` with no sign of MicroPython, a port that is
    silent or prints garbage will not answer; a ROM bootloader's banner says so at once.
    Each byte is looked at once: the signs are searched in what is new plus an overlap."""

    _OVERLAP = max(map(len, (*_MICROPYTHON_SIGNS, *_BOOTLOADER_SIGNS)))

    def __init__(self, seen: bytearray, last_rx: float, timeout: float, *, early: bool) -> None:
        self._seen = seen
        self._start = time.monotonic()
        self._deadline = Deadline(timeout, "a MicroPython REPL")
        self._early = early
        self._last_rx = last_rx
        self._length = 0
        self._micropython = False
        self.verdict: str | None = None

    def check(self) -> None:
        now = time.monotonic()
        if len(self._seen) != self._length:
            fresh = bytes(self._seen[max(0, self._length - self._OVERLAP):])
            self._length = len(self._seen)
            self._last_rx = now
            if self._early and any(sign in fresh for sign in _BOOTLOADER_SIGNS):
                self._stop("bootloader", "the ROM bootloader answered")
            self._micropython = self._micropython or any(
                sign in fresh for sign in _MICROPYTHON_SIGNS)
        if self._deadline.expired and now - self._last_rx < _QUIET_S:
            self._stop(_FLOOD, "the port kept sending without a REPL")
        if not self._early or self._micropython or now - self._start < _ANSWER_WINDOW_S:
            return
        if now - self._last_rx >= _QUIET_S:
            self._stop("silent", "the port is silent")
        if not _looks_like_text(bytes(self._seen[-256:])):
            self._stop("garbage", "the port prints garbage")

    def _stop(self, verdict: str, reason: str) -> None:
        self.verdict = verdict
        raise _NoAnswer(reason)


def _looks_like_text(data: bytes) -> bool:
    printable = sum(1 for byte in data if 32 <= byte < 127 or byte in (9, 10, 13))
    return printable >= 0.9 * len(data)


@contextlib.contextmanager
def _recording_reads(line: serial.Serial, into: bytearray,
                     answer: _AnswerWatch | None = None) -> Iterator[None]:
    """Copy every byte mpremote reads from ``line`` into ``into`` (for diagnosis), and let
    ``answer`` end the wait early when those bytes show no REPL will come."""
    original_read, original_waiting = line.read, line.inWaiting

    def read(size: int = 1) -> bytes:
        data: bytes = original_read(size)
        into.extend(data)
        if answer is not None:
            answer.check()
        return data

    def in_waiting() -> int:
        if answer is not None:
            answer.check()
        count: int = original_waiting()
        return count

    line.read = read
    line.inWaiting = in_waiting
    try:
        yield
    finally:
        del line.read  # back to the class's methods
        del line.inWaiting


def _parse_literal(output: bytes) -> list[str | None]:
    import ast

    value = ast.literal_eval(output.decode().strip())
    if not isinstance(value, list):
        raise DeployError(f"unexpected answer from the board while hashing files: {value!r}")
    return value


def _explain_open_failure(port: str) -> DeviceError:
    """Turn 'could not open' into the reason a user can act on."""
    if port.startswith(("rfc2217://", "socket://")):
        return PortNotFound(f"cannot connect to {port}: the server refused or is not running; "
                            "start ser2net/esp_rfc2217_server there or fix the host:port")
    if not Path(port).exists():
        return PortNotFound(f"serial port {port} does not exist; run `python -m harness ports` "
                            "to list attached boards, or pass --hil-device auto")
    holder = _port_holder(port)
    if holder:
        return _busy(port, holder)
    return PortBusy(f"cannot open serial port {port}: it is busy or not permitted; close other "
                    "serial monitors, or add your user to the dialout group")


def _busy(port: str, holder: str) -> PortBusy:
    return PortBusy(f"serial port {port} is busy: held by {holder}; close that program "
                    "(e.g. a serial monitor, `cat`, screen) and retry")


def _port_holder(port: str) -> str | None:
    """Which other process holds ``port`` open, where the OS tells (Linux /proc)."""
    from harness.hardware.discovery import port_holder

    return port_holder(port)
