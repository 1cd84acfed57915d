"""Harness cost per message as a run grows (issue 14): the soak scenario (TLS through the
tap, 0.1 s between messages) at 10, 100 and 1,000 messages on one emulated board, printing
the harness's CPU per message for each and the spread between them.

"Harness CPU" is this process's CPU time (rig, serial reader, tap, embedded broker,
observer, emulator supervisor; the MicroPython interpreter is the device, not counted),
taken between the first and the last completed loop iteration, so set-up and teardown do
not blur it. Flat means the largest per-message figure is within 20% of the smallest.

Run: ``python benchmarks/bench_soak.py [--counts 10 100 1000] [--repeat 3]``
(about 3 minutes; each count after the first repeat of 1,000 is repeated for a median).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness.env import HarnessEnv  # noqa: E402
from harness.hil.programs import ContractProgram  # noqa: E402
from harness.hil.rig import Rig  # noqa: E402
from harness.hil.scenario import soak  # noqa: E402
from harness.hil.targets import TargetOptions  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per count below 1,000 (the median is printed)")
    args = parser.parse_args()
    per_message: dict[int, list[float]] = {count: [] for count in args.counts}
    walls: dict[int, list[float]] = {count: [] for count in args.counts}
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        program = ContractProgram(REPO / "device_src")
        options = TargetOptions(workdir=Path(tmp) / "session", env=HarnessEnv.from_environ())
        with Rig.open(options, program, Path(tmp) / "runs") as rig:
            for round_ in range(args.repeat):
                for count in args.counts:
                    if round_ and count >= 1000:
                        continue  # one long run is enough for its median
                    started = time.perf_counter()
                    result = rig.run(soak(count), again=True)
                    walls[count].append(time.perf_counter() - started)
                    assert not result.evidence.notes, result.evidence.notes
                    per_message[count].append(result.metrics["harness_cpu_ms_per_message"])
    medians = {count: statistics.median(values) for count, values in per_message.items()}
    print("harness CPU per message (soak: TLS through the tap, 0.1 s apart):")
    for count in args.counts:
        print(f"  {count:5d} messages: {medians[count]:.3f} ms/message "
              f"(median of {len(per_message[count])}; run wall "
              f"{statistics.median(walls[count]):.1f} s)")
    spread = max(medians.values()) / min(medians.values())
    print(f"largest / smallest: {spread:.2f}x (flat: <= 1.2x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
