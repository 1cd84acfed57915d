"""Benchmarks of the emulated ESP32 (issue 2). Prints medians.

    .venv/bin/python benchmarks/bench_emulator.py [--quick]

* start -> exec: ``EmulatedBoard.start()`` until mpremote's own transport (library, no CLI
  start-up) has entered the raw REPL and run one exec.
* soft reset / hard reset -> prompt.
* ``mpremote fs cp`` of a 100 KB file (the CLI, as a user runs it) and an unchanged-file skip.
* peak memory per board: the interpreter child's VmHWM, plus the supervisor's share.
* boards at once: N boards, each driven by its own client doing a raw-REPL exec loop (20
  execs/s per board); the largest N whose median exec latency stays under twice the
  single-board figure. (Back-to-back loops would just measure CPU count: 2 cores.)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import serial
from mpremote.transport_serial import SerialTransport

from harness.deadline import Deadline
from harness.emulator import EmulatedBoard


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.1f} ms"


def read_until(port: serial.Serial, marker: bytes, what: str, timeout: float = 20.0) -> bytes:
    deadline = Deadline(timeout, what)
    seen = b""
    while not seen.endswith(marker):
        if deadline.expired:
            raise deadline.fail(repr(seen[-200:]))
        seen += port.read(max(1, port.in_waiting))
    return seen


def bench_start_to_exec(root: Path, runs: int) -> list[float]:
    samples = []
    for index in range(runs):
        board = EmulatedBoard(root / f"start{index}")
        began = time.perf_counter()
        board.start()
        transport = SerialTransport(board.port)
        transport.enter_raw_repl(soft_reset=False)
        assert transport.exec("print(1)") == b"1\r\n"
        samples.append(time.perf_counter() - began)
        transport.close()
        board.stop()
    return samples


def bench_resets(board: EmulatedBoard, runs: int) -> tuple[list[float], list[float]]:
    port = serial.Serial(board.port, timeout=0.05)
    port.write(b"\r\x03\x01")
    read_until(port, b"raw REPL; CTRL-B to exit\r\n>", "raw REPL")
    soft = []
    for _ in range(runs):
        began = time.perf_counter()
        port.write(b"\x04")
        read_until(port, b"raw REPL; CTRL-B to exit\r\n>", "raw REPL after soft reset")
        soft.append(time.perf_counter() - began)
    port.write(b"\x02")
    read_until(port, b">>> ", "friendly prompt")
    hard = []
    for _ in range(runs):
        began = time.perf_counter()
        board.hard_reset()
        read_until(port, b'for more information.\r\n>>> ', "prompt after hard reset")
        hard.append(time.perf_counter() - began)
    port.close()
    return soft, hard


def mpremote(port: str, *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "mpremote", "connect", port, *args],
                            capture_output=True, text=True, timeout=120, check=True)
    return result.stdout


def bench_fs_cp(board: EmulatedBoard, root: Path, runs: int) -> tuple[list[float], list[float]]:
    source = root / "payload.bin"
    copies, skips = [], []
    for index in range(runs):
        source.write_bytes(os.urandom(100 * 1024))
        began = time.perf_counter()
        out = mpremote(board.port, "fs", "cp", str(source), f":payload{index}.bin")
        copies.append(time.perf_counter() - began)
        assert "Up to date" not in out
        began = time.perf_counter()
        out = mpremote(board.port, "fs", "cp", str(source), f":payload{index}.bin")
        skips.append(time.perf_counter() - began)
        assert "Up to date" in out
    return copies, skips


def vm_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def children_of(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


EXEC_PERIOD_S = 0.05  # each board execs 20 times a second, a busy mpremote session's pace


def exec_loop(board: EmulatedBoard, stop: threading.Event, latencies: list[float],
              ready: Callable[[], None]) -> None:
    port = serial.Serial(board.port, timeout=0.05)
    port.write(b"\r\x03\x01")
    read_until(port, b"raw REPL; CTRL-B to exit\r\n>", "raw REPL")
    ready()
    while not stop.is_set():
        began = time.perf_counter()
        port.write(b"x = sum(range(100))\x04")
        read_until(port, b"\x04\x04>", "exec result")
        latencies.append(time.perf_counter() - began)
        stop.wait(max(0.0, EXEC_PERIOD_S - (time.perf_counter() - began)))  # the loop's pace
    port.close()


def bench_concurrency(root: Path, counts: list[int], seconds: float) -> dict[int, float]:
    results: dict[int, float] = {}
    for count in counts:
        boards = [EmulatedBoard(root / f"many{count}-{i}") for i in range(count)]
        host_before = vm_kib(os.getpid(), "VmRSS")
        for board in boards:
            board.start(timeout=60)
        host_per_board = (vm_kib(os.getpid(), "VmRSS") - host_before) / count
        stop = threading.Event()
        latencies: list[list[float]] = [[] for _ in boards]
        started = threading.Semaphore(0)
        threads = [threading.Thread(target=exec_loop,
                                    args=(board, stop, latencies[i], started.release))
                   for i, board in enumerate(boards)]
        for thread in threads:
            thread.start()
        for _ in threads:
            started.acquire(timeout=60)
        for samples in latencies:
            samples.clear()
        time.sleep(seconds)  # the measurement window itself, not a synchronisation
        stop.set()
        for thread in threads:
            thread.join(30)
        for board in boards:
            board.stop()
        results[count] = statistics.median([s for samples in latencies for s in samples])
        print(f"  {count:3d} boards: median exec {results[count] * 1000:.1f} ms, "
              f"supervisor memory {host_per_board:.0f} KiB/board", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs")
    args = parser.parse_args()
    runs = 5 if args.quick else 15
    with tempfile.TemporaryDirectory(prefix="bench-emu-") as tmp:
        root = Path(tmp)
        print(f"start -> mpremote exec:   {median_ms(bench_start_to_exec(root, runs))}")
        board = EmulatedBoard(root / "main")
        board.start()
        soft, hard = bench_resets(board, runs)
        print(f"soft reset -> raw prompt: {median_ms(soft)}")
        print(f"hard reset -> >>> prompt: {median_ms(hard)}")
        copies, skips = bench_fs_cp(board, root, 3 if args.quick else 5)
        rate = 100 / statistics.median(copies)
        print(f"fs cp 100 KB (CLI):       {median_ms(copies)} = {rate:.0f} KB/s")
        print(f"fs cp unchanged (skip):   {median_ms(skips)}")
        child = children_of(os.getpid())
        peaks = [vm_kib(pid, "VmHWM") for pid in child]
        print(f"peak RSS per interpreter: {statistics.median(peaks) / 1024:.1f} MiB "
              f"(supervisor: one thread in the host process)")
        board.stop()
        counts = [1, 4, 8, 16, 24] if args.quick else [1, 2, 4, 8, 16, 24, 32, 48, 64]
        print(f"boards at once (each in a raw-REPL exec loop, one exec per {EXEC_PERIOD_S}s):")
        results = bench_concurrency(root, counts, 2.0 if args.quick else 4.0)
        limit = 2 * results[counts[0]]
        fitting = [count for count in counts if results[count] <= limit]
        print(f"boards before median exec latency doubles: {max(fitting)} "
              f"(of {counts[-1]} tried, {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
