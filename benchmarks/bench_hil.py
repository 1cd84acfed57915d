"""HIL suite figures, printed as medians and measured side by side in one run.

* full cycle: deploy unchanged + hard reset + Wi-Fi + TLS connect with SNI + 3 echoes, on
  the emulated board against the embedded broker through the TLS front / tap;
* its floor: the same device program doing the same work (interpreter start, TLS connect
  with SNI through the same tap, 3 echoes) on the bare MicroPython unix interpreter, with
  no harness in between: start to the last echo line. Cycles and floors alternate, so load
  on the machine hits both alike. Target: cycle <= 1.2 x floor;
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness.env import HarnessEnv  # noqa: E402
from harness.hil.programs import CA_PATH_ON_DEVICE, ContractProgram  # noqa: E402
from harness.hil.rig import Rig  # noqa: E402
from harness.hil.scenario import TLS_SNI  # noqa: E402
from harness.hil.targets import Target, TargetOptions  # noqa: E402
from tests.unit.test_device_program_rig import Flash, running, umqtt_134  # noqa: E402

ECHOES = 3
INTERVAL_S = 0.05
HEAP = "112K"  # the emulated board's default heap


def floor_cycle(target: Target, root: Path, index: int) -> float:
    """The bare interpreter's time for one cycle's device work, through a listening tap."""
    # The bare interpreter resolves "localhost", not the emulated board's broker name, so
    # its SNI is "localhost": the tap records it but does not insist on the board's name.
    scenario = dataclasses.replace(TLS_SNI, name=f"floor-{index}", require_sni=False)
    flash = Flash(root / f"floor-{index}", umqtt_134())
    flash.write(CA_PATH_ON_DEVICE, target.ca_pem)
    with target.tap_for(scenario, root / f"floor-{index}.jsonl") as tap:
        flash.write_settings({
            "server": "localhost", "port": tap.port, "tls": True,
            "ca_file": CA_PATH_ON_DEVICE, "sni": True, "user": target.options.username,
            "password": target.options.password, "topic": f"bench/floor/{index}",
            "wifi_ssid": "lab", "wifi_password": "lab-secret",
            "publish_interval": INTERVAL_S})
        started = time.perf_counter()
        with running(flash, heap=HEAP) as device:
            device.expect(rf"^Received '\{{\"msg\": {ECHOES - 1}\}}'", seconds=30)
            return time.perf_counter() - started


def bench_cycles(cycles: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-hil-") as tmp:
        program = ContractProgram(REPO / "device_src")
        options = TargetOptions(workdir=Path(tmp) / "session", env=HarnessEnv.from_environ())
        with Rig.open(options, program, Path(tmp) / "runs") as rig:
            target = rig.target
            totals, deploys, overheads, floors = [], [], [], []
            scenario = dataclasses.replace(TLS_SNI, name="cycle", publishes=ECHOES,
                                           publish_interval=INTERVAL_S)
            for index in range(cycles):
                started = time.perf_counter()
                report = target.device.deploy(files=program.program_files())
                deployed = time.perf_counter()
                result = rig.run(scenario, again=True)
                totals.append(time.perf_counter() - started)
                deploys.append(deployed - started)
                assert not report.copied, f"deploy copied {report.copied}"
                assert not result.evidence.notes, result.evidence.notes
                lines = result.evidence.serial
                device_work = lines[-1].time - lines[0].time if len(lines) > 1 else 0.0
                overheads.append(result.duration_s - device_work)
                floors.append(floor_cycle(target, Path(tmp) / "floor", index))
    cycle, floor = statistics.median(totals), statistics.median(floors)
    print(f"full cycle (deploy unchanged, reset, TLS+SNI connect, {ECHOES} echoes): "
          f"median {cycle * 1000:.0f} ms over {cycles} "
          f"(min {min(totals) * 1000:.0f}, max {max(totals) * 1000:.0f})")
    print(f"  of which unchanged deploy: median {statistics.median(deploys) * 1000:.0f} ms")
    print(f"bare-interpreter floor (same program and work, same tap, no harness): "
          f"median {floor * 1000:.0f} ms (min {min(floors) * 1000:.0f}, "
          f"max {max(floors) * 1000:.0f})")
    print(f"cycle / floor: {cycle / floor:.2f}x (target <= 1.2x)")
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
