"""Hostile ports end in one line within seconds, never in a hang: a port that floods the
line (bytes must not extend a deadline), and a device program that boot-loops."""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.device.device import Device
from harness.errors import NotMicroPython

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]


class FloodingPort:
    """A pty whose "board" prints text without end and never answers Ctrl-C, like a board
    at the wrong baud rate that happens to decode as text, or a foreign firmware's log."""

    def __init__(self, chunk: bytes) -> None:
        self.master, slave = pty.openpty()
        self.path = os.ttyname(slave)
        os.close(slave)
        self._chunk = chunk
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._flood, daemon=True)
        self._thread.start()

    def _flood(self) -> None:
        while not self._stop.is_set():
            try:
                os.write(self.master, self._chunk)
                while os.read(self.master, 4096) if _readable(self.master) else b"":
                    pass  # swallow what the harness sends
            except OSError:
                time.sleep(0.005)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        os.close(self.master)


def _readable(fd: int) -> bool:
    import select

    return bool(select.select([fd], [], [], 0)[0])


@pytest.fixture
def text_flood() -> Iterator[FloodingPort]:
    port = FloodingPort(b"I (1234) wifi: state: run -> init (0x0)\r\n" * 4)
    yield port
    port.close()


@pytest.mark.hil_duration(12)
def test_a_port_that_floods_text_is_diagnosed_within_the_deadline(
        text_flood: FloodingPort) -> None:
    device = Device(text_flood.path, hard_reset=lambda _line: None).open()
    started = time.monotonic()
    try:
        with pytest.raises(NotMicroPython) as caught:
            device.exec("print(1)")
    finally:
        device.close()
    elapsed = time.monotonic() - started
    assert elapsed < 12, f"the flood extended the 10 s deadline to {elapsed:.1f} s"
    text = str(caught.value)
    assert "\n" not in text
    assert "sends a continuous stream that is not a MicroPython REPL" in text
    # Quoted from a line's start, wherever in the stream the harness began to read.
    assert "b'I (1234) wifi: state" in text and "check the baud rate" in text



def test_a_flood_read_from_mid_line_is_quoted_from_its_next_line() -> None:
    device = Device("/dev/null", hard_reset=lambda _line: None)
    error = device._diagnose_flood(b"fi: state: run -> init (0x0)\r\nI (1234) wifi: state")
    assert "stream that is not a MicroPython REPL: b'I (1234) wifi: state'" in str(error)


BOOT_LOOP_PROGRAM = 'print("starting up")\nraise SystemExit\n'


@pytest.mark.hil_duration(17)
def test_a_boot_looping_program_is_diagnosed_in_seconds_with_its_log_saved(
        tmp_path: Path) -> None:
    program = tmp_path / "program"
    program.mkdir()
    (program / "main.py").write_text(BOOT_LOOP_PROGRAM)
    (program / "hil.toml").write_text('settings = "contract"\n')  # it would read /settings.json
    results = tmp_path / "results"
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-m", "hil", "-rs",
         f"--hil-device-src={program}", f"--hil-results={results}"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    elapsed = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, output[-3000:]
    assert elapsed < 90, f"a boot loop took {elapsed:.0f} s to diagnose"
    assert "the device is in a boot loop: it rebooted" in output
    assert "last output before each reboot: 'starting up'" in output
    assert "device lost earlier in this session" in output  # the rest skip, no retries
    logs = list(results.rglob("serial.log"))
    assert logs and "MPY: soft reboot" in logs[0].read_text()


NOISY_MAIN = '''\
# While the program runs, every line it prints arrives with serial noise glued to its
# start (undecodable bytes, a NUL, a terminal escape), as after a baud-rate glitch or boot
# noise on a real line. The REPL itself stays clean.
import builtins
import sys

_print = builtins.print


def _noisy_print(*args, **kwargs):
    sys.stdout.buffer.write(b"\\xff\\xfe\\x00\\x1b[0m")
    _print(*args, **kwargs)


builtins.print = _noisy_print
try:
    import app_main

    app_main.run()
finally:
    builtins.print = _print
'''


def test_lines_with_noise_glued_to_their_start_are_still_the_devices_lines(
        tmp_path: Path) -> None:
    program = tmp_path / "program"
    shutil.copytree(REPO / "device_src", program)
    (program / "main.py").rename(program / "app_main.py")
    (program / "main.py").write_text(NOISY_MAIN)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-m", "hil",
         "-k", "s1_ or s6_ or s7_echo_in_order or s8_",
         f"--hil-device-src={program}", f"--hil-results={tmp_path / 'results'}"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "4 passed" in output
    logs = list((tmp_path / "results").rglob("serial.log"))
    assert any("\x00\x1b[0mSend '" in log.read_text(errors="replace") for log in logs)
