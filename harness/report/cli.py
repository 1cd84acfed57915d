"""``python -m harness report``: render the regression report from a results history.

Exit status: 0 rendered; 1 with ``--fail-on-regression`` when a test that passed in its
previous round fails now; 2 (through the dispatcher) for a bad history.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ConfigError, HarnessError, HistoryError
from harness.report.analysis import ReportModel, analyse
from harness.report.history import History
from harness.report.render import render_report
from harness.report.summary import render_summary

DEFAULT_LAST = 30


def configure(parser: argparse.ArgumentParser) -> None:
    add_report_options(
        parser, history="the results history directory (the one given to --hil-history)",
        summary="also write a short Markdown summary (CI job summary, chat)")


def add_report_options(parser: argparse.ArgumentParser, *, history: str, summary: str) -> None:
    """The options of :func:`build_report`, for ``report`` and ``nightly`` alike."""
    parser.add_argument("--history", required=True, type=Path, metavar="DIR", help=history)
    parser.add_argument("--out", required=True, type=Path, metavar="FILE.html",
                        help="where to write the self-contained HTML report")
    parser.add_argument("--summary", type=Path, metavar="FILE.md", help=summary)
    parser.add_argument("--last", type=int, default=DEFAULT_LAST, metavar="N",
                        help=f"rounds to show in the matrix, flakes and trends "
                        f"(default {DEFAULT_LAST})")
    parser.add_argument("--base-url", default="", metavar="URL",
                        help="where the report's folder is published; the summary's links go "
                        "there (default: links relative to the summary file)")
    parser.add_argument("--fail-on-regression", action="store_true",
                        help="exit 1 when a test that passed in its previous round fails now")


@dataclass
class ReportOutcome:
    model: ReportModel
    html: Path
    summary: Path | None


def build_report(history_dir: Path, out: Path, *, summary: Path | None = None,
                 last: int = DEFAULT_LAST, base_url: str = "") -> ReportOutcome:
    """Load, analyse and write the page (and summary); usable from a script."""
    if last < 2:
        raise HistoryError(f"--last must be at least 2 to compare rounds, got {last}")
    with History.for_reading(history_dir) as history:
        loaded = history.load(last)
    model = analyse(loaded)
    target = out
    try:
        html = render_report(model, out, history_dir=history_dir)
        if summary is not None:
            target = summary
            summary.parent.mkdir(parents=True, exist_ok=True)
            text = render_summary(model, report=out, summary=summary, base_url=base_url)
            summary.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot write {target} ({exc.strerror or type(exc).__name__})",
            hint="give a writable path with --out / --summary",
        ) from exc
    return ReportOutcome(model, html, summary)


def main(argv: Sequence[str] | None = None) -> int:
    """The command without the dispatcher (for scripts such as ``harness.mainjob``): bad
    input prints one line on stderr and returns 2."""
    parser = argparse.ArgumentParser(prog="python -m harness report",
                                     description=__doc__.splitlines()[0])
    configure(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except HarnessError as exc:
        print(f"harness report: error: {exc}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    result = build_report(args.history, args.out, summary=args.summary, last=args.last,
                          base_url=args.base_url)
    model = result.model
    if model.damage:
        # The page is written from what could be read; say so once on stderr.
        print(
            f"harness report: warning: history database in {args.history} is corrupt: "
            f"{len(model.damage)} run(s) unreadable and left out of the report "
            f"(first: {model.damage[0]})",
            file=sys.stderr,
        )
    print(f"{model.verdict} — report written to {result.html}")
    if args.fail_on_regression and model.regressed:
        return 1
    return 0
