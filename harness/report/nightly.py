"""``python -m harness nightly``: run the HIL suite over the matrix this machine offers,
record every cell into the history as one round, then write the report and summary.

The matrix is every firmware profile × every broker backend (amqtt always, mosquitto when
installed) × every device (the emulated board plus each ``--device``); plain/TLS variants
live inside the suite. ``--dry-run`` prints the cells without running anything.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness import lifetime
from harness.broker.mosquitto_broker import mosquitto_installed
from harness.deadline import Deadline
from harness.emulator.profiles import list_profiles
from harness.errors import ConfigError
from harness.report.cli import add_report_options, build_report
from harness.report.history import ensure_writable

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SUITE = REPO_ROOT / "tests" / "hil"
DEFAULT_CELL_TIMEOUT_S = 1800.0
# A real board runs whatever firmware it was flashed with; the emulator's profiles don't apply.
FLASHED = "flashed"
# pytest exit codes that mean "the suite ran" (passed, some failed, nothing selected).
SUITE_RAN = {0, 1, 5}


@dataclass(frozen=True)
class Cell:
    """One matrix cell: a device × firmware profile × broker backend (a real board's
    profile is ``flashed``: the firmware on it)."""

    device: str
    profile: str
    broker: str
    soak_minutes: float = 0.0  # > 0: the soak run (pytest -m soak) instead of the suite

    @property
    def name(self) -> str:
        """A file-name-safe label, e.g. ``emu-v1.22-amqtt``."""
        raw = f"{self.device}-{self.profile}-{self.broker}"
        if self.soak_minutes:
            raw += f"-soak{self.soak_minutes:g}min"
        return re.sub(r"[^A-Za-z0-9._-]+", "_", raw).strip("_")

    @property
    def timeout_s(self) -> float | None:
        """A soak cell's own budget: its duration plus the suite's usual allowance."""
        return self.soak_minutes * 60 + DEFAULT_CELL_TIMEOUT_S if self.soak_minutes else None

    def pytest_command(self, *, history: Path, results: Path, suite: Path | None = None,
                       extra: Sequence[str] = ()) -> list[str]:
        cell_results = results / self.name
        return [
            sys.executable, "-m", "pytest", *([str(suite)] if suite else []),
            "-m", "soak" if self.soak_minutes else "hil",
            *(["--hil-soak-minutes", f"{self.soak_minutes:g}"] if self.soak_minutes else []),
            "-p", "no:cacheprovider",
            "--hil-device", self.device,
            *(["--hil-profile", self.profile] if self.profile != FLASHED else []),
            "--hil-broker", self.broker, "--hil-history", str(history),
            "--hil-results", str(cell_results), f"--junitxml={cell_results / 'junit.xml'}",
            # xunit1 keeps the hil.* user properties (spec item, metrics) in the JUnit XML.
            "-o", "junit_family=xunit1",
            *extra,
        ]


def available_profiles() -> list[str]:
    """Firmware profiles the emulator knows."""
    return list_profiles()


def available_brokers() -> list[str]:
    """amqtt is embedded; mosquitto counts when its program is installed."""
    brokers = ["amqtt"]
    if mosquitto_installed():
        brokers.append("mosquitto")
    return brokers


def plan_cells(devices: Sequence[str], profiles: Sequence[str],
               brokers: Sequence[str]) -> list[Cell]:
    """Every emulated profile × broker, then every real board × broker, in a stable order,
    without duplicates."""
    def unique(items: Sequence[str]) -> list[str]:
        return list(dict.fromkeys(items))

    cells: list[Cell] = []
    for device in unique(devices):
        for profile in unique(profiles) if device == "emu" else [FLASHED]:
            cells.extend(Cell(device, profile, broker) for broker in unique(brokers))
    return cells


def configure(parser: argparse.ArgumentParser) -> None:
    add_report_options(parser, history="results history directory (created if missing)",
                       summary="Markdown summary (default: summary.md next to --out)")
    parser.add_argument("--results", type=Path, metavar="DIR",
                        help="per-cell artifacts and JUnit XML (default: results/ next to --out)")
    parser.add_argument("--suite", type=Path, metavar="DIR",
                        help=f"the HIL tests to run (default {DEFAULT_SUITE} when it exists, "
                        "else pytest's testpaths)")
    parser.add_argument("--device", action="append", default=[], metavar="PORT",
                        help="also run on this board (repeatable); the emulated board always runs")
    parser.add_argument("--profile", action="append", default=[], metavar="NAME",
                        help="only these firmware profiles (default: all the emulator knows)")
    parser.add_argument("--broker", action="append", default=[], metavar="NAME",
                        help="only these broker backends "
                        "(default: amqtt, and mosquitto if installed)")
    parser.add_argument("--cell-timeout", type=float, default=DEFAULT_CELL_TIMEOUT_S, metavar="S",
                        help="give up on one cell after S seconds "
                        f"(default {DEFAULT_CELL_TIMEOUT_S:g})")
    parser.add_argument("--pytest-arg", action="append", default=[], metavar="ARG",
                        help="extra argument for every pytest run (repeatable)")
    parser.add_argument("--keep", type=int, metavar="N",
                        help="keep the run folders of the newest N rounds and the history of "
                        "10 x N; older ones are pruned (pytest --hil-keep)")
    parser.add_argument("--soak-minutes", type=float, default=0.0, metavar="M",
                        help="also run the soak (pytest -m soak) for M minutes on the emulated "
                        "board, recording its heap trend and harness cost per message")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the cells and their pytest commands, run nothing")


class NightlyRunner:
    """Runs each cell's pytest as its own process group, so a timeout or Ctrl-C ends all of it."""

    def __init__(self, cells: Sequence[Cell], *, history: Path, results: Path,
                 cell_timeout: float, suite: Path | None = None,
                 extra: Sequence[str] = ()) -> None:
        self.cells = list(cells)
        self.suite = suite
        self.history = history
        self.results = results
        self.cell_timeout = cell_timeout
        self.extra = list(extra)
        self.batch = "nightly-" + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())

    def run_all(self) -> dict[Cell, int | None]:
        """Exit code per cell; None for a cell that timed out."""
        codes: dict[Cell, int | None] = {}
        for cell in self.cells:
            command = self.command_for(cell)
            print(f"nightly: cell {cell.name}: {' '.join(command[1:])}", flush=True)
            codes[cell] = self._run_one(cell, command)
        return codes

    def command_for(self, cell: Cell) -> list[str]:
        return cell.pytest_command(history=self.history, results=self.results,
                                   suite=self.suite, extra=self.extra)

    def _run_one(self, cell: Cell, command: list[str]) -> int | None:
        env = dict(os.environ, HIL_HISTORY_BATCH=self.batch)
        deadline = Deadline(cell.timeout_s or self.cell_timeout,
                            f"the pytest run of cell {cell.name}")
        process = lifetime.spawn(command, env=env, start_new_session=True)
        try:
            return process.wait(timeout=deadline.remaining())
        except subprocess.TimeoutExpired:
            print(f"nightly: {deadline.fail('pytest still running')}; cell stopped",
                  file=sys.stderr)
            _stop_group(process)
            return None
        except BaseException:  # Ctrl-C: take the whole cell down with us
            _stop_group(process)
            raise


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the cell's process group, then SIGKILL whatever outlives a grace period."""
    for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def run(args: argparse.Namespace) -> int:
    profiles = args.profile or available_profiles()
    brokers = args.broker or available_brokers()
    cells = plan_cells(["emu", *args.device], profiles, brokers)
    if args.soak_minutes < 0:
        raise ConfigError(f"--soak-minutes must be positive, got {args.soak_minutes:g}")
    if args.soak_minutes:
        cells.append(Cell("emu", profiles[0], brokers[0], soak_minutes=args.soak_minutes))
    results: Path = args.results or args.out.parent / "results"
    summary: Path = args.summary or args.out.parent / "summary.md"
    suite = args.suite or (DEFAULT_SUITE if DEFAULT_SUITE.is_dir() else None)
    if suite is not None and not suite.exists():
        raise ConfigError(f"--suite {suite} does not exist; give the folder of the HIL tests")
    if args.keep is not None and args.keep < 1:
        raise ConfigError(f"--keep must be at least 1 round, got {args.keep}")
    keep = ["--hil-keep", str(args.keep)] if args.keep is not None else []
    runner = NightlyRunner(cells, history=args.history.resolve(), results=results.resolve(),
                           cell_timeout=args.cell_timeout,
                           suite=suite.resolve() if suite else None,
                           extra=[*keep, *args.pytest_arg])
    if args.dry_run:
        for cell in cells:
            print(f"{cell.name}\t{shlex.join(runner.command_for(cell)[1:])}")
        return 0
    if args.cell_timeout <= 0:
        raise ConfigError(f"--cell-timeout must be positive, got {args.cell_timeout:g}")
    ensure_writable(args.history)
    codes = runner.run_all()
    outcome = build_report(args.history, args.out, summary=summary, last=args.last,
                           base_url=args.base_url)
    broken = [c.name for c, code in codes.items() if code is None or code not in SUITE_RAN]
    print(f"nightly: {outcome.model.verdict} — report {outcome.html}, summary {summary}")
    if broken:
        print(f"nightly: {len(broken)} cell(s) did not complete: {', '.join(broken)}",
              file=sys.stderr)
        return 1
    return 1 if args.fail_on_regression and outcome.model.regressed else 0
