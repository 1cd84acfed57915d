"""Many boards at once (issue 15), measured side by side in one run, printed as medians.

* ``hil``: wall time of the HIL suite on emulated boards at ``-n 1`` (no xdist), ``-n 2``
  and ``-n 4``, rounds interleaved so machine load hits every variant alike; ratios to -n 1.
* ``labgrid``: the same suite through a labgrid place of a local farm vs straight at the
  same board's RFC2217 URL, and the acquire + release overhead per session.
* ``broker``: the most emulated boards one broker host serves at once with 0 failures
  (each board runs the messaging scenario against one shared broker).
* ``project``: wall time of ``./hil test`` (unit + HIL suites, in parallel as CI runs them).

Run: ``python benchmarks/bench_parallel.py [hil] [labgrid] [broker] [project] [--rounds 3]``
(no names: hil, labgrid and broker).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HIL = [sys.executable, "-m", "pytest", "tests/hil", "-m", "hil", "-q", "-p", "no:cacheprovider"]


def timed(command: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed (exit {done.returncode}):\n"
                         f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return elapsed


def side_by_side(variants: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, run in variants.items():
            times[name].append(run())
    return {name: statistics.median(values) for name, values in times.items()}


def bench_hil(rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-par-") as tmp:
        def suite(workers: int) -> Callable[[], float]:
            extra = ["-n", str(workers)] if workers > 1 else []
            return lambda: timed([*HIL, *extra, "--hil-results", f"{tmp}/n{workers}"])

        medians = side_by_side({f"-n {n}": suite(n) for n in (1, 2, 4)}, rounds)
    base = medians["-n 1"]
    for name, value in medians.items():
        print(f"HIL suite (emu) {name}: median {value:.1f} s over {rounds} "
              f"({value / base:.2f}x of -n 1)")


def bench_labgrid(rounds: int) -> None:
    from harness.farm import Farm

    with tempfile.TemporaryDirectory(prefix="bench-lg-") as tmp, \
            Farm(Path(tmp) / "farm", boards=1) as farm:
        env = {**os.environ, **farm.client_env(), "HIL_WIFI_SSID": "hil-ap",
               "HIL_WIFI_PASSWORD": "hil-password"}
        common = ["--hil-broker-host", "127.0.0.1", "--hil-broker-name", "broker.test"]
        url = farm.boards[0].url
        place = farm.boards[0].place
        medians = side_by_side({
            "RFC2217 URL": lambda: timed([*HIL, "--hil-device", url, *common,
                                          "--hil-results", f"{tmp}/url"], env),
            "labgrid place": lambda: timed([*HIL, "--hil-device", f"labgrid:{place}", *common,
                                            "--hil-results", f"{tmp}/lg"], env),
        }, rounds)
        overheads = [farm.time_acquire_release(place) for _ in range(max(5, rounds))]
    base = medians["RFC2217 URL"]
    for name, value in medians.items():
        print(f"HIL suite through {name}: median {value:.1f} s over {rounds} "
              f"({value / base:.2f}x of the URL)")
    print(f"labgrid reserve + acquire + release per session: median "
          f"{statistics.median(overheads) * 1000:.0f} ms over {len(overheads)}")


def bench_broker(limit: int) -> None:
    from harness.farm.capacity import most_boards_served

    best, detail = most_boards_served(limit)
    print(f"most concurrent emulated boards one broker host served with 0 failures: {best} "
          f"(tried up to {limit}; {detail})")


def bench_project(rounds: int) -> None:
    medians = side_by_side({"./hil test": lambda: timed(["./hil", "test", "-q",
                                                          "-p", "no:cacheprovider"])}, rounds)
    print(f"./hil test: median {medians['./hil test']:.0f} s over {rounds}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", nargs="*", choices=["hil", "labgrid", "broker", "project"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-boards", type=int, default=16)
    args = parser.parse_args()
    chosen = args.what or ["hil", "labgrid", "broker"]
    if "hil" in chosen:
        bench_hil(args.rounds)
    if "labgrid" in chosen:
        bench_labgrid(args.rounds)
    if "broker" in chosen:
        bench_broker(args.max_boards)
    if "project" in chosen:
        bench_project(max(1, args.rounds // 3))


if __name__ == "__main__":
    main()
