"""The Device interface against the emulated board: deploy skips unchanged files, resets,
and a port that vanishes is reported as lost instead of hanging."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.deadline import Deadline
from harness.device.device import Device
from harness.emulator import EmulatedBoard
from harness.errors import DeviceLost

pytestmark = pytest.mark.unit


@pytest.fixture
def board(tmp_path: Path) -> Iterator[EmulatedBoard]:
    with EmulatedBoard(tmp_path / "flash") as running:
        running.start(timeout=20)
        yield running


@pytest.fixture
def device(board: EmulatedBoard) -> Iterator[Device]:
    with Device(board.port, hard_reset=lambda _line: board.hard_reset()) as opened:
        yield opened


def test_deploy_copies_changed_files_only(device: Device, tmp_path: Path) -> None:
    program = tmp_path / "program"
    (program / "lib").mkdir(parents=True)
    (program / "main.py").write_text("print('hello from main')\n")
    (program / "lib" / "util.py").write_text("X = 1\n")
    first = device.deploy(program)
    assert sorted(first.copied) == ["/lib/util.py", "/main.py"]
    (program / "lib" / "util.py").write_text("X = 2\n")
    second = device.deploy(program)
    assert second.copied == ["/lib/util.py"] and second.unchanged == ["/main.py"]
    assert device.exec("import lib.util\nprint(lib.util.X)").strip() == "2"


def test_hard_reset_runs_main_and_the_log_keeps_what_came_before(device: Device) -> None:
    device.deploy(files={"/main.py": b"import machine\nprint('cause', machine.reset_cause())\n"})
    before = device.log.mark("before the reset")
    mark = device.hard_reset()
    assert mark > before
    device.expect(r"cause \d", timeout=10, since=mark)
    assert "before the reset" in device.log.text()


def test_soft_reset_prints_soft_reboot_and_reruns_main(device: Device) -> None:
    device.deploy(files={"/main.py": b"print('main ran')\n"})
    mark = device.soft_reset()
    device.expect("main ran", timeout=10, since=mark)


def test_a_port_that_vanishes_is_reported_as_lost(board: EmulatedBoard, device: Device) -> None:
    board.stop()
    Deadline(10, "the reader to notice the lost port").poll(
        lambda: True if "serial port lost" in device.log.text() else None)
    with pytest.raises(DeviceLost, match="was lost"):
        device.exec("print(1)")


CRASHES_ON_CTRL_C = b"""
import micropython
print('main started')
try:
    while True:
        pass
except KeyboardInterrupt:
    micropython.heap_lock()  # what an unlucky SIGINT can leave behind in the unix port
    raise
"""


def test_ctrl_c_returns_to_the_repl_even_if_the_interpreter_dies_handling_it(
        device: Device) -> None:
    device.deploy(files={"/main.py": CRASHES_ON_CTRL_C})
    mark = device.hard_reset()
    device.expect("main started", timeout=10, since=mark)
    stop = device.log.position()
    device.interrupt(timeout=10)
    assert device.exec("print(6 * 7)").strip() == "42"
    after = device.log.text(stop)
    assert "main started" not in after, "Ctrl-C must not reboot into main.py again"
    assert "SW_CPU_RESET" not in after


def test_the_reader_waits_for_bytes_without_holding_the_io_lock(device: Device) -> None:
    """Deploy and exec take the lock the reader uses; an idle reader must not sit on it
    through a blocking read (that cost ~50 ms per exec and ~100 ms per deploy)."""
    waits = []
    for _ in range(20):
        started = time.monotonic()
        with device._io_lock:
            waits.append(time.monotonic() - started)
        time.sleep(0.013)  # land anywhere in the reader's cycle
    assert max(waits) < 0.01, waits


def test_leaving_the_raw_repl_leaves_its_prompt_in_the_log_before_returning(
        device: Device) -> None:
    """What the board prints on leaving the raw REPL must be in the log by the time exec
    returns, or a mark made next (a hard reset) would see it arrive afterwards."""
    for _ in range(3):
        device.exec("print(1)")
        assert device.log.text().endswith(">>> ")


HEAP_FILLER = b"""
import sys
say, done = sys.stdout.buffer.write, b"heap full\\r\\n"  # a write that allocates nothing
chain = None
while True:  # one small object after another, until not one more fits
    try:
        chain = [chain]
    except MemoryError:
        break
say(done)
while True:
    pass
"""


def test_a_program_that_fills_the_heap_to_the_last_byte_still_gets_the_board_back(
        device: Device) -> None:
    """The firmware's REPL needs no heap: after Ctrl-C stops a program that left not one
    free block, the board prints the traceback as the board does and its prompt, and a
    deploy goes on by a soft reset (the emulator's own frames and paths never show)."""
    device.deploy(files={"/main.py": HEAP_FILLER})
    mark = device.hard_reset()
    device.expect("heap full", timeout=10, since=mark)
    stopped = device.log.mark("stopping the program")
    device.interrupt(timeout=10)
    after = device.log.text(since=stopped)
    assert 'File "main.py", line' in after and "KeyboardInterrupt" in after, after
    assert "board_runtime" not in after and "MemoryError" not in after, after
    report = device.deploy(files={f"/f{n}.py": b"x = %d\n" % n for n in range(30)})
    assert len(report.copied) == 30
    after = device.log.text(since=stopped)
    assert "soft reset: the heap was full" in after and "interpreter exited" not in after
    assert device.exec("import f29\nprint(f29.x)").strip() == "29"
