"""A short Markdown summary of the report, fit for a CI job summary or a chat message."""

from __future__ import annotations

from harness.report.analysis import Change, ReportModel, row_label

MAX_LISTED = 10  # a chat message stays short; the page has the rest


def _line(change: Change) -> str:
    record = change.record
    where = f" [{record.cell}]" if record.cell else ""
    message = f" — {record.message}" if record.message else ""
    if len(message) > 160:
        message = message[:159] + "…"
    return f"- **{row_label(record)}** `{record.nodeid}`{where}{message}"


def render_summary(model: ReportModel, *, report_link: str = "") -> str:
    """The verdict, the latest counts, then new failures, fixes and flaky tests."""
    latest = model.latest
    counts = latest.counts
    icon = {"pass": "✅", "fail": "❌", "warn": "⚠️"}[model.verdict_state]
    tally = ", ".join(
        f"{counts[o]} {o}" for o in ("passed", "failed", "error", "skipped", "xfailed") if counts[o]
    )
    lines = [
        f"## {icon} HIL report: {model.verdict}",
        "",
        f"Latest round {latest.label} UTC: {tally or 'no results'}.",
    ]
    if model.damage:
        lines += ["", f"> History database is damaged: {len(model.damage)} run(s) unreadable "
                      "and left out."]
    sections: list[tuple[str, list[str]]] = [
        ("New failures", [_line(c) for c in model.new_failures]),
        ("Fixed", [_line(c) for c in model.fixes]),
        ("Flaky", [
            f"- **{row_label(f.record)}** `{f.record.nodeid}`"
            f"{f' [{f.record.cell}]' if f.record.cell else ''} — {f.flips} flips"
            for f in model.flaky
        ]),
    ]
    for title, items in sections:
        if not items:
            continue
        lines += ["", f"### {title} ({len(items)})", *items[:MAX_LISTED]]
        if len(items) > MAX_LISTED:
            lines.append(f"- … and {len(items) - MAX_LISTED} more")
    if report_link:
        lines += ["", f"Full report: {report_link}"]
    return "\n".join(lines) + "\n"
