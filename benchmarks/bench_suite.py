"""The suites' wall time against their floors (issue 14), measured in one run.

* HIL suite at ``-n 1`` (one emulated board, one pytest-xdist worker) against its device
  floor: the sum, over the scenario runs the suite made, of each scenario's designed waits
  (Wi-Fi association delay + CONNACK hold + publishes x publish interval). Target <= 1.5x.
  The same suite without xdist is timed too, as CI runs it.
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
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness.hil import scenario as scenarios  # noqa: E402
from harness.hil.scenario import Scenario  # noqa: E402

RUN_FOLDER = re.compile(r"^\d+-(?P<name>.+)$")


def designed_wait_s(scenario: Scenario) -> float:
    """What the device itself is made to wait in this scenario: nothing a harness could
    shorten."""
    wait = scenario.wifi_delay + scenario.connack_delay
    if scenario.expect_connect:
        wait += scenario.publishes * scenario.publish_interval
    return wait


def scenarios_by_name() -> dict[str, Scenario]:
    return {value.name: value for value in vars(scenarios).values()
            if isinstance(value, Scenario)}


def floor_of(results: Path) -> tuple[float, list[str]]:
    """The device floor of the runs recorded under ``results`` (every session folder)."""
    known = scenarios_by_name()
    total, names = 0.0, []
    for folder in sorted(results.glob("runs/*/*")):
        match = RUN_FOLDER.match(folder.name)
        if folder.is_dir() and match and match["name"] in known:
            total += designed_wait_s(known[match["name"]])
            names.append(match["name"])
    return total, names


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
    floors: list[float] = []
    failed = False
    with tempfile.TemporaryDirectory(prefix="bench-suite-") as tmp:
        for index in range(args.rounds):
            for label, extra in (("-n 1", ("-n", "1")), ("no xdist", ())):
                results = Path(tmp) / f"{index}-{label.replace(' ', '')}"
                wall, code = timed_pytest("hil", results, *extra)
                failed |= code != 0
                walls[label].append(wall)
                floor, names = floor_of(results)
                floors.append(floor)
        print(f"HIL suite device floor (designed waits of {len(names)} scenario runs: "
              f"{', '.join(names)}): {statistics.median(floors):.1f} s")
        for label, values in walls.items():
            wall = statistics.median(values)
            print(f"HIL suite {label}: median {wall:.1f} s over {len(values)} "
                  f"(min {min(values):.1f}, max {max(values):.1f}) = "
                  f"{wall / statistics.median(floors):.2f}x the floor (target <= 1.5x)")
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
