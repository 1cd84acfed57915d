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
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FAILED_RUNS: list[str] = []
HIL = [sys.executable, "-m", "pytest", "tests/hil", "-m", "hil", "-q", "-p", "no:cacheprovider"]


def timed(command: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:  # timed all the same; a red run is reported, not hidden
        FAILED_RUNS.append(f"{' '.join(command[3:8])}… exit {done.returncode}: "
                           f"{(done.stdout.strip().splitlines() or ['?'])[-1]}")
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


MESSAGES = 5


def boards_echo(count: int, workdir: Path) -> list[str]:
    """``count`` emulated boards run the device program against one broker at once; each
    must echo MESSAGES messages in order. Returns the failures (empty: all served)."""
    from concurrent.futures import ThreadPoolExecutor

    from harness.broker import open_broker
    from harness.deadline import Deadline
    from harness.device.device import Device
    from harness.emulator import EmulatedBoard
    from harness.errors import HarnessError
    from harness.hil.programs import ContractProgram

    program = ContractProgram(REPO / "device_src")
    broker = open_broker("amqtt", users={"emqx": "public"}, workdir=workdir / "broker",
                         host="127.0.0.1")
    broker.start(timeout=15.0)
    logging.getLogger().setLevel(logging.WARNING)  # the broker logs every PUBLISH
    boards: list[EmulatedBoard] = []
    try:
        for index in range(count):
            flash = workdir / f"board-{index}"
            flash.mkdir(parents=True)
            board = EmulatedBoard(flash, hosts={"broker.test": "127.0.0.1"})
            boards.append(board)
            board.start(timeout=30.0)

        def one(index: int) -> str | None:
            settings = {"server": "broker.test", "port": broker.port, "user": "emqx",
                        "password": "public", "topic": f"bench/{index}", "wifi_ssid": "hil-ap",
                        "wifi_password": "hil-password", "publish_interval": 0.3}
            board = boards[index]
            with Device(board.port, hard_reset=lambda _line: board.hard_reset()) as device:
                device.deploy(files={**program.program_files(),
                                     **program.run_files(settings, b"")})
                mark = device.hard_reset()
                def echoes() -> list[str]:
                    return [line for line in device.log.text(mark).splitlines()
                            if line.startswith("Received")]

                try:
                    Deadline(60.0, f"{MESSAGES} echoes").poll(
                        lambda: True if len(echoes()) >= MESSAGES else None, interval=0.2)
                except HarnessError as exc:  # a failure is the measurement
                    return f"board {index}: {str(exc).splitlines()[0][:160]}"
                received = echoes()[:MESSAGES]
                wanted = [f"Received '{{\"msg\": {n}}}' from topic 'bench/{index}'"
                          for n in range(MESSAGES)]
                if received != wanted:
                    return f"board {index}: echoes out of order or foreign: {received[:2]}"
                return None

        with ThreadPoolExecutor(max_workers=count) as pool:
            return [f for f in pool.map(one, range(count)) if f is not None]
    finally:
        for board in boards:
            board.stop()
        broker.stop()


def bench_broker(limit: int) -> None:
    best, tried, detail = 0, 0, "all served"
    count = 2
    while count <= limit:
        # Each size in a process of its own: a clean start, and nothing one size leaves
        # running can skew the next.
        started = time.perf_counter()
        done = subprocess.run([sys.executable, __file__, "broker", "--boards-echo", str(count)],
                              cwd=REPO, capture_output=True, text=True, check=False)
        took = time.perf_counter() - started
        lines = [line for line in done.stdout.splitlines() if line.startswith("failure: ")]
        failures = [line.removeprefix("failure: ") for line in lines]
        if done.returncode != 0 and not failures:
            last = (done.stderr.strip().splitlines() or ["?"])[-1]
            failures = [f"exit {done.returncode}: {last}"]
        tried = count
        print(f"  {count} boards on one broker: {len(failures)} failures ({took:.1f} s)",
              flush=True)
        if failures:
            detail = f"at {count}: {failures[0]}"
            break
        best = count
        count *= 2
    print(f"most concurrent emulated boards one broker host served with 0 failures: {best} "
          f"(tried up to {tried}; {detail})")


def bench_project(rounds: int) -> None:
    medians = side_by_side({"./hil test": lambda: timed(["./hil", "test", "-q",
                                                          "-p", "no:cacheprovider"])}, rounds)
    print(f"./hil test: median {medians['./hil test']:.0f} s over {rounds}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", nargs="*", choices=["hil", "labgrid", "broker", "project"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-boards", type=int, default=16)
    parser.add_argument("--boards-echo", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.boards_echo:
        with tempfile.TemporaryDirectory(prefix="bench-cap-") as tmp:
            for failure in boards_echo(args.boards_echo, Path(tmp)):
                print(f"failure: {failure}", flush=True)
        return
    chosen = args.what or ["hil", "labgrid", "broker"]
    if "hil" in chosen:
        bench_hil(args.rounds)
    if "labgrid" in chosen:
        bench_labgrid(args.rounds)
    if "broker" in chosen:
        bench_broker(args.max_boards)
    if "project" in chosen:
        bench_project(max(1, args.rounds // 3))
    for failure in FAILED_RUNS:
        print(f"note: a timed run failed: {failure}")


if __name__ == "__main__":
    main()
