"""Fault figures (issue 16), printed as medians, side by side in one run.

* tap overhead: the echo round trip (paho publish -> broker -> back to the same client)
  through today's fault-capable tap, through the tap as it was before faults, and straight
  to the broker; ratio new/old, target <= 1.10. Each tap serves from a process of its own
  (``tap_process.py``): today's from this checkout, the old one from a snapshot of the whole
  ``harness/`` package at BASELINE (``git archive``, in a temp folder removed at the end),
  so it runs with the modules it was written against. Same broker, client and payloads;
  in each round the paths take turns echo by echo (the order rotating), after a warm-up of
  a tenth as many echoes that is not counted; the ratio is the median of the rounds' ratios;
* black-hole detection: on the emulated board, device_src with ``reconnect`` and a
  keepalive k; after the 3rd echo the connection becomes a black hole; the time until the
  device gives it up (as R1 measures it on the wire) against R1's bound 1.5 k + interval.

Run: ``python benchmarks/bench_faults.py [--echoes 400] [--rounds 5] [--keepalives 2 4]``
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import select
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from harness import lifetime
from harness.broker import AmqttBroker, Observer
from harness.checks.resilience import DETECTION_SLACK_S, check_silent_loss_detected
from harness.deadline import Deadline
from harness.env import HarnessEnv
from harness.errors import HarnessError
from harness.hil.programs import ContractProgram
from harness.hil.rig import Rig
from harness.hil.scenario import R_BLACK_HOLE
from harness.hil.targets import TargetOptions

REPO = Path(__file__).resolve().parents[1]
TAP_PROCESS = Path(__file__).with_name("tap_process.py")
BASELINE = "ced9e7f"  # main just before the fault-capable tap landed
TAP_START_S = 30.0


def _snapshot(commit: str, into: Path) -> Path:
    """The whole ``harness/`` package at ``commit``, unpacked under ``into``."""
    archive = lifetime.run(["git", "-C", str(REPO), "archive", "--format=tar", commit,
                            "harness"], timeout=60, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


@contextlib.contextmanager
def _tap_process(root: Path, upstream: tuple[str, int]) -> Iterator[int]:
    """A tap importing ``harness`` from ``root``, in its own process; yields its port."""
    process = lifetime.spawn(
        [sys.executable, "-I", str(TAP_PROCESS), str(root), upstream[0], str(upstream[1])],
        cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    assert process.stdin is not None and process.stdout is not None
    try:
        deadline = Deadline(TAP_START_S, f"the tap from {root} to listen")
        ready, _, _ = select.select([process.stdout], [], [], deadline.remaining())
        line = process.stdout.readline().strip() if ready else ""
        if not line.isdigit():
            rest = process.stdout.read() if process.poll() is not None else ""
            raise deadline.fail(f"it said {(line + chr(10) + rest).strip()!r}")
        yield int(line)
    finally:
        with contextlib.suppress(OSError):
            process.stdin.close()  # the tap stops at end of stdin
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            lifetime.stop(process)
        lifetime.stop(process)  # reaped by now; closes the pipes


class _Echoes:
    """One client's echo round trips on one path (publish, then wait for its own copy)."""

    def __init__(self, client: Observer, topic: str) -> None:
        self.client, self.topic, self.sent = client, topic, 0
        client.subscribe(topic)

    def once(self) -> float:
        began = time.perf_counter()
        self.client.publish(self.topic, f"echo-{self.sent:05}")
        self.sent += 1
        self.client.wait_for_messages(self.sent, self.topic, timeout=10)
        return time.perf_counter() - began


def _round(ports: dict[str, int], echoes: int, index: int) -> dict[str, float]:
    """Median round trip per path; the paths take turns echo by echo (the order rotating),
    so load from elsewhere on the machine lands on each alike."""
    with contextlib.ExitStack() as stack:
        paths = {name: _Echoes(stack.enter_context(Observer("127.0.0.1", port)),
                               f"bench/{name[:3]}/{index:03}")  # same length: same bytes
                 for name, port in ports.items()}
        names = list(paths)
        rtts: dict[str, list[float]] = {name: [] for name in names}
        for n in range(echoes // 10 + echoes):  # the first tenth is the warm-up
            turn = names[n % len(names):] + names[:n % len(names)]
            for name in turn:
                rtt = paths[name].once()
                if n >= echoes // 10:
                    rtts[name].append(rtt)
    return {name: statistics.median(values) for name, values in rtts.items()}


def bench_tap_overhead(echoes: int, rounds: int) -> None:
    old, new, direct = "tap before faults", "fault-capable tap", "direct"
    snapshots = lifetime.temp_dir("bench-faults-")
    try:
        with contextlib.ExitStack() as stack:
            broker = stack.enter_context(AmqttBroker())
            upstream = (broker.host, broker.port)
            ports = {direct: broker.port,
                     new: stack.enter_context(_tap_process(REPO, upstream))}
            try:
                baseline = _snapshot(BASELINE, snapshots / BASELINE)
                ports[old] = stack.enter_context(_tap_process(baseline, upstream))
            except (HarnessError, OSError, tarfile.TarError) as exc:  # no git history here,
                # or the snapshot cannot serve
                lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
                print(f"(the tap before faults, {BASELINE}, is not available: "
                      f"{lines[-1] if lines else type(exc).__name__})")
            medians: dict[str, list[float]] = {name: [] for name in ports}
            for index in range(rounds):
                for name, median in _round(ports, echoes, index).items():
                    medians[name].append(median)
    finally:
        lifetime.remove_dir(snapshots)
    print(f"echo round trip, median of {rounds} rounds x {echoes} echoes per path (after "
          f"{echoes // 10} warm-up echoes), each tap in its own process:")
    for name, values in medians.items():
        print(f"  {name:18} {statistics.median(values) * 1e6:8.0f} us  "
              f"(rounds: {' '.join(f'{v * 1e6:.0f}' for v in values)})")
    if old in medians:
        ratios = [n / o for n, o in zip(medians[new], medians[old], strict=True)]
        ratio = statistics.median(ratios)
        verdict = "within" if ratio <= 1.10 else "OVER"
        print(f"  ratio fault-capable / before faults: {ratio:.3f}, median of the rounds' "
              f"ratios ({' '.join(f'{r:.3f}' for r in ratios)}); {verdict} the 1.10 target")


def bench_detection(rounds: int, keepalives: list[int]) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-faults-hil-") as tmp:
        program = ContractProgram(REPO / "device_src")
        options = TargetOptions(workdir=Path(tmp) / "session", env=HarnessEnv.from_environ())
        with Rig.open(options, program, Path(tmp) / "runs") as rig:
            for keepalive in keepalives:
                times = []
                bound = 1.5 * keepalive + R_BLACK_HOLE.publish_interval + DETECTION_SLACK_S
                scenario = dataclasses.replace(R_BLACK_HOLE, keepalive=keepalive, publishes=5)
                for _ in range(rounds):
                    evidence = rig.run(scenario, again=True).evidence
                    hole = next(f for f in evidence.faults if f.kind == "timeout")
                    gave_up = min(link.opened for link in evidence.links
                                  if link.opened > hole.time)
                    closed = [link.closed for link in evidence.links
                              if link.closed and link.opened < hole.time < link.closed
                              and "client" in str(link.close_reason)]
                    times.append(min([gave_up, *closed]) - hole.time)
                    assert check_silent_loss_detected(evidence).ok, "R1 failed in the bench"
                median = statistics.median(times)
                print(f"black hole -> detection, keepalive {keepalive} s: median {median:.2f} s "
                      f"over {rounds} (min {min(times):.2f}, max {max(times):.2f}); R1 bound "
                      f"{bound:.2f} s, ratio {median / bound:.2f}; keepalive alone "
                      f"{median / keepalive:.2f} x k")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--echoes", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keepalives", type=int, nargs="+", default=[2, 4])
    args = parser.parse_args()
    bench_tap_overhead(args.echoes, args.rounds)
    bench_detection(args.rounds, args.keepalives)


if __name__ == "__main__":
    main()
