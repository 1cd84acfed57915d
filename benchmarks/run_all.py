"""Run every benchmark in this folder, one after another, printing their figures.

``python benchmarks/run_all.py`` (add ``--quick`` for fewer rounds where a benchmark
supports it). Each benchmark is also runnable on its own.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUICK_ARGS = {"bench_broker.py": ["--quick"], "bench_emulator.py": ["--quick"],
              "bench_serial.py": ["--quick"],
              "bench_device.py": ["300"], "bench_report.py": ["--repeat", "2"],
              "bench_hardware.py": ["--rounds", "2"], "bench_hil.py": ["--cycles", "3"],
              "bench_soak.py": ["--counts", "10", "100", "--repeat", "1"],
              "bench_suite.py": ["--rounds", "1"],
              "bench_faults.py": ["--echoes", "100", "--rounds", "3", "--keepalives", "2"]}


def main() -> int:
    quick = "--quick" in sys.argv[1:]
    failed = []
    for script in sorted(HERE.glob("bench_*.py")):
        print(f"\n=== {script.name}", flush=True)
        args = QUICK_ARGS.get(script.name, []) if quick else []
        if subprocess.call([sys.executable, str(script), *args], cwd=HERE.parent) != 0:
            failed.append(script.name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
