"""The emulated ESP32 against the real board (issue 13). Prints figures and ratios.

    .venv/bin/python benchmarks/bench_board.py [--quick]

* Largest runnable script: N lines of ``x += i`` (the shape the 32-bit calibration used),
  found by bisection on the emulated board (raw-paste, as mpremote sends it, fresh heap
  each try), against the ~1,950 lines a real generic v1.22 ESP32 runs (56 KiB heap grown
  to ~110 KiB; the v1.22.2 unix port built 32-bit needs 107 KiB for 2,000 lines).
  The same bisection on the bare 64-bit interpreter with the old set-up (-X heapsize=164K:
  112 KiB for the program + 52 for the runtime) shows what the scaling fixed.
* Boot-time ``gc.mem_free()``/``gc.mem_alloc()`` on the emulated board, against the real
  v1.22 board's (its first heap area of 56 KiB, 2-5 KB live at boot) and the interpreter's
  raw 64-bit figures behind them.
* Boot time: EN reset until the friendly prompt, median (must stay under 100 ms).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import serial
from mpremote.transport import TransportExecError
from mpremote.transport_serial import SerialTransport

from harness.deadline import Deadline
from harness.emulator import EmulatedBoard
from harness.emulator.interpreter import executable

# A real generic v1.22 board (no PSRAM) starts with a 56 KiB heap and grows it to about
# 112 KB (micropython PR #13219): about 1,950 such lines, at 32-bit's 53 KiB per 1,000.
REAL_V122_LINES = 1950
REAL_V122_BOOT_FREE = 56 * 1024 - 3 * 1024  # first area 56 KiB, ~3 KB live at boot


def script(lines: int) -> str:
    return "x = 0\ni = 1\n" + "x += i\n" * lines + "print('ran', x)\n"


def largest(fits: Callable[[int], bool], low: int = 100, high: int = 8000) -> int:
    """The largest N with fits(N), by bisection (fits is monotone)."""
    while high - low > 10:
        middle = (low + high) // 2
        if fits(middle):
            low = middle
        else:
            high = middle
    return low


def board_fits(board: EmulatedBoard) -> Callable[[int], bool]:
    transport = SerialTransport(board.port)

    def fits(lines: int) -> bool:
        transport.enter_raw_repl(soft_reset=True)  # a fresh interpreter heap each try
        try:
            out = transport.exec(script(lines))
        except TransportExecError as exc:
            if "MemoryError" in exc.error_output:
                return False
            raise
        finally:
            transport.exit_raw_repl()
        return bytes(out).startswith(b"ran ")

    return fits


def bare_fits(folder: Path, heap_kib: int) -> Callable[[int], bool]:
    def fits(lines: int) -> bool:
        path = folder / f"lines{lines}.py"
        path.write_text(script(lines))
        done = subprocess.run([str(executable()), "-X", f"heapsize={heap_kib}K", str(path)],
                              capture_output=True, text=True, check=False)
        return done.returncode == 0 and done.stdout.startswith("ran ")

    return fits


def boot_memory(board: EmulatedBoard) -> tuple[int, int, int, int]:
    transport = SerialTransport(board.port)
    try:
        transport.enter_raw_repl(soft_reset=True)
        out = transport.exec("import gc, _board\ngc.collect()\nreal = _board.real['gc']\n"
                             "print(gc.mem_free(), gc.mem_alloc(), real.mem_free(), "
                             "real.mem_alloc())")
        transport.exit_raw_repl()
    finally:
        transport.close()
    free, alloc, raw_free, raw_alloc = (int(v) for v in out.split())
    return free, alloc, raw_free, raw_alloc


def boot_times(board: EmulatedBoard, runs: int) -> list[float]:
    samples = []
    port = serial.Serial(board.port, timeout=0.01)
    try:
        for _ in range(runs):
            port.reset_input_buffer()
            began = time.perf_counter()
            board.hard_reset()
            deadline, seen = Deadline(10.0, "the prompt after EN"), b""
            while not seen.endswith(b">>> "):
                if deadline.expired:
                    raise deadline.fail(repr(seen[-200:]))
                seen += port.read(max(1, port.in_waiting))
            samples.append(time.perf_counter() - began)
    finally:
        port.close()
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer boot-time rounds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-board-") as tmp:
        root = Path(tmp)
        with EmulatedBoard(root / "flash", profile="v1.22") as board:
            emulated = largest(board_fits(board))
            free, alloc, raw_free, raw_alloc = boot_memory(board)
            boots = boot_times(board, 5 if args.quick else 21)
        bare = largest(bare_fits(root, 112 + 52))
    print("largest script of N lines `x += i` (v1.22):")
    print(f"  emulated board          {emulated:5d} lines   ratio to the real board "
          f"{emulated / REAL_V122_LINES:.2f}")
    print(f"  real ESP32 (32-bit)     {REAL_V122_LINES:5d} lines")
    print(f"  bare 64-bit, old set-up {bare:5d} lines   ratio {bare / REAL_V122_LINES:.2f}")
    print("boot-time heap (v1.22):")
    print(f"  emulated gc.mem_free() {free} B, gc.mem_alloc() {alloc} B; real board's first "
          f"area ~{REAL_V122_BOOT_FREE} B free (ratio {free / REAL_V122_BOOT_FREE:.2f})")
    print(f"  behind it, 64-bit: free {raw_free} B, allocated {raw_alloc} B (the runtime's "
          "own memory and its locked reserve, kept out of the program's budget)")
    print(f"boot time (EN -> prompt): median {statistics.median(boots) * 1000:.1f} ms over "
          f"{len(boots)} resets (limit 100 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
