"""The emulated serial line loses nothing: back-pressure instead of drops, on the pty and
over RFC2217, with unmodified pyserial, mpremote and ampy counting every byte."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import serial

from harness.deadline import Deadline
from harness.emulator import EmulatedBoard
from harness.emulator.fixtures import BoardFactory, board_factory, emulated_board, mpremote

pytestmark = pytest.mark.unit
__all__ = ["board_factory", "emulated_board"]

LINES = 2200  # 2200 * 50 bytes = 110 KB of device output per burst
BURST = f"for i in range({LINES}): print('%05d' % i + 'x' * 44)"


def _expected_burst() -> bytes:
    return b"".join(b"%05d" % i + b"x" * 44 + b"\r\n" for i in range(LINES))


def _raw_exec(port: serial.SerialBase, code: bytes) -> None:
    """Send ``code`` in the raw REPL (the device starts running it at once)."""
    port.write(b"\r\x03")
    time.sleep(0.2)
    port.write(b"\r\x01")
    seen = b""
    deadline = Deadline(10, "the raw REPL prompt")
    while not seen.endswith(b"raw REPL; CTRL-B to exit\r\n>"):
        if deadline.expired:
            raise deadline.fail(repr(seen[-200:]))
        seen += port.read(1)
    port.write(code + b"\x04")


def _read_all(port: serial.SerialBase, until: bytes, timeout: float = 60) -> bytes:
    deadline = Deadline(timeout, f"{until!r} at the end of the burst")
    got = bytearray()
    while not got.endswith(until):
        if deadline.expired:
            raise deadline.fail(f"{len(got)} bytes, ending {bytes(got[-80:])!r}")
        got += port.read(max(1, port.in_waiting))
    return bytes(got)


@pytest.mark.parametrize("transport", ["pty", "rfc2217"])
def test_a_reader_that_stalls_still_gets_every_byte(
        board_factory: BoardFactory, transport: str) -> None:
    board = board_factory(rfc2217_port=0)
    url = board.port if transport == "pty" else board.rfc2217_url
    assert url is not None
    port = serial.serial_for_url(url, 115200, timeout=0.2)
    try:
        _raw_exec(port, BURST.encode())
        time.sleep(2.0)  # the host does not read: every buffer fills and the board blocks
        got = _read_all(port, b"\x04>")
    finally:
        port.close()
    body = got.split(b"OK", 1)[1].split(b"\x04", 1)[0]
    assert len(body) == len(_expected_burst())
    assert body == _expected_burst()


def test_mpremote_exec_printing_100_kb(emulated_board: EmulatedBoard) -> None:
    result = mpremote(emulated_board.port, "exec", BURST)
    assert result.returncode == 0, result.stderr
    assert result.stdout.encode() == _expected_burst().replace(b"\r\n", b"\n")


def test_mpremote_fs_cat_of_60_kb(emulated_board: EmulatedBoard) -> None:
    text = "".join(f"line {i:05d} " + "abcdefghij" * 4 + "\n" for i in range(1200))
    (emulated_board.flash_dir / "big.txt").write_text(text)
    result = mpremote(emulated_board.port, "fs", "cat", ":big.txt")
    assert result.returncode == 0, result.stderr
    assert result.stdout == text


def test_ampy_get_of_100_kb(emulated_board: EmulatedBoard, tmp_path: Path) -> None:
    if shutil.which("ampy", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("adafruit-ampy is not installed; pip install -e '.[test]'")
    data = os.urandom(100 * 1024)
    (emulated_board.flash_dir / "blob.bin").write_bytes(data)
    out = tmp_path / "blob.bin"
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ampy"), "--port", emulated_board.port,
         "get", "blob.bin", str(out)],
        capture_output=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert hashlib.sha256(out.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()


def test_nobody_listening_does_not_stall_the_board(emulated_board: EmulatedBoard) -> None:
    # A board printing with no client on the port keeps running, as a real one does.
    (emulated_board.flash_dir / "main.py").write_text(
        "for i in range(3000):\n    print('%05d' % i + 'z' * 44)\n"
        "open('done', 'w').write('yes')\n")
    emulated_board.hard_reset()
    Deadline(20, "main.py to finish with nobody reading").poll(
        lambda: True if (emulated_board.flash_dir / "done").exists() else None)


def test_paced_line_runs_at_the_baud_rate(board_factory: BoardFactory) -> None:
    board = board_factory(baud=115200)
    started = time.monotonic()
    result = mpremote(board.port, "exec", "print('p' * 23000)")
    elapsed = time.monotonic() - started
    assert result.stdout.strip() == "p" * 23000
    assert elapsed >= 23000 * 10 / 115200 * 0.9  # 2 s of line time for 23 KB at 115200
