"""The emulated board's stdin and stdout are the serial bytes, as on an ESP32: what the host
sends is what the program reads, what the program writes to ``sys.stdout.buffer`` is what
the host receives, and only the text path turns ``\\n`` into ``\\r\\n``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.emulator import EmulatedBoard
from harness.emulator.fixtures import BoardFactory, board_factory, emulated_board, mpremote
from tests.unit.test_emulator_serial import Port, open_repl

pytestmark = pytest.mark.unit
__all__ = ["board_factory", "emulated_board"]


@pytest.fixture
def port(emulated_board: EmulatedBoard) -> Iterator[Port]:
    connection = open_repl(emulated_board)
    yield connection
    connection.close()


def test_stdin_buffer_reads_exactly_the_bytes_sent(port: Port) -> None:
    port.write(b"import sys; print(repr(sys.stdin.buffer.read(5)))\r")
    port.expect(b"read(5)))\r\n")
    port.write(b"a\x00\xff\rb")  # NUL, a non-ASCII byte and CR arrive as sent
    assert port.expect(b">>> ") == b"b'a\\x00\\xff\\rb'\r\n>>> "


def test_text_stdin_reads_cr_as_newline_and_polls(port: Port) -> None:
    port.write(b"import select, sys; p = select.poll(); p.register(sys.stdin, select.POLLIN);"
               b" print(p.poll(50)); print(repr(sys.stdin.readline()))\r")
    port.expect(b"[]\r\n")  # nothing sent yet: not readable
    port.write(b"hi\r")
    assert port.expect(b">>> ") == b"'hi\\n'\r\n>>> "


def test_stdout_buffer_is_raw_and_text_is_cooked(emulated_board: EmulatedBoard) -> None:
    code = ("import sys\n"
            "sys.stdout.buffer.write(b'\\x00\\n\\x01')\n"
            "sys.stdout.write('t\\n')\n"
            "print('p', 1, sep='-')\n"
            "sys.print_exception(ValueError('v'))\n")
    result = subprocess.run([sys.executable, "-m", "mpremote", "connect", emulated_board.port,
                             "exec", code], capture_output=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"\x00\n\x01t\r\np-1\r\nValueError: v\r\n"


def test_kbd_intr_disabled_lets_ctrl_c_through_to_stdin(port: Port) -> None:
    port.write(b"import micropython, sys; micropython.kbd_intr(-1);"
               b" print(sys.stdin.buffer.read(2)); micropython.kbd_intr(3)\r")
    port.expect(b"kbd_intr(3)\r\n")
    port.write(b"\x03\x03")
    assert port.expect(b">>> ") == b"b'\\x03\\x03'\r\n>>> "
    port.write(b"import time\rwhile True:\rtime.sleep_ms(5)\r\r\r\r")  # armed again
    port.expect(b"... \r\n")
    port.write(b"\x03")
    assert b"KeyboardInterrupt: \r\n" in port.expect(b">>> ")


def test_mpremote_mount_imports_reads_and_writes(
        emulated_board: EmulatedBoard, tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    (host / "hostmod.py").write_text("VALUE = 'from the host'\n")
    blob = os.urandom(5000)
    (host / "blob.bin").write_bytes(blob)
    code = ("import hostmod, hashlib, binascii\n"
            "print(hostmod.VALUE)\n"
            "print(binascii.hexlify(hashlib.sha256(open('blob.bin', 'rb').read()).digest()))\n"
            "f = open('made.txt', 'w'); f.write('made on the board\\n' * 50); f.close()\n")
    result = mpremote(emulated_board.port, "mount", str(host), "exec", code)
    assert result.returncode == 0, result.stdout + result.stderr
    import hashlib
    assert "from the host" in result.stdout
    assert hashlib.sha256(blob).hexdigest() in result.stdout
    assert (host / "made.txt").read_text() == "made on the board\n" * 50


def _rshell(port: str, *args: str) -> subprocess.CompletedProcess[str]:
    tool = Path(sys.executable).parent / "rshell"
    if not tool.exists():
        pytest.skip("rshell is not installed; pip install -e '.[test]'")
    return subprocess.run([str(tool), "-p", port, "--quiet", *args], capture_output=True,
                          text=True, timeout=120, check=False)


def test_rshell_cp_both_ways(board_factory: BoardFactory, tmp_path: Path) -> None:
    board = board_factory()
    data = os.urandom(30_000)
    (tmp_path / "up.bin").write_bytes(data)
    up = _rshell(board.port, "cp", str(tmp_path / "up.bin"), "/pyboard/up.bin")
    assert up.returncode == 0, up.stdout + up.stderr
    assert (board.flash_dir / "up.bin").read_bytes() == data
    (board.flash_dir / "down.bin").write_bytes(data[::-1])
    down = _rshell(board.port, "cp", "/pyboard/down.bin", str(tmp_path / "down.bin"))
    assert down.returncode == 0, down.stdout + down.stderr
    assert (tmp_path / "down.bin").read_bytes() == data[::-1]


def test_help_prints_the_esp32_text_with_board_line_endings(port: Port) -> None:
    port.write(b"print('go')\r")
    port.expect(b"go\r\n>>> ")
    port.write(b"help()\r")
    out = port.expect(b">>> ")
    assert out.startswith(b"help()\r\nWelcome to MicroPython on the ESP32!\r\n\r\n")
    assert b"sta_if = network.WLAN(network.STA_IF); sta_if.active(True)\r\n" in out  # v1.22
    assert out.count(b"\n") == out.count(b"\r\n")
