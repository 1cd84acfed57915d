"""Third-party serial tools against the emulated board, unmodified, each asserting the bytes
and files that come back: mpremote (every fs command, df, repl), ampy, rshell, miniterm.
(mount and rshell cp: test_emulator_stdio.py; esptool: test_emulator_esptool.py.)"""

from __future__ import annotations

import contextlib
import hashlib
import os
import select
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from harness.deadline import Deadline
from harness.emulator import EmulatedBoard
from harness.emulator.fixtures import board_factory, emulated_board, mpremote

pytestmark = pytest.mark.unit
__all__ = ["board_factory", "emulated_board"]

BIN = Path(sys.executable).parent


class Terminal:
    """A program on a pseudo-terminal of its own, driven as a person at a keyboard."""

    def __init__(self, argv: list[str]) -> None:
        self._master, slave = os.openpty()
        attrs = termios.tcgetattr(slave)
        attrs[1] &= ~termios.ONLCR  # show the bytes as the program wrote them
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                                     start_new_session=True)
        os.close(slave)
        self.seen = b""

    def type(self, data: bytes) -> None:
        os.write(self._master, data)

    def expect(self, pattern: bytes, timeout: float = 20.0) -> bytes:
        deadline = Deadline(timeout, f"{pattern!r} on the terminal")
        while pattern not in self.seen:
            if deadline.expired:
                raise deadline.fail(repr(self.seen[-300:]))
            ready, _, _ = select.select([self._master], [], [], deadline.remaining())
            if ready:
                with contextlib.suppress(OSError):
                    self.seen += os.read(self._master, 4096)
        before, _, self.seen = self.seen.partition(pattern)
        return before + pattern

    def close(self) -> int:
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
        finally:
            os.close(self._master)


@pytest.fixture
def files(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("alpha\n")
    (tree / "sub" / "b.bin").write_bytes(os.urandom(3000))
    return tree


def test_mpremote_every_fs_command(emulated_board: EmulatedBoard, files: Path,
                                   tmp_path: Path) -> None:
    port, flash = emulated_board.port, emulated_board.flash_dir

    def run(*args: str) -> str:
        result = mpremote(port, *args)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result.stdout

    run("fs", "cp", "-r", str(files), ":")
    assert (flash / "tree" / "sub" / "b.bin").read_bytes() == (files / "sub" / "b.bin").read_bytes()
    assert "a.txt" in run("fs", "ls", ":tree") and "sub/" in run("fs", "ls", ":tree")
    assert run("fs", "cat", ":tree/a.txt") == "alpha\n"
    digest = hashlib.sha256((files / "sub" / "b.bin").read_bytes()).hexdigest()
    assert digest in run("fs", "sha256sum", ":tree/sub/b.bin")
    run("fs", "touch", ":tree/new.txt")
    assert (flash / "tree" / "new.txt").read_bytes() == b""
    tree = run("fs", "tree", ":tree")
    assert "a.txt" in tree and "b.bin" in tree and "new.txt" in tree
    run("fs", "mkdir", ":made")
    assert (flash / "made").is_dir()
    back = tmp_path / "back"
    back.mkdir()
    run("fs", "cp", ":tree/sub/b.bin", str(back / "b.bin"))
    assert (back / "b.bin").read_bytes() == (files / "sub" / "b.bin").read_bytes()
    run("fs", "cp", "-r", ":tree", str(back))
    assert (back / "tree" / "a.txt").read_text() == "alpha\n"
    run("fs", "rm", ":tree/new.txt")
    run("fs", "rmdir", ":made")
    run("fs", "rm", "-r", ":tree")
    assert sorted(p.name for p in flash.iterdir()) == []


def test_mpremote_df_fails_on_v1_22_as_the_firmware_has_no_vfs_module(
        emulated_board: EmulatedBoard) -> None:
    result = mpremote(emulated_board.port, "df")
    assert result.returncode == 1
    assert "ImportError: no module named 'vfs'" in result.stdout
    assert "_board" not in result.stdout  # the board's own frames stay hidden
    # os.mount/os.statvfs, what tools used before vfs existed, are there
    ok = mpremote(emulated_board.port, "exec", "import os; print(os.statvfs('/')[0])")
    assert ok.stdout.strip() == "4096"


def test_mpremote_repl_on_a_terminal(emulated_board: EmulatedBoard) -> None:
    term = Terminal([str(BIN / "mpremote"), "connect", emulated_board.port, "repl"])
    try:
        term.expect(b"to exit this shell")
        time.sleep(0.5)  # mpremote flushes what was typed while it set the terminal up
        term.type(b"\r")
        term.expect(b">>> ")
        term.type(b"for i in range(2):\r")
        term.expect(b"...     ")
        term.type(b"print('n', i)\r\r\r\r")
        out = term.expect(b">>> ")
        assert b"n 0\r\nn 1\r\n" in out
        term.type(b"\x1b[A")  # history works through mpremote's terminal too
        term.expect(b"    ")
        term.type(b"\x03\x1d")  # Ctrl-] leaves mpremote
    finally:
        assert term.close() == 0


def test_miniterm_talks_to_the_repl(emulated_board: EmulatedBoard) -> None:
    term = Terminal([sys.executable, "-m", "serial.tools.miniterm", "--raw", "--eol", "CR",
                     emulated_board.port, "115200"])
    try:
        term.expect(b"Quit: Ctrl+]")
        time.sleep(0.3)
        term.type(b"\x03")
        term.expect(b">>> ")
        term.type(b"print(6 * 7)\r")
        assert term.expect(b">>> ").endswith(b"print(6 * 7)\r\n42\r\n>>> ")
        term.type(b"\x1d")
    finally:
        term.close()


def _ampy(port: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    tool = BIN / "ampy"
    if not tool.exists():
        pytest.skip("adafruit-ampy is not installed; pip install -e '.[test]'")
    return subprocess.run([str(tool), "--port", port, *args], capture_output=True,
                          timeout=120, check=False)


def test_ampy_put_ls_get_run_mkdir_rm(emulated_board: EmulatedBoard, tmp_path: Path) -> None:
    port, flash = emulated_board.port, emulated_board.flash_dir
    data = os.urandom(20_000)
    (tmp_path / "up.bin").write_bytes(data)
    assert _ampy(port, "put", str(tmp_path / "up.bin"), "up.bin").returncode == 0
    assert (flash / "up.bin").read_bytes() == data
    listing = _ampy(port, "ls")
    assert b"/up.bin" in listing.stdout
    assert _ampy(port, "get", "up.bin", str(tmp_path / "down.bin")).returncode == 0
    assert (tmp_path / "down.bin").read_bytes() == data
    (tmp_path / "prog.py").write_text("print('ran', 6 * 7)\n")
    ran = _ampy(port, "run", str(tmp_path / "prog.py"))
    assert ran.stdout.replace(b"\r\n", b"\n") == b"ran 42\n"
    assert _ampy(port, "mkdir", "d").returncode == 0 and (flash / "d").is_dir()
    assert _ampy(port, "rmdir", "d").returncode == 0 and not (flash / "d").exists()
    assert _ampy(port, "rm", "up.bin").returncode == 0 and not (flash / "up.bin").exists()


def _rshell(port: str, *args: str) -> subprocess.CompletedProcess[str]:
    tool = BIN / "rshell"
    if not tool.exists():
        pytest.skip("rshell is not installed; pip install -e '.[test]'")
    return subprocess.run([str(tool), "-p", port, "--quiet", *args], capture_output=True,
                          text=True, timeout=120, check=False)


def test_rshell_ls_mkdir_cat_rm(emulated_board: EmulatedBoard) -> None:
    port, flash = emulated_board.port, emulated_board.flash_dir
    (flash / "note.txt").write_text("from the board\n")
    assert "note.txt" in _rshell(port, "ls", "/pyboard").stdout
    assert "from the board" in _rshell(port, "cat", "/pyboard/note.txt").stdout
    assert _rshell(port, "mkdir", "/pyboard/dir").returncode == 0 and (flash / "dir").is_dir()
    assert _rshell(port, "rm", "/pyboard/note.txt").returncode == 0
    assert not (flash / "note.txt").exists()
