"""Flash MicroPython onto a board with esptool, then wait until the new firmware answers.

esptool runs as its own CLI process (``python -m esptool``), so its output is the
progress we show, its exit status is the verdict, and a hung transfer can be killed
without leaving anything behind. The steps:

1. check the file is an ESP firmware image and pick its offset (merged binary at 0x1000,
   bare app at 0x10000) -- :mod:`harness.esp32.image`;
2. ``esptool --chip <image's chip> write-flash --skip-flashed``: esptool resets the board
   into its ROM bootloader, refuses a board of another chip, compares the flash MD5 and
   skips the write when the image is already there, else writes and verifies the MD5;
3. hard-reset through DTR/RTS ourselves (:mod:`harness.hardware.reset`) with the port
   open, so the boot log is captured, and wait for the MicroPython banner.

esptool first uploads its flasher stub (faster, compressed); a ROM that cannot run it
(a board whose stub upload fails) gets one retry with ``--no-stub``.
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import serial

from harness import lifetime
from harness.deadline import Deadline
from harness.errors import BootloaderStuck, DeadlineExceeded, DeviceLost, FlashError
from harness.esp32.image import FirmwareFile, load_firmware
from harness.esp32.rom import DOWNLOAD_WAIT
from harness.hardware.reset import hard_reset
from harness.hardware.serial_port import open_serial

Progress = Callable[[str], None]

_WRONG_CHIP = re.compile(r"This chip is ([\w-]+), not ([\w-]+)")
_SKIPPED = "already in flash, skipping write"
_STUB_REFUSED = ("Failed to enter RAM download mode", "Failed to start stub",
                 "stub flasher")
_BANNER = re.compile(rb"MicroPython (v\S+?)[ ;,][^\r\n]*")
_RELEASE = re.compile(r"v\d+\.\d+")


@dataclass(frozen=True)
class FlashResult:
    port: str
    image: Path
    chip: str
    offset: int
    skipped: bool  # the board already held this exact image
    used_stub: bool
    seconds: float
    banner: str | None  # the MicroPython banner line after the reset


def esptool_command() -> list[str]:
    return [sys.executable, "-m", "esptool"]


def _esptool_chip_arg(chip: str) -> str:
    return chip.lower().replace("-", "")  # "ESP32-S3" -> "esp32s3"


def flash_firmware(
    port: str,
    image: Path,
    *,
    erase: bool = False,
    progress: Progress | None = None,
    baud: int = 460800,
    use_stub: bool | None = None,
    flash_timeout: float = 600.0,
    banner_timeout: float = 20.0,
) -> FlashResult:
    """Flash ``image`` onto the board at ``port`` (path or ``rfc2217://`` URL).

    ``erase`` wipes the whole flash first (the filesystem too), which needs the stub.
    ``use_stub`` None tries esptool's stub and falls back to the ROM loader.
    """
    show = progress or (lambda _line: None)
    firmware = load_firmware(Path(image))
    started = time.monotonic()
    show(f"{firmware.path.name}: {firmware.kind} image for {firmware.chip}, "
         f"{_app_label(firmware)}, writing at {firmware.flash_offset:#x}")
    open_serial(port).close()  # a missing, busy or refusing port: say so before esptool
    deadline = Deadline(flash_timeout, f"esptool to flash {firmware.path.name} to {port}")
    stub_choices = [True, False] if use_stub is None else [use_stub]
    output = ""
    used_stub = stub_choices[0]
    for used_stub in stub_choices:
        if erase and not used_stub:
            raise FlashError("erasing the whole flash needs esptool's flasher stub, which "
                             f"the board on {port} refused", hint="flash without erase")
        code, output = run_esptool(
            _write_args(port, firmware, erase=erase, baud=baud, stub=used_stub),
            deadline=deadline, progress=show)
        if code == 0:
            break
        if used_stub and any(marker in output for marker in _STUB_REFUSED) and len(
                stub_choices) > 1:
            show("the board refused esptool's flasher stub; retrying with the ROM loader")
            continue
        raise _flash_failure(port, firmware, output)
    skipped = _SKIPPED in output
    show("image already on the board, write skipped" if skipped else "written and verified")
    banner = wait_for_micropython(port, timeout=banner_timeout, progress=show)
    _check_booted_release(port, firmware, banner)
    return FlashResult(port=port, image=firmware.path, chip=firmware.chip,
                       offset=firmware.flash_offset, skipped=skipped, used_stub=used_stub,
                       seconds=time.monotonic() - started, banner=banner)


def _release(version: str) -> str | None:
    match = _RELEASE.search(version)
    return match.group(0) if match else None


def _check_booted_release(port: str, firmware: FirmwareFile, banner: str | None) -> None:
    """A board that boots another MicroPython release than the one just flashed did not
    take the image (wrong offset, a second app partition, an emulator that cannot run
    it); testing on would test the wrong firmware."""
    app = firmware.app.app
    if banner is None or app is None or app.project_name != "micropython":
        return
    expected, booted = _release(app.version), _release(banner)
    if expected and booted and expected != booted:
        raise FlashError(
            f"after flashing MicroPython {app.version} the board on {port} booted {booted} "
            f"({banner})",
            hint="the image did not take; see the serial log for why",
        )


def _app_label(firmware: FirmwareFile) -> str:
    app = firmware.app.app
    return f"{app.project_name} {app.version}" if app else "no app description"


def _write_args(port: str, firmware: FirmwareFile, *, erase: bool, baud: int, stub: bool
                ) -> list[str]:
    args = ["--chip", _esptool_chip_arg(firmware.chip), "--port", port, "--baud", str(baud),
            "--before", "default-reset", "--after", "no-reset"]
    if not stub:
        args.append("--no-stub")
    args += ["write-flash", "--compress"]
    args += ["--erase-all"] if erase else ["--skip-flashed"]
    return [*args, f"{firmware.flash_offset:#x}", str(firmware.path)]


def _flash_failure(port: str, firmware: FirmwareFile, output: str) -> FlashError:
    wrong = _WRONG_CHIP.search(output)
    if wrong:
        return FlashError(
            f"wrong chip: {firmware.path.name} is built for {wrong.group(2)} but the board on "
            f"{port} is an {wrong.group(1)}",
            hint=f"download the {wrong.group(1)} firmware",
        )
    if "Failed to connect" in output:
        return FlashError(
            f"esptool could not get the board on {port} into its bootloader: "
            f"{_fatal_line(output)}",
            hint="hold BOOT while pressing EN, or check the DTR/RTS auto-reset wiring",
        )
    return FlashError(f"esptool could not flash {port}: {_fatal_line(output)}")


def _fatal_line(output: str) -> str:
    lines = [line.strip() for line in re.split(r"[\r\n]+", output) if line.strip()]
    for line in reversed(lines):
        if "fatal error" in line.lower() or line.startswith(("ERROR", "error")):
            return str(line.split("occurred:", 1)[-1].strip())
    return lines[-1] if lines else "no output"


def run_esptool(args: Sequence[str], *, deadline: Deadline, progress: Progress,
                command: Sequence[str] | None = None) -> tuple[int, str]:
    """Run esptool, streaming its lines to ``progress``; kill it at the deadline."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}
    proc = lifetime.spawn([*(command or esptool_command()), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    assert proc.stdout is not None
    captured = bytearray()
    pending = b""
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            while True:
                if deadline.expired:
                    raise deadline.fail(_tail(captured))
                if not selector.select(timeout=min(0.5, deadline.remaining())):
                    continue
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                captured += chunk
                pending += chunk
                *lines, pending = re.split(rb"[\r\n]", pending)
                for line in lines:
                    if line.strip():
                        progress(line.decode("utf-8", "replace").rstrip())
        code = proc.wait(timeout=max(1.0, deadline.remaining()))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # esptool and anything it started
            proc.wait()
        proc.stdout.close()
    return code, captured.decode("utf-8", "replace")


def _tail(data: bytes | bytearray, limit: int = 200) -> str:
    text = bytes(data[-limit:]).decode("utf-8", "replace")
    return " | ".join(part.strip() for part in re.split(r"[\r\n]+", text) if part.strip())


def wait_for_micropython(port: str, *, timeout: float = 20.0,
                         progress: Progress | None = None) -> str | None:
    """Hard-reset the board on ``port`` and wait for the MicroPython banner.

    A board whose ``main.py`` runs forever never prints the banner by itself, so halfway
    through the wait it gets Ctrl-C Ctrl-B (stop the program, print the banner).
    Raises BootloaderStuck if the board comes back in ROM download mode.
    """
    show = progress or (lambda _line: None)
    deadline = Deadline(timeout, f"the MicroPython banner on {port} after a hard reset")
    line = open_serial(port)
    try:
        line.reset_input_buffer()
        hard_reset(line)
        show("hard reset; waiting for the MicroPython banner")
        seen = bytearray()
        nudged = False
        while not deadline.expired:
            try:
                seen += line.read(max(1, line.in_waiting))
            except (OSError, serial.SerialException) as exc:
                raise DeviceLost(f"{port} vanished while the board booted: {exc}",
                                 hint="check the cable / the RFC2217 server") from exc
            banner = _BANNER.search(seen)
            if banner:
                return banner.group(0).decode("utf-8", "replace").strip()
            if DOWNLOAD_WAIT in seen:
                raise BootloaderStuck(
                    f"the board on {port} restarted into the ROM bootloader, not the firmware",
                    hint="release the BOOT/IO0 button, or check the DTR/RTS auto-reset wiring",
                )
            if not nudged and deadline.elapsed() > timeout / 2:
                line.write(b"\r\x03\x03\x02")
                nudged = True
        raise DeadlineExceeded(
            f"no MicroPython banner on {port} within {timeout:g} s after a hard reset; "
            f"last seen: {_tail(seen) or 'nothing'}",
        )
    finally:
        line.close()
