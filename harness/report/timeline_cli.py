"""``python -m harness timeline RUN_DIR``: write the timeline page of any run folder.

The report writes one for every run of its latest round; this command does it for any
other run (an older round, a run from a colleague's machine). With ``--history DIR`` the
lines quoted by the failing checks that point at the folder are highlighted.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.errors import ConfigError
from harness.report.history import History
from harness.report.render import run_folder
from harness.report.timeline import quoted_lines
from harness.report.timeline_page import FailedCheck, write_timeline
from harness.run_files import SERIAL_LOG, TAP_TRACE, TIMELINE
from harness.spec_items import title_of

ROUNDS_SEARCHED = 1000  # how far back --history is searched for tests of this run


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR",
                        help="a run folder: hil-results/runs/<session>/NN-<scenario>/")
    parser.add_argument("--history", type=Path, metavar="DIR",
                        help="results history; highlights what its failing checks quoted")
    parser.add_argument("--out", type=Path, metavar="FILE.html",
                        help=f"where to write the page (default RUN_DIR/{TIMELINE})")


def run(args: argparse.Namespace) -> int:
    folder: Path = args.run_dir.resolve()
    if not (folder / SERIAL_LOG).is_file() and not (folder / TAP_TRACE).is_file():
        raise ConfigError(f"{folder} holds no {SERIAL_LOG} or {TAP_TRACE}; give a run folder "
                          "such as hil-results/runs/<session>/01-messaging")
    checks = _failed_checks(args.history, folder) if args.history else []
    try:
        page = write_timeline(folder, checks)
        if args.out is not None and args.out.resolve() != page:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(page.read_text(encoding="utf-8"), encoding="utf-8")
            page.unlink()
            page = args.out
    except OSError as exc:
        raise ConfigError(f"cannot write the timeline ({exc.strerror or exc})",
                          hint="give a writable path with --out") from exc
    print(f"timeline of {folder.name}: {page}")
    return 0


def _failed_checks(history_dir: Path, folder: Path) -> list[FailedCheck]:
    with History.for_reading(history_dir) as history:
        loaded = history.load(ROUNDS_SEARCHED)
    checks = []
    for records in loaded.results.values():
        for record in records:
            where = run_folder(record)
            if record.bad and where is not None and where.resolve() == folder:
                checks.append(FailedCheck(record.spec_item, title_of(record.spec_item),
                                          record.nodeid, record.first_line,
                                          quoted_lines(record.message)))
    return checks
