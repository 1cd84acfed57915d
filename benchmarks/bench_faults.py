"""Fault figures (issue 16), printed as medians, side by side in one run.

* tap overhead: the echo round trip (paho publish -> broker -> back to the same client)
  through today's fault-capable tap, through the tap as it was before faults (its source
  read from git at BASELINE), and straight to the broker; ratio new/old, target <= 1.10;
* black-hole detection: on the emulated board, device_src with ``reconnect`` and a
  keepalive k; after the 3rd echo the connection becomes a black hole; the time until the
  device gives it up (as R1 measures it on the wire) against R1's bound 1.5 k + interval.

Run: ``python benchmarks/bench_faults.py [--echoes 400] [--rounds 5] [--keepalives 2 4]``
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

from harness.broker import AmqttBroker, Observer, Tap
from harness.checks.resilience import DETECTION_SLACK_S, check_silent_loss_detected
from harness.env import HarnessEnv
from harness.hil.programs import ContractProgram
from harness.hil.rig import Rig
from harness.hil.scenario import R_BLACK_HOLE
from harness.hil.targets import TargetOptions

REPO = Path(__file__).resolve().parents[1]
BASELINE = "ced9e7f"  # main just before the fault-capable tap landed


def _baseline_tap(tmp: Path) -> ModuleType | None:
    try:
        source = subprocess.run(
            ["git", "-C", str(REPO), "show", f"{BASELINE}:harness/broker/tap.py"],
            capture_output=True, text=True, check=True).stdout
    except (subprocess.CalledProcessError, FileNotFoundError):
        return None
    path = tmp / "tap_before_faults.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("tap_before_faults", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    except ImportError as exc:  # the old tap imports names today's harness no longer has
        print(f"(the tap before faults, {BASELINE}, no longer imports: {exc})")
        return None
    return module


def _echo_rtts(port: int, echoes: int, topic: str) -> list[float]:
    with Observer("127.0.0.1", port) as client:
        client.subscribe(topic)
        rtts = []
        for n in range(echoes):
            began = time.perf_counter()
            client.publish(topic, f"echo-{n}")
            client.wait_for_messages(n + 1, topic, timeout=10)
            rtts.append(time.perf_counter() - began)
    return rtts[echoes // 10:]  # drop the warm-up


def bench_tap_overhead(echoes: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as tmp, AmqttBroker() as broker:
        old = _baseline_tap(Path(tmp))
        upstream = (broker.host, broker.port)
        medians: dict[str, list[float]] = {"direct": [], "tap before faults": [],
                                           "fault-capable tap": []}
        for index in range(rounds):  # interleaved, so drift hits every variant alike
            medians["direct"].append(statistics.median(
                _echo_rtts(broker.port, echoes, f"bench/direct/{index}")))
            if old is not None:
                with old.Tap(upstream) as tap:
                    medians["tap before faults"].append(statistics.median(
                        _echo_rtts(tap.port, echoes, f"bench/old/{index}")))
            with Tap(upstream) as tap:
                medians["fault-capable tap"].append(statistics.median(
                    _echo_rtts(tap.port, echoes, f"bench/new/{index}")))
    print(f"echo round trip, median of {rounds} rounds x {echoes} echoes:")
    for name, values in medians.items():
        if values:
            print(f"  {name:18} {statistics.median(values) * 1e6:8.0f} us")
    if medians["tap before faults"]:
        ratio = statistics.median(medians["fault-capable tap"]) / statistics.median(
            medians["tap before faults"])
        print(f"  ratio fault-capable / before faults: {ratio:.3f} (target <= 1.10)")
    else:
        print(f"  (the tap before faults, {BASELINE}, is not available: no git history, "
              "or it no longer imports)")


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
