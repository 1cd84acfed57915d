"""The emulated ESP32's heap in the real board's terms.

The interpreter is the 64-bit unix port; the ESP32 is 32-bit. Built both ways from the
v1.22.2 source on this machine, the same script needs 1.4-1.6x the heap on 64-bit (a
script of N lines of ``x += i``: 500 lines 29 vs 40 KiB, 1,000: 53 vs 83, 2,000: 107 vs
158, 3,000: 155 vs 221; ``benchmarks/bench_board.py`` measures the result). So the program gets
``board heap x WORD_SCALE`` of 64-bit heap, and ``gc.mem_free()``/``gc.mem_alloc()``
report 64-bit bytes divided by WORD_SCALE.

The emulator's own runtime (the REPL, the board modules, umqtt: frozen bytecode in flash
on the chip, costing it 2-5 KB of heap) lives in the same interpreter heap, ~100 KB at boot.
It gets RUNTIME_RESERVE_KIB on top, and at boot whatever of that reserve the runtime does
not use is locked away (one ballast block), so the program can use exactly its budget:
a program fits on the emulated board if and only if it fits in the real board's heap.

``benchmarks/bench_heap.py`` shows the calibration: the largest script of that shape the
emulated board runs, against the ~1,950 lines a real v1.22 board runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# 64-bit bytes per 32-bit byte of heap at the size of a real board's heap: the measured
# need at 2,000 lines (158 / 107 KiB) and 1,000 lines (83 / 53), averaged to the budget.
WORD_SCALE = 1.48
# Heap the emulator's runtime may use for itself (live ~100 KB at boot with the line
# editor, 64-bit bytes); what it does not use is locked away at boot.
RUNTIME_RESERVE_KIB = 120
# What the ESP32 firmware itself keeps live in its heap at boot (32-bit bytes).
ESP32_BOOT_ALLOC = 3 * 1024


@dataclass(frozen=True)
class HeapPlan:
    """One board's heap: the 32-bit figures it reports and the 64-bit heap behind them."""

    board_bytes: int  # the program's heap on the real board (all areas), 32-bit bytes
    initial_bytes: int  # the first heap area the firmware allocates (mem_free at boot)

    @property
    def program_bytes_64(self) -> int:
        """64-bit heap the program may use on the emulated board."""
        return math.ceil((self.board_bytes - ESP32_BOOT_ALLOC) * WORD_SCALE)

    @property
    def interpreter_kib(self) -> int:
        """``-X heapsize`` for the interpreter: the program's part plus the runtime's."""
        # gc's own tables take ~3% of the pool; the ballast absorbs what is left over.
        return math.ceil(self.program_bytes_64 * 1.04 / 1024) + RUNTIME_RESERVE_KIB

    def to_board(self) -> dict[str, float | int]:
        """What the board's gc module reads (mpy/_board_gc.py)."""
        return {"scale": WORD_SCALE, "program_64": self.program_bytes_64,
                "total": self.board_bytes, "initial": self.initial_bytes,
                "boot_alloc": ESP32_BOOT_ALLOC}
