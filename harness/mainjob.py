"""The main job: the HIL suite against an emulated ESP32 and the embedded broker, with its
JUnit XML, a results history and the regression report.

``python -m harness run`` (or ``./hil run``) is what a user runs first; it prints where
everything went. Options pass through to pytest after ``--``.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path

from pytest import ExitCode

from harness import lifetime
from harness.errors import ConfigError, HistoryError
from harness.report import cli as report_cli
from harness.report.history import History

REPO_ROOT = Path(__file__).resolve().parents[1]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", type=Path, default=Path("hil-results"),
                        help="folder for artifacts, JUnit XML, history and report "
                        "(default hil-results)")
    parser.add_argument("--device", default="emu", help="device under test (default emu)")
    parser.add_argument("--profile", default="v1.22", help="emulated firmware profile")
    parser.add_argument("--broker", default="amqtt", help="amqtt, mosquitto or a URL")
    parser.add_argument("--device-src", default="device_src",
                        help="device program folder, or 'seed' for the seed guide's program")
    parser.add_argument("--keep", type=int, metavar="N",
                        help="keep the run folders of the newest N rounds, prune older ones "
                        "(pytest --hil-keep; default: keep all)")
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER,
                        help="extra pytest arguments after --")


def run(args: argparse.Namespace) -> int:
    tests = REPO_ROOT / "tests" / "hil"
    if not tests.is_dir():
        raise ConfigError(f"the HIL suite is not at {tests}; run this from a checkout of the "
                          "harness repository")
    if args.keep is not None and args.keep < 1:
        raise ConfigError(f"--keep must be at least 1 round, got {args.keep}")
    results: Path = args.results.resolve()
    existed = results.exists()
    history = results / "history"
    junit = results / "junit.xml"
    report = results / "report.html"
    summary = results / "summary.md"
    extra = [a for a in args.pytest_args if a != "--"]
    keep = ["--hil-keep", str(args.keep)] if args.keep is not None else []
    command = [
        sys.executable, "-m", "pytest", str(tests), "-m", "hil", "-p", "no:cacheprovider",
        f"--hil-device={args.device}", f"--hil-profile={args.profile}",
        f"--hil-broker={args.broker}", f"--hil-device-src={args.device_src}",
        f"--hil-results={results}", f"--hil-history={history}", f"--junitxml={junit}",
        "-o", "junit_family=xunit1",  # keeps the hil.* properties in the JUnit XML
        *keep, *extra,
    ]
    runs_before = _recorded_runs(history)
    started_wall, started = time.time(), time.monotonic()
    suite = lifetime.spawn(command, cwd=REPO_ROOT)
    try:
        outcome = suite.wait()
    except BaseException as exc:  # Ctrl-C reaches pytest too (same process group)
        if isinstance(exc, lifetime.Terminated):
            suite.send_signal(signal.SIGTERM)  # SIGTERM came to us alone: pass it on
        try:  # let pytest tear down and write its JUnit XML
            suite.wait(timeout=30)
        except subprocess.TimeoutExpired:
            lifetime.stop(suite)
        raise
    elapsed = time.monotonic() - started
    if outcome == ExitCode.USAGE_ERROR or _recorded_runs(history) == runs_before:
        # pytest said what was wrong; nothing was recorded, so there is nothing to report.
        if not existed and results.is_dir() and not any(results.iterdir()):
            results.rmdir()
        return outcome
    rendered = _render_report(history, report, summary)
    print(f"harness run: HIL suite on {args.device} (profile {args.profile}) against "
          f"{args.broker} finished in {elapsed:.1f} s (pytest exit {outcome})")
    written = [("JUnit XML", junit)] + ([("report", report), ("summary", summary)]
                                        if rendered else [])
    for label, path in written:
        if path.is_file() and path.stat().st_mtime >= started_wall - 1:
            print(f"  {label:<10}: {path}")
    print(f"  {'artifacts':<10}: {results / 'runs'}")
    return outcome


def _recorded_runs(history: Path) -> int:
    """Runs in the results history so far (0 when there is none)."""
    try:
        with History.for_reading(history) as opened:
            return opened.run_count()
    except HistoryError:
        return 0


def _render_report(history: Path, report: Path, summary: Path) -> bool:
    code = report_cli.main(["--history", str(history), "--out", str(report),
                            "--summary", str(summary)])
    return code == 0
