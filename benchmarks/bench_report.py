"""Benchmark: render the report from a history of 1,000 runs × 50 tests; database size.

Run: .venv/bin/python benchmarks/bench_report.py [--runs 1000] [--tests 50] [--repeat 5]
Prints medians. The history is synthetic but shaped like a nightly: 6 matrix cells per
round, every test with HIL context, the S7 tests with device metrics, a few flaky tests.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from harness.report.cli import build_report
from harness.report.history import DB_NAME, History, RunRecord, TestRecord

CELLS = [(p, b) for p in ("v1.20", "v1.22", "v1.24") for b in ("amqtt", "mosquitto")]


def make_history(directory: Path, runs: int, tests: int, seed: int = 7) -> float:
    """Write ``runs`` runs of ``tests`` results each; returns the seconds it took."""
    rng = random.Random(seed)
    begin = time.perf_counter()
    with History.for_writing(directory) as history:
        for index in range(runs):
            profile, broker = CELLS[index % len(CELLS)]
            night = index // len(CELLS)
            records = []
            for t in range(tests):
                spec = f"S{t % 12 + 1}"
                flaky = t % 17 == 3 and rng.random() < 0.2
                outcome = "failed" if flaky else "passed"
                metrics = {}
                if spec == "S7":
                    metrics = {"connect_ms": 40 + rng.random() * 10,
                               "tls_handshake_ms": 300 + rng.random() * 40,
                               "echo_rtt_p50_ms": 12 + rng.random() * 3,
                               "echo_rtt_p95_ms": 25 + rng.random() * 6,
                               "messages_sent": 10.0, "messages_received": 10.0}
                records.append(TestRecord(
                    nodeid=f"tests/hil/test_{spec.lower()}.py::test_case_{t}[tls]",
                    outcome=outcome, duration=rng.random() * 4, spec_item=spec, backend="emu",
                    device="emu", profile=profile, broker=broker, transport="tls",
                    device_rev="0123abcd", message="AssertionError: echo missing" if flaky else "",
                    artifacts={"serial_log": f"/results/{index}/{t}/serial.log",
                               "tap_trace": f"/results/{index}/{t}/tap.txt"} if flaky else {},
                    metrics=metrics,
                ))
            started = 1.7e9 + night * 86400 + index
            history.record_run(RunRecord(started=started, finished=started + 300,
                                         batch=f"nightly-{night}", exit_status=0,
                                         harness_rev="abc", host="ci", command="pytest -m hil"),
                               records)
    return time.perf_counter() - begin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--tests", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        history_dir = Path(tmp) / "hist"
        write_s = make_history(history_dir, args.runs, args.tests)
        size = (history_dir / DB_NAME).stat().st_size
        wal = history_dir / f"{DB_NAME}-wal"
        wal_size = wal.stat().st_size if wal.exists() else 0
        print(f"history: {args.runs} runs x {args.tests} tests written in {write_s:.2f} s "
              f"({write_s / args.runs * 1000:.2f} ms per run)")
        print(f"database size: {size / 1e6:.2f} MB (+ WAL {wal_size / 1e6:.2f} MB), "
              f"{size / (args.runs * args.tests):.0f} bytes per result")
        for last in (30, 1000):
            times = []
            for _ in range(args.repeat):
                begin = time.perf_counter()
                outcome = build_report(history_dir, Path(tmp) / "report.html",
                                       summary=Path(tmp) / "summary.md", last=last)
                times.append(time.perf_counter() - begin)
            page = (Path(tmp) / "report.html").stat().st_size
            print(f"render --last {last} ({len(outcome.model.rounds)} rounds, "
                  f"{sum(len(r.runs) for r in outcome.model.rounds)} runs): median "
                  f"{statistics.median(times) * 1000:.0f} ms over {args.repeat}, "
                  f"page {page / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
