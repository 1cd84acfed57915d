"""Benchmark: render the report (30 and 1,000 rounds) and the timeline of a 10-minute run.

Run: .venv/bin/python benchmarks/bench_report.py [--runs 1000] [--tests 50] [--repeat 5]
     [--cells 6] [--timeline-minutes 10]
Prints medians and ratios, measured side by side. The history is synthetic but shaped like
a nightly: ``--cells`` matrix cells per round (``--cells 1`` makes every run a round of its
own, so 1,000 runs are 1,000 rounds), every test with HIL context, the S7 tests with device
metrics, a few flaky tests. The timeline is a run folder as the rig writes it: a device
publishing once a second for ``--timeline-minutes`` with its echo, heap lines and every
packet both ways.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from harness.report.cli import build_report
from harness.report.history import DB_NAME, History, RunRecord, TestRecord
from harness.report.timeline_page import write_timeline

CELLS = [(p, b) for p in ("v1.20", "v1.22", "v1.24") for b in ("amqtt", "mosquitto")]


def make_history(directory: Path, runs: int, tests: int, seed: int = 7,
                 cells: int = len(CELLS)) -> float:
    """Write ``runs`` runs of ``tests`` results each; returns the seconds it took."""
    rng = random.Random(seed)
    begin = time.perf_counter()
    with History.for_writing(directory) as history:
        for index in range(runs):
            profile, broker = CELLS[index % cells]
            night = index // cells
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


def make_run_folder(folder: Path, minutes: float) -> int:
    """A run folder with a serial log and tap trace of ``minutes`` of 1 Hz publishing;
    returns the number of events in it."""
    folder.mkdir(parents=True)
    start = time.time() - minutes * 60 - 5
    serial = [(0.0, "[harness] hard reset"), (3.0, "Connected on 192.168.4.23"),
              (3.05, 'Connected to MQTT Broker "broker.test"')]
    tap: list[dict[str, object]] = [{"kind": "open", "conn": 1, "time": start + 3.01}]
    heap = 96_000
    for n in range(int(minutes * 60)):
        t = start + 3.1 + n
        payload = json.dumps({"msg": n})
        fields = {"topic": "hil/x", "qos": 0, "retain": False, "payload": payload}
        tap.append({"kind": "packet", "dir": "c2b", "type": "PUBLISH", "conn": 1, "time": t,
                    "fields": fields})
        tap.append({"kind": "packet", "dir": "b2c", "type": "PUBLISH", "conn": 1,
                    "time": t + 0.004, "fields": fields})
        heap -= 16
        serial += [(t - start + 0.001, f"Send '{payload}' to topic 'hil/x'"),
                   (t - start + 0.006, f"Received '{payload}' from topic 'hil/x'"),
                   (t - start + 0.01, f"Memory free: {heap} bytes after {n + 1} messages")]
    with (folder / "serial.log").open("w") as out:
        for offset, text in serial:
            stamp = start + offset
            out.write(time.strftime("%H:%M:%S", time.localtime(stamp))
                      + f".{int(stamp % 1 * 1000):03d} {text}\n")
    with (folder / "tap.jsonl").open("w") as out:
        for seq, record in enumerate(tap, 1):
            out.write(json.dumps({"seq": seq, **record}) + "\n")
    return len(serial) + len(tap)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--tests", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cells", type=int, default=len(CELLS), choices=range(1, 7),
                        metavar="1-6", help="matrix cells per round (default 6)")
    parser.add_argument("--timeline-minutes", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        history_dir = Path(tmp) / "hist"
        write_s = make_history(history_dir, args.runs, args.tests, cells=args.cells)
        size = (history_dir / DB_NAME).stat().st_size
        wal = history_dir / f"{DB_NAME}-wal"
        wal_size = wal.stat().st_size if wal.exists() else 0
        print(f"history: {args.runs} runs x {args.tests} tests, {args.cells} cells per round, "
              f"written in {write_s:.2f} s ({write_s / args.runs * 1000:.2f} ms per run)")
        print(f"database size: {size / 1e6:.2f} MB (+ WAL {wal_size / 1e6:.2f} MB), "
              f"{size / (args.runs * args.tests):.0f} bytes per result")
        medians: dict[int, tuple[float, int]] = {}
        for last in (30, 1000):
            times = []
            for _ in range(args.repeat):
                begin = time.perf_counter()
                outcome = build_report(history_dir, Path(tmp) / "report.html",
                                       summary=Path(tmp) / "summary.md", last=last)
                times.append(time.perf_counter() - begin)
            page = (Path(tmp) / "report.html").stat().st_size
            medians[last] = (statistics.median(times), page)
            print(f"render --last {last} ({len(outcome.model.rounds)} rounds, "
                  f"{sum(len(r.runs) for r in outcome.model.rounds)} runs): median "
                  f"{statistics.median(times) * 1000:.0f} ms over {args.repeat}, "
                  f"page {page / 1e3:.0f} kB")
        (t30, p30), (t1000, p1000) = medians[30], medians[1000]
        print(f"ratio --last 1000 / --last 30: time x{t1000 / t30:.1f}, page x{p1000 / p30:.1f}")

        folder = Path(tmp) / "runs" / "20260101-000000-bench" / "01-soak"
        events = make_run_folder(folder, args.timeline_minutes)
        times = []
        for _ in range(args.repeat):
            begin = time.perf_counter()
            out = write_timeline(folder, [])
            times.append(time.perf_counter() - begin)
        print(f"timeline of a {args.timeline_minutes:g}-minute run ({events} events): median "
              f"{statistics.median(times) * 1000:.0f} ms over {args.repeat}, page "
              f"{out.stat().st_size / 1e3:.0f} kB "
              f"({out.stat().st_size / events:.0f} bytes per event)")


if __name__ == "__main__":
    main()
