"""The main job: the HIL suite against an emulated ESP32 and the embedded broker, with its
JUnit XML, a results history and the regression report.

``python -m harness run`` (or ``./hil run``) is what a user runs first; it prints where
everything went. Options pass through to pytest after ``--``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from harness.errors import ConfigError

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
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER,
                        help="extra pytest arguments after --")


def run(args: argparse.Namespace) -> int:
    tests = REPO_ROOT / "tests" / "hil"
    if not tests.is_dir():
        raise ConfigError(f"the HIL suite is not at {tests}; run this from a checkout of the "
                          "harness repository")
    results: Path = args.results.resolve()
    results.mkdir(parents=True, exist_ok=True)
    history = results / "history"
    junit = results / "junit.xml"
    extra = [a for a in args.pytest_args if a != "--"]
    command = [
        sys.executable, "-m", "pytest", str(tests), "-m", "hil", "-p", "no:cacheprovider",
        f"--hil-device={args.device}", f"--hil-profile={args.profile}",
        f"--hil-broker={args.broker}", f"--hil-device-src={args.device_src}",
        f"--hil-results={results}", f"--hil-history={history}", f"--junitxml={junit}",
        "-o", "junit_family=xunit1",  # keeps the hil.* properties in the JUnit XML
        *extra,
    ]
    print(f"harness run: HIL suite on {args.device} (profile {args.profile}) against "
          f"{args.broker}; artifacts in {results}", flush=True)
    started = time.monotonic()
    outcome = subprocess.call(command, cwd=REPO_ROOT)
    elapsed = time.monotonic() - started
    report = results / "report.html"
    summary = results / "summary.md"
    rendered = _render_report(history, report, summary)
    print(f"harness run: suite finished in {elapsed:.1f} s (pytest exit {outcome})")
    print(f"  JUnit XML : {junit}")
    if rendered:
        print(f"  report    : {report}")
        print(f"  summary   : {summary}")
    return outcome


def _render_report(history: Path, report: Path, summary: Path) -> bool:
    try:
        from harness.report import cli as report_cli
    except ImportError:
        print("harness run: the report module is not installed; skipping the report")
        return False
    code = report_cli.main(["--history", str(history), "--out", str(report),
                            "--summary", str(summary)])
    return code == 0
