"""HIL suite figures (issue 5), printed as medians.

* full cycle: deploy unchanged + hard reset + Wi-Fi + TLS connect with SNI + 3 echoes, on
  the emulated board against the embedded broker through the TLS front / tap;
* harness overhead per scenario run: wall time of a run minus the device's own work
  (from its first line after the reset to the last line the run waited for);
* with ``--suites``: wall time of ``pytest -m unit`` and ``pytest -m hil --hil-device emu``.

Run: ``python benchmarks/bench_hil.py [--cycles 5] [--suites]``
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.hil.programs import ContractProgram
from harness.hil.rig import Rig
from harness.hil.scenario import TLS_SNI
from harness.hil.targets import Target, TargetOptions

REPO = Path(__file__).resolve().parents[1]


def bench_cycles(cycles: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-hil-") as tmp:
        program = ContractProgram(REPO / "device_src")
        options = TargetOptions(workdir=Path(tmp) / "session")
        with Target(options) as target:
            target.device.deploy(files=program.program_files())
            rig = Rig(target, program, Path(tmp) / "runs")
            totals, deploys, overheads = [], [], []
            for index in range(cycles):
                scenario = dataclasses.replace(TLS_SNI, name=f"cycle-{index}", publishes=3,
                                               publish_interval=0.05)
                started = time.perf_counter()
                report = target.device.deploy(files=program.program_files())
                deployed = time.perf_counter()
                result = rig.run(scenario)
                totals.append(time.perf_counter() - started)
                deploys.append(deployed - started)
                assert not report.copied, f"deploy copied {report.copied}"
                lines = result.evidence.serial
                device_work = lines[-1].time - lines[0].time if len(lines) > 1 else 0.0
                overheads.append(result.duration_s - device_work)
    print(f"full cycle (deploy unchanged, reset, TLS+SNI connect, 3 echoes): "
          f"median {statistics.median(totals) * 1000:.0f} ms over {cycles} "
          f"(min {min(totals) * 1000:.0f}, max {max(totals) * 1000:.0f})")
    print(f"  of which unchanged deploy: median {statistics.median(deploys) * 1000:.0f} ms")
    print(f"harness overhead per scenario run (run wall time - device's own work): "
          f"median {statistics.median(overheads) * 1000:.0f} ms")


def bench_suites() -> None:
    for marker, extra in (("unit", []), ("hil", ["--hil-device", "emu"])):
        with tempfile.TemporaryDirectory(prefix="bench-suite-") as tmp:
            started = time.perf_counter()
            code = subprocess.call([sys.executable, "-m", "pytest", "-m", marker, "-q",
                                    "-p", "no:cacheprovider", f"--hil-results={tmp}", *extra],
                                   cwd=REPO, stdout=subprocess.DEVNULL)
            print(f"pytest -m {marker} {' '.join(extra)}: {time.perf_counter() - started:.1f} s "
                  f"wall (exit {code})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--suites", action="store_true", help="also time the pytest suites")
    args = parser.parse_args()
    bench_cycles(args.cycles)
    if args.suites:
        bench_suites()


if __name__ == "__main__":
    main()
