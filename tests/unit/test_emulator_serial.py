"""The emulated ESP32's serial line, driven only by unmodified mpremote and pyserial."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import serial

from harness.deadline import Deadline
from harness.emulator import EmulatedBoard
from harness.emulator.fixtures import BoardFactory, board_factory, emulated_board, mpremote

pytestmark = pytest.mark.unit
__all__ = ["board_factory", "emulated_board"]  # fixtures used below

BANNER = b"MicroPython v1.22.2 on 2024-02-22; Generic ESP32 module with ESP32\r\n"


def read_until(read: Callable[[], bytes], marker: bytes, timeout: float = 15.0,
               where: str = "on the serial line", seen: bytes = b"") -> bytes:
    """``seen`` and what ``read()`` returns after it, once ``marker`` is in it: the one
    expect loop of the serial tests (a deadline, and the tail of what came on expiry)."""
    deadline = Deadline(timeout, f"{marker!r} {where}")
    while marker not in seen:
        if deadline.expired:
            raise deadline.fail(repr(seen[-300:]))
        seen += read()
    return seen


class Port:
    """A pyserial connection with expect-style reads (every wait has a deadline)."""

    def __init__(self, port: str) -> None:
        self.serial = serial.Serial(port, 115200, timeout=0.05)
        self.seen = b""

    def expect(self, pattern: bytes, timeout: float = 15.0) -> bytes:
        seen = read_until(lambda: self.serial.read(4096), pattern, timeout, seen=self.seen)
        before, _, self.seen = seen.partition(pattern)
        return before + pattern

    def write(self, data: bytes) -> None:
        self.serial.write(data)

    def close(self) -> None:
        self.serial.close()


def open_repl(board: EmulatedBoard) -> Port:
    """A port at a quiet friendly-REPL prompt: Ctrl-C, then one round trip, so no prompt the
    interrupt printed is left to read."""
    port = Port(board.port)
    port.write(b"\r\x03")
    port.expect(b">>> ")
    port.write(b"print('ready')\r")
    port.expect(b"ready\r\n>>> ")
    return port


@pytest.fixture
def port(emulated_board: EmulatedBoard) -> Iterator[Port]:
    connection = Port(emulated_board.port)
    yield connection
    connection.close()


def test_exec_and_eval(emulated_board: EmulatedBoard) -> None:
    result = mpremote(emulated_board.port, "exec", "print('sum', 40 + 2)", "+", "eval", "6 * 7")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["sum 42", "42"]


def test_exec_reports_device_exception(emulated_board: EmulatedBoard) -> None:
    result = mpremote(emulated_board.port, "exec", "1/0")
    assert result.returncode == 1
    assert "ZeroDivisionError: divide by zero" in result.stdout
    assert "board_runtime" not in result.stdout + result.stderr  # no emulator frames


def test_fs_cp_twice_is_up_to_date_and_ls_shows_sizes(
        emulated_board: EmulatedBoard, tmp_path: Path) -> None:
    source = tmp_path / "settings.json"
    source.write_bytes(b'{"x": 1}\n' * 123)
    first = mpremote(emulated_board.port, "fs", "cp", str(source), ":settings.json")
    assert first.returncode == 0, first.stderr
    assert "Up to date" not in first.stdout
    assert (emulated_board.flash_dir / "settings.json").read_bytes() == source.read_bytes()
    second = mpremote(emulated_board.port, "fs", "cp", str(source), ":settings.json")
    assert "Up to date: settings.json" in second.stdout
    listing = mpremote(emulated_board.port, "fs", "mkdir", ":lib", "+", "fs", "ls")
    assert re.search(rf"^\s+{source.stat().st_size} settings\.json$", listing.stdout, re.M)
    assert re.search(r"^\s+0 lib/$", listing.stdout, re.M)


def test_fs_cat_rm_rmdir(emulated_board: EmulatedBoard) -> None:
    (emulated_board.flash_dir / "note.txt").write_text("hello flash\n")
    (emulated_board.flash_dir / "empty").mkdir()
    result = mpremote(emulated_board.port, "fs", "cat", ":note.txt", "+", "fs", "rm", ":note.txt",
                      "+", "fs", "rmdir", ":empty")
    assert result.returncode == 0, result.stderr
    assert "hello flash" in result.stdout
    assert list(emulated_board.flash_dir.iterdir()) == []


def test_device_code_cannot_reach_host_paths(emulated_board: EmulatedBoard) -> None:
    probe = ("import os\n"
             "print(sorted(os.listdir('/../..')))\n"
             "f = open('/../../escape.txt', 'w'); f.write('x'); f.close()\n")
    result = mpremote(emulated_board.port, "exec", probe)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"  # ".." stops at the flash root
    assert (emulated_board.flash_dir / "escape.txt").exists()
    assert not (emulated_board.flash_dir.parent.parent / "escape.txt").exists()


def test_friendly_repl_banner_and_expression(port: Port) -> None:
    port.write(b"\r\x03print('sync')\r")
    port.expect(b"sync\r\n>>> ")
    port.write(b"\x02")  # Ctrl-B on an empty line: the banner again
    assert port.expect(b">>> ") == b"\r\n" + BANNER + b'Type "help()" for more information.\r\n>>> '
    port.write(b"1+1\r")
    assert port.expect(b">>> ") == b"1+1\r\n2\r\n>>> "


def test_hard_reset_runs_main_py_and_reports_hard_reset(
        emulated_board: EmulatedBoard, port: Port) -> None:
    (emulated_board.flash_dir / "boot.py").write_text("print('boot ran')\n")
    (emulated_board.flash_dir / "main.py").write_text(
        "import machine\nprint('main cause', machine.reset_cause())\n")
    result = mpremote(emulated_board.port, "reset")
    assert result.returncode == 0, result.stderr
    port.expect(b"rst:0xc (SW_CPU_RESET)")
    port.expect(b"boot ran\r\nmain cause 2\r\n" + BANNER)


def test_board_hard_reset_is_a_power_on(emulated_board: EmulatedBoard, port: Port) -> None:
    (emulated_board.flash_dir / "main.py").write_text(
        "import machine\nprint('cause', machine.reset_cause())\n")
    emulated_board.hard_reset()
    port.expect(b"rst:0x1 (POWERON_RESET)")
    port.expect(b"cause 1\r\n")


def test_soft_reset_runs_boot_py_and_keeps_raw_mode(
        emulated_board: EmulatedBoard, port: Port) -> None:
    (emulated_board.flash_dir / "boot.py").write_text("print('boot ran')\n")
    (emulated_board.flash_dir / "main.py").write_text("print('main ran')\n")
    port.write(b"\r\x01")
    port.expect(b"raw REPL; CTRL-B to exit\r\n>")
    port.write(b"\x04")  # Ctrl-D on an empty raw buffer: soft reset, stays raw
    after = port.expect(b"raw REPL; CTRL-B to exit\r\n>")
    assert after.startswith(b"OK\r\nMPY: soft reboot\r\nboot ran\r\n")
    assert b"main ran" not in after  # main.py only runs in friendly mode
    port.write(b"\x02")
    port.expect(b">>> ")
    port.write(b"\x04")  # friendly Ctrl-D: soft reset, boot.py then main.py
    after = port.expect(b">>> ")
    assert b"\r\nMPY: soft reboot\r\nboot ran\r\nmain ran\r\n" + BANNER in after


def test_mpremote_soft_reset_and_machine_soft_reset(
        board_factory: BoardFactory, tmp_path: Path) -> None:
    flash = tmp_path / "board" / "flash"
    flash.mkdir(parents=True)
    (flash / "boot.py").write_text("open('log', 'a').write('x')\n")
    board = board_factory()
    result = mpremote(board.port, "soft-reset", "+", "exec",
                      "import machine\nmachine.soft_reset()", "+", "exec", "print('alive')")
    assert result.returncode == 0, result.stderr
    assert "alive" in result.stdout
    # boot.py ran at power-on, on mpremote's soft-reset and on machine.soft_reset()
    assert (flash / "log").read_text() == "xxx"


def test_raw_paste_of_a_large_script(emulated_board: EmulatedBoard) -> None:
    lines = [f"total += {i}  # padding so the script spans many 128-byte windows"
             for i in range(400)]
    script = "\n".join(["total = 0", *lines, "print(total)"])
    assert len(script) > 20000
    result = mpremote(emulated_board.port, "exec", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(sum(range(400)))


def test_ctrl_c_interrupts_a_busy_loop(port: Port) -> None:
    port.write(b"\r\x03")
    port.expect(b">>> ")
    # readline.c: the body is auto-indented; two RETURNs on all-space lines end the
    # statement and a third runs it (docs/reference/repl.rst, "Auto-indent")
    port.write(b"n = 0\rwhile True:\rn += 1\r\r\r\r")
    port.expect(b"...     n += 1\r\n...     \r\n...     \r\n... \r\n")
    port.write(b"\x03")
    out = port.expect(b">>> ")
    assert b"KeyboardInterrupt: \r\n" in out
    port.write(b"n > 0\r")
    assert port.expect(b">>> ").endswith(b"True\r\n>>> ")


def test_ctrl_c_stops_main_py_for_mpremote(emulated_board: EmulatedBoard) -> None:
    (emulated_board.flash_dir / "main.py").write_text(
        "import time\nwhile True:\n    time.sleep_ms(10)\n")
    emulated_board.hard_reset()
    result = mpremote(emulated_board.port, "exec", "print('took over')")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "took over"


def test_paste_mode(port: Port) -> None:
    port.write(b"\r\x05")
    port.expect(b"=== ")
    port.write(b"def f():\r    return 'pasted'\rprint(f())\r\x04")
    assert b"pasted\r\n>>> " in port.expect(b"pasted\r\n>>> ")


def test_heap_is_limited_like_an_esp32(board_factory: BoardFactory) -> None:
    board = board_factory()  # v1.22: a 56 KiB first heap area, grown to ~110 KiB
    free = mpremote(board.port, "exec", "import gc; gc.collect(); print(gc.mem_free())")
    assert 48_000 < int(free.stdout) < 56 * 1024, free.stdout
    result = mpremote(board.port, "exec", "x = bytearray(150 * 1024)")
    assert "MemoryError" in result.stdout
    small = board_factory("small", heap_kib=40)
    result = mpremote(small.port, "exec", "x = bytearray(60 * 1024)")
    assert "MemoryError" in result.stdout


def test_failing_boot_py_skips_main_py(emulated_board: EmulatedBoard, port: Port) -> None:
    (emulated_board.flash_dir / "boot.py").write_text("raise ValueError('bad boot')\n")
    (emulated_board.flash_dir / "main.py").write_text("print('main ran')\n")
    port.write(b"\r\x03print('sync')\r")
    port.expect(b"sync\r\n>>> ")
    port.write(b"\x04")
    out = port.expect(b">>> ")
    assert b'File "boot.py", line 1, in <module>\r\nValueError: bad boot\r\n' in out
    assert b"main ran" not in out


def test_input_reads_the_serial_line(port: Port) -> None:
    port.write(b"\r\x03print('name:', input('? '))\r")
    port.expect(b"? ")
    port.write(b"esp\r")
    assert port.expect(b">>> ").endswith(b"esp\r\nname: esp\r\n>>> ")
