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
``--workers 4,6`` times ``project`` at each of those xdist worker counts instead of
``./hil test``'s default, side by side (ratios to the first). ``--common-tests`` runs, in
both trees, only the unit tests both have (by node id): a like-for-like comparison with a
revision whose suite was smaller (issue 14 compares with the suite it was filed against,
``git worktree add --detach DIR 77aaed4``).

Run: ``python benchmarks/bench_unit_wall.py [sharpness] [project] [unit] [--rounds 3]
[--against DIR [--common-tests]] [--workers N,N...]`` (no names: sharpness).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _project_workers() -> int:
    """./hil test's default worker count, read from ./hil, its one home."""
    found = re.search(r"HIL_TEST_WORKERS:-(\d+)", (REPO / "hil").read_text())
    if found is None:
        raise SystemExit("./hil no longer says HIL_TEST_WORKERS:-N; update this benchmark")
    return int(found[1])


PROJECT_WORKERS = _project_workers()
COMMANDS = {
    "sharpness": ["-m", "pytest", "tests/unit/test_suite_sharpness.py", "-q",
                  "-p", "no:cacheprovider"],
    # ./hil test's command; its -n is PROJECT_WORKERS or --workers
    "project": ["-m", "pytest", "-m", "unit or hil", "-q", "-p", "no:cacheprovider"],
    "unit": ["-m", "pytest", "-m", "unit", "-n", "0", "-q", "-p", "no:cacheprovider"],
}
FAILED: list[str] = []


def _env(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree)}


def unit_test_ids(tree: Path) -> set[str]:
    """The node ids of ``tree``'s unit suite, as pytest collects them there."""
    done = subprocess.run([sys.executable, "-m", "pytest", "-m", "unit", "--collect-only",
                           "-q", "-p", "no:cacheprovider"], cwd=tree, capture_output=True,
                          text=True, check=False, env=_env(tree))
    ids = {line for line in done.stdout.splitlines() if "::" in line}
    if not ids:
        raise SystemExit(f"no unit tests collected in {tree}: {done.stdout[-300:]}"
                         f"{done.stderr[-300:]}")
    return ids


def timed(tree: Path, what: str, workers: int | None = None,
          args_file: Path | None = None) -> tuple[float, float]:
    """(wall s, CPU s) of one run of ``what`` in ``tree`` (``workers``: its -n;
    ``args_file``: the tests to run, one node id a line, instead of the whole selection)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    command = [sys.executable, *COMMANDS[what]]
    if what == "project":
        command += ["-n", str(workers or PROJECT_WORKERS)]
    if args_file is not None:
        command.append(f"@{args_file}")  # pytest reads node ids from a file
    done = subprocess.run(command, cwd=tree, capture_output=True, text=True, check=False,
                          env=_env(tree))
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:  # timed all the same; a red run is reported, not hidden
        lines = done.stdout.strip().splitlines() or ["?"]
        failed = [line for line in lines if line.startswith(("FAILED ", "ERROR "))]
        FAILED.append(f"{' '.join(command[1:])} in {tree}: exit {done.returncode}: {lines[-1]}"
                      + "".join(f"\n  {line}" for line in failed))
    return wall, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", nargs="*", choices=sorted(COMMANDS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--against", type=Path, help="a checkout of the revision to compare")
    parser.add_argument("--workers", type=lambda text: [int(n) for n in text.split(",")],
                        metavar="N,N...", help="project: time it at these -n values")
    parser.add_argument("--common-tests", action="store_true",
                        help="unit: only the tests both trees have (needs --against)")
    args = parser.parse_args()
    trees = {"this tree": REPO}
    if args.against is not None:
        trees["against"] = args.against.resolve()
    if args.common_tests and (args.against is None or set(args.what) != {"unit"}):
        parser.error("--common-tests compares the unit suite with --against DIR")
    with tempfile.TemporaryDirectory(prefix="bench-unit-") as scratch:
        common: Path | None = None
        if args.common_tests:
            ids = unit_test_ids(REPO) & unit_test_ids(trees["against"])
            common = Path(scratch) / "common-tests.txt"
            common.write_text("".join(f"{node}\n" for node in sorted(ids)), encoding="utf-8")
            print(f"unit: the {len(ids)} tests both trees have")
        compare(args.what or ["sharpness"], trees, args.rounds, args.workers, common)
    for failure in FAILED:
        print(f"FAILED RUN: {failure}")
    return 1 if FAILED else 0


def compare(names: list[str], trees: dict[str, Path], rounds: int,
            workers: list[int] | None, common: Path | None) -> None:
    """Time each of ``names`` in every tree, rounds interleaved; print medians and ratios."""
    for what in names:
        counts: list[int | None] = list(workers) if what == "project" and workers else [None]
        # (label, tree, workers); ratios are to the first
        variants = [(name if count is None else f"{name}, -n {count}", tree, count)
                    for name, tree in trees.items() for count in counts]
        walls: dict[str, list[float]] = {label: [] for label, _, _ in variants}
        cpus: dict[str, list[float]] = {label: [] for label, _, _ in variants}
        for _ in range(rounds):
            for label, tree, count in variants:
                wall, cpu = timed(tree, what, count, common)
                walls[label].append(wall)
                cpus[label].append(cpu)
        first = variants[0][0]
        for label, _, _ in variants:
            wall, cpu = statistics.median(walls[label]), statistics.median(cpus[label])
            print(f"{what} ({label}): median wall {wall:.0f} s, CPU {cpu:.0f} s "
                  f"({cpu / wall:.2f} cores) over {rounds}")
            if label != first:
                ratios = [a / b for a, b in zip(walls[label], walls[first], strict=True)]
                print(f"{what}: {label} / {first}, wall: median "
                      f"{statistics.median(ratios):.2f}x")


if __name__ == "__main__":
    sys.exit(main())
