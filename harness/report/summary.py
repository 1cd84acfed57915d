"""The Markdown summary for a CI job summary (``$GITHUB_STEP_SUMMARY``) or a chat message.

The verdict is the first line. New failures come as a table with the first line of each
message and links to the report, timeline and logs: relative to the summary's own folder
by default, or under ``base_url`` (where the report's folder is published).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

from harness.report.analysis import Change, ReportModel, plural, row_label
from harness.report.history import STATUSES, TestRecord
from harness.report.render import ARTIFACT_ORDER, STATUS_WORDS, run_folder
from harness.run_files import TIMELINE
from harness.spec_items import Family, title_of

MAX_LISTED = 10  # a job summary stays short; the page has the rest
FIRST_LINE_LIMIT = 160


class Linker:
    """Links from the summary: under ``base_url`` (relative to the report's folder), or
    relative to the summary file's folder."""

    def __init__(self, report: Path | None, summary: Path | None, base_url: str = "") -> None:
        self.report_dir = report.resolve().parent if report else None
        self.summary_dir = summary.resolve().parent if summary else None
        self.base_url = base_url.rstrip("/")

    def href(self, target: Path) -> str | None:
        target = target.resolve()
        if self.base_url and self.report_dir is not None:
            relative = _relative(target, self.report_dir)
            return None if relative is None else f"{self.base_url}/{relative}"
        if self.summary_dir is not None:
            return _relative(target, self.summary_dir)
        return None


def _relative(target: Path, start: Path) -> str | None:
    try:
        return quote(Path(os.path.relpath(target, start)).as_posix())
    except ValueError:  # another drive
        return None


def render_summary(model: ReportModel, *, report: Path | None = None,
                   summary: Path | None = None, base_url: str = "") -> str:
    """The verdict line, the latest counts, then new failures (a table), still failing,
    fixed and flaky tests."""
    linker = Linker(report, summary, base_url)
    latest = model.latest
    counts = latest.counts
    icon = {"pass": "✅", "fail": "❌", "warn": "⚠️"}[model.verdict_state]
    report_link = linker.href(report) if report else None
    link = f" — [full report]({report_link})" if report_link else ""
    tally = ", ".join(f"{counts[s]} {STATUS_WORDS.get(s, s)}" for s in STATUSES if counts[s])
    lines = [
        f"## {icon} HIL: {model.verdict}{link}",
        "",
        f"Latest round {latest.label} UTC · {plural(len(latest.runs), 'run')} · "
        f"{tally or 'no results'}.",
    ]
    if model.damage:
        lines += ["", f"> History database is damaged: {plural(len(model.damage), 'run')} "
                      "unreadable and left out."]
    lines += _resilience(model)
    if model.new_failures:
        lines += ["", f"### New failures ({len(model.new_failures)})", "",
                  "| Spec | Test | Board / profile / broker | Message (first line) | Links |",
                  "|---|---|---|---|---|"]
        lines += [_row(c, linker) for c in model.new_failures[:MAX_LISTED]]
        lines += _more(len(model.new_failures))
    lists: list[tuple[str, list[str]]] = [
        ("Still failing", [_item(r) for r in model.still_failing]),
        ("Fixed", [_item(c.record) for c in model.fixes]),
        ("Flaky", [f"{_item(f.record)} — {plural(f.flips, 'flip')}" for f in model.flaky]),
        ("Device metric shifts", [f"- {x.text} [{x.cell}], new level since {x.since}"
                                  for x in model.shifts]),
    ]
    for title, items in lists:
        if items:
            lines += ["", f"### {title} ({len(items)})", *items[:MAX_LISTED], *_more(len(items))]
    return "\n".join(lines) + "\n"


def _resilience(model: ReportModel) -> list[str]:
    """One line per cell with its R1–R6 verdict in the latest round (when any ran)."""
    ran = [c for c in model.cells if c.resilience[-1].records]
    if not ran:
        return []
    label = Family.RESILIENCE.label
    return ["", f"Resilience {label} (faults injected): " + "; ".join(
        f"{c.cell} {c.resilience[-1].text}" for c in ran) + "."]


def _row(change: Change, linker: Linker) -> str:
    record = change.record
    spec = row_label(record)
    title = title_of(record.spec_item)
    first = record.first_line
    if len(first) > FIRST_LINE_LIMIT:
        first = first[: FIRST_LINE_LIMIT - 1] + "…"
    links = []
    folder = run_folder(record)
    candidates = [("timeline", folder / TIMELINE if folder else None)] + [
        (name.replace("_", " "), Path(record.artifacts[name]))
        for name in sorted(record.artifacts, key=_artifact_order)]
    for label, path in candidates:
        if path is not None and path.exists():
            href = linker.href(path)
            if href:
                links.append(f"[{label}]({href})")
    cells = [f"**{spec}**" + (f" {title}" if title else ""),
             f"`{record.nodeid.rpartition('::')[2] or record.nodeid}`",
             record.cell or "—", first, " · ".join(links) or "—"]
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _artifact_order(name: str) -> tuple[int, str]:
    return (ARTIFACT_ORDER.index(name) if name in ARTIFACT_ORDER else 99, name)


def _item(record: TestRecord) -> str:
    where = f" [{record.cell}]" if record.cell else ""
    return f"- **{row_label(record)}** `{record.nodeid}`{where}"


def _more(count: int) -> list[str]:
    return [f"- … and {count - MAX_LISTED} more in the report"] if count > MAX_LISTED else []


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")
