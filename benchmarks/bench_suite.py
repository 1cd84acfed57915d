"""The suites' wall time against their floors (issue 14), measured in one run.

* HIL suite at ``-n 1`` (one emulated board, one pytest-xdist worker) against its device
  floor: the sum, over the scenario runs the suite made, of each scenario's designed waits
  (Wi-Fi association delay in whole seconds, as the guide polls + CONNACK hold + publishes
  x publish interval; a scenario with injected faults counts the device time its run took,
  from its serial log). Target <= 1.5x. The same suite without xdist is timed too, as CI
  runs it, and both are also given against the device's measured time in every run.
* with ``--unit``: the unit suite's wall time (``pytest -m unit``, no parallelism).

Run: ``python benchmarks/bench_suite.py [--rounds 3] [--unit]``
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness.hil import scenario as scenarios  # noqa: E402

RUN_FOLDER = re.compile(r"^\d+-(?P<name>.+)$")


def device_time_s(run_folder: Path) -> float | None:
    """How long the device worked in one run, from its serial log: the first line after
    the run's hard reset to the harness's stop mark (the evidence that ended the wait)."""
    log = run_folder / "serial.log"
    if not log.exists():
        return None
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    resets = [i for i, line in enumerate(lines) if line.endswith("[harness] hard reset")]
    if not resets:
        return None
    after = lines[resets[-1] + 1:]
    stops = [line for line in after if "[harness] the harness stops the program" in line]
    if not after or not stops:
        return None
    return _seconds(stops[0]) - _seconds(after[0])


def _seconds(line: str) -> float:
    hours, minutes, seconds = line.split(" ", 1)[0].split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


@dataclass
class Floor:
    designed_s: float = 0.0  # designed waits; a fault scenario counts its device time
    device_s: float = 0.0  # every run's measured device time
    runs: list[str] = field(default_factory=list)


def floor_of(results: Path) -> Floor:
    """The device floor of the runs recorded under ``results`` (every session folder).
    A scenario with injected faults (R1-R6) waits for the faults and the device's
    reconnect backoff; its designed wait is the device time its run took."""
    known = scenarios.by_name()
    floor = Floor()
    # runs/<session>/NN-<scenario>, or runs/<session>/<xdist worker>/NN-<scenario>
    for log in sorted((results / "runs").rglob("serial.log")):
        folder = log.parent
        match = RUN_FOLDER.match(folder.name)
        if not (match and match["name"] in known):
            continue
        scenario = known[match["name"]]
        device = device_time_s(folder) or 0.0
        floor.device_s += device
        floor.designed_s += device if scenario.faults else scenario.designed_wait_s()
        floor.runs.append(scenario.name)
    return floor


def timed_pytest(marker: str, results: Path, *extra: str) -> tuple[float, int]:
    started = time.perf_counter()
    code = subprocess.call([sys.executable, "-m", "pytest", "-m", marker, "-q",
                            "-p", "no:cacheprovider", f"--hil-results={results}", *extra],
                           cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started, code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--unit", action="store_true", help="also time the unit suite")
    args = parser.parse_args()
    walls: dict[str, list[float]] = {"-n 1": [], "no xdist": []}
    floors: list[Floor] = []
    failed = False
    with tempfile.TemporaryDirectory(prefix="bench-suite-") as tmp:
        for index in range(args.rounds):
            for label, extra in (("-n 1", ("-n", "1")), ("no xdist", ())):
                results = Path(tmp) / f"{index}-{label.replace(' ', '')}"
                wall, code = timed_pytest("hil", results, *extra)
                failed |= code != 0
                walls[label].append(wall)
                floors.append(floor_of(results))
        designed = statistics.median(f.designed_s for f in floors)
        device = statistics.median(f.device_s for f in floors)
        print(f"HIL suite: {len(floors[-1].runs)} scenario runs "
              f"({', '.join(floors[-1].runs)})")
        print(f"device floor (designed waits; fault scenarios at their device time): "
              f"{designed:.1f} s; the device's measured time in all runs: {device:.1f} s")
        for label, values in walls.items():
            wall = statistics.median(values)
            print(f"HIL suite {label}: median {wall:.1f} s over {len(values)} "
                  f"(min {min(values):.1f}, max {max(values):.1f}) = "
                  f"{wall / designed:.2f}x the floor (target <= 1.5x), "
                  f"{wall / device:.2f}x the device time")
        if args.unit:
            wall, code = timed_pytest("unit", Path(tmp) / "unit")
            failed |= code != 0
            print(f"unit suite (pytest -m unit, no parallelism): {wall:.0f} s wall "
                  f"(exit {code})")
    if failed:
        print("some pytest run failed: the figures above are not of green runs")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
