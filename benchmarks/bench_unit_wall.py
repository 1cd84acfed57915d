"""The project's own test run, wall and CPU time, this tree against an earlier checkout,
side by side in one run (rounds interleaved, so machine load hits both alike): medians
and ratios (issues 14 and 15).

* ``sharpness``: ``pytest tests/unit/test_suite_sharpness.py`` (the HIL suite once per
  mutant, the control and the seed program; the critical path of the unit run);
* ``project``: README's test command, ``./hil test`` (unit + HIL suites under xdist);
* ``unit``: ``pytest -m unit -n 0`` (the unit suite without parallelism).

CPU is the children's user + system time (every process the run waited for: pytest,
its workers, the emulated boards' interpreters, the brokers). Both trees run with this
tree's interpreter and packages; ``--against`` is a checkout (``git worktree add --detach
DIR REV``) of the revision to compare with. Without it only this tree is timed.

Run: ``python benchmarks/bench_unit_wall.py [sharpness] [project] [unit] [--rounds 3]
[--against DIR]`` (no names: sharpness).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMANDS = {
    "sharpness": ["-m", "pytest", "tests/unit/test_suite_sharpness.py", "-q",
                  "-p", "no:cacheprovider"],
    # ./hil test's command, with its default of 4 workers
    "project": ["-m", "pytest", "-m", "unit or hil", "-n", "4", "-q", "-p", "no:cacheprovider"],
    "unit": ["-m", "pytest", "-m", "unit", "-n", "0", "-q", "-p", "no:cacheprovider"],
}
FAILED: list[str] = []


def timed(tree: Path, what: str) -> tuple[float, float]:
    """(wall s, CPU s) of one run of ``what`` in ``tree``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, *COMMANDS[what]], cwd=tree, capture_output=True,
                          text=True, check=False, env={**os.environ, "PYTHONPATH": str(tree)})
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:  # timed all the same; a red run is reported, not hidden
        lines = done.stdout.strip().splitlines() or ["?"]
        failed = [line for line in lines if line.startswith(("FAILED ", "ERROR "))]
        FAILED.append(f"{what} in {tree}: exit {done.returncode}: {lines[-1]}"
                      + "".join(f"\n  {line}" for line in failed))
    return wall, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", nargs="*", choices=sorted(COMMANDS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--against", type=Path, help="a checkout of the revision to compare")
    args = parser.parse_args()
    trees = {"this tree": REPO}
    if args.against is not None:
        trees["against"] = args.against.resolve()
    for what in args.what or ["sharpness"]:
        walls: dict[str, list[float]] = {name: [] for name in trees}
        cpus: dict[str, list[float]] = {name: [] for name in trees}
        for _ in range(args.rounds):
            for name, tree in trees.items():
                wall, cpu = timed(tree, what)
                walls[name].append(wall)
                cpus[name].append(cpu)
        for name in trees:
            wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
            print(f"{what} ({name}): median wall {wall:.0f} s, CPU {cpu:.0f} s "
                  f"({cpu / wall:.2f} cores) over {args.rounds}")
        if "against" in trees:
            ratios = [a / b for a, b in zip(walls["this tree"], walls["against"], strict=True)]
            print(f"{what}: this tree / against, wall: median {statistics.median(ratios):.2f}x")
    for failure in FAILED:
        print(f"FAILED RUN: {failure}")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
