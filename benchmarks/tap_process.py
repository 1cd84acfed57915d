"""One wire tap in a process of its own, for ``bench_faults.py``.

The ``harness`` package it imports is the one under ROOT (a snapshot of an older commit, or
this checkout), so an old tap runs with the harness modules it was written against.

Run: ``python -I benchmarks/tap_process.py ROOT UPSTREAM_HOST UPSTREAM_PORT``. It prints
the tap's port on one line, then forwards until its stdin ends (the owner closed it or died).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    root, host, port = Path(argv[0]).resolve(), argv[1], int(argv[2])
    sys.path.insert(0, str(root))  # ahead of the installed (editable) harness
    module = importlib.import_module("harness.broker.tap")
    source = Path(str(module.__file__)).resolve()
    if root not in source.parents:
        print(f"error: harness.broker.tap came from {source}, not from {root}", flush=True)
        return 1
    tap = module.Tap((host, port)).start()
    try:
        print(tap.port, flush=True)
        sys.stdin.read()
    finally:
        tap.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
