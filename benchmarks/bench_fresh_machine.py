"""A new user's first run, step by step, and `./hil test` idle versus both cores busy.

Run: .venv/bin/python benchmarks/bench_fresh_machine.py [--marker "unit or hil"] [--repeat 1]
         [-- more pytest arguments, e.g. --deselect tests/unit/test_suite_sharpness.py]

1. Fresh clone of HEAD, `env -i` with a minimal PATH, an empty HOME and TMPDIR (as
   `.ci/run` does): `./hil --help` creates the virtualenv, pip-installs, fetches umqtt;
   the durations `./hil` prints for each step are collected.
2. In that clone, `./hil test -m MARKER` (default: everything CI runs) ``--repeat`` times
   idle, then as often with two busy-loop processes keeping both cores busy.

Prints the step times, the median suite wall times, their ratio and each run's pytest
summary line. The machine's load average is printed too: "idle" means no load of ours.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness import lifetime  # noqa: E402

STEPS = {"virtualenv": r"virtualenv ready in ([\d.]+) s",
         "pip install": r"dependencies installed in ([\d.]+) s",
         "umqtt fetch": r"umqtt.simple ready in ([\d.]+) s",
         "whole first run": r"set up in ([\d.]+) s"}
SUMMARY = re.compile(r"(passed|failed|error|skipped|deselected).* in [\d.]+s")


def base_python() -> str:
    """The interpreter this virtualenv was made from (a new user's python3)."""
    candidate = Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    return str(candidate if candidate.is_file() else Path(sys.base_prefix) / "bin" / "python3")


def scrubbed_env(work: Path, python: str) -> dict[str, str]:
    return {"PATH": f"{Path(python).parent}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(work / "home"), "TMPDIR": str(work / "tmp")}


def run_suite(clone: Path, env: dict[str, str], marker: str,
              extra: list[str]) -> tuple[float, str, int]:
    began = time.monotonic()
    done = lifetime.run(["./hil", "test", "-m", marker, "-q", "-p", "no:cacheprovider", *extra],
                        cwd=clone, env=env, timeout=3600, check=False, text=True)
    wall = time.monotonic() - began
    lines = [line for line in done.stdout.splitlines() if SUMMARY.search(line)]
    for line in done.stdout.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            print(f"    {line[:160]}", flush=True)
    return wall, (lines[-1].strip("= ") if lines else "(no summary)"), done.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--marker", default="unit or hil")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments (after --)")
    args = parser.parse_args()
    python = base_python()
    print(f"bench_fresh_machine: python {python}, marker {args.marker!r}, "
          f"repeat {args.repeat}, extra {args.pytest_args}, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    work = lifetime.temp_dir("hil-bench-fresh-")  # removed even if this script is killed
    try:
        (work / "home").mkdir()
        (work / "tmp").mkdir()
        clone = work / "clone"
        lifetime.run(["git", "clone", "--quiet", str(REPO), str(clone)], timeout=120)
        env = scrubbed_env(work, python)
        first = lifetime.run(["./hil", "--help"], cwd=clone, env=env, timeout=1800, text=True)
        print("first run (./hil in a fresh clone, empty HOME):")
        for step, pattern in STEPS.items():
            found = re.search(pattern, first.stdout)
            print(f"  {step:<16} {found[1] if found else '?':>7} s")
        results: dict[str, list[tuple[float, str, int]]] = {"idle": [], "both cores busy": []}
        for label in results:
            hogs = [] if label == "idle" else [
                lifetime.spawn([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
            try:
                for _ in range(args.repeat):
                    results[label].append(run_suite(clone, env, args.marker, args.pytest_args))
                    wall, summary, code = results[label][-1]
                    print(f"  ./hil test [{label}]: {wall:7.1f} s  exit {code}  {summary}  "
                          f"(load average {os.getloadavg()[0]:.1f})", flush=True)
            finally:
                for hog in hogs:
                    lifetime.stop(hog, grace=1)
    finally:
        lifetime.remove_dir(work)
    idle = statistics.median(wall for wall, _, _ in results["idle"])
    busy = statistics.median(wall for wall, _, _ in results["both cores busy"])
    print(f"./hil test -m {args.marker!r}: median idle {idle:.1f} s, both cores busy "
          f"{busy:.1f} s, ratio {busy / idle:.2f}")
    failed = [code for runs in results.values() for _, _, code in runs if code != 0]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
