"""The report page: one self-contained HTML file (inline CSS, SVG and a little JS for the
test filter; nothing loaded from the network).

Top to bottom: the verdict and honest counts; what changed (new failures, still failing,
fixed, flaky; empty ones collapse to one line); every test of the latest round with a
filter; the matrix of cells that ran; trends; the runs. Every run folder a test points at
gets a timeline page (``timeline.html`` next to its serial log), linked from the test.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from html import escape
from pathlib import Path
from urllib.parse import quote, urlencode

from harness.console import MEMORY_FREE
from harness.report.analysis import (
    NO_CELL,
    STATE_OF,
    Change,
    FamilyVerdict,
    ReportModel,
    Round,
    natural_key,
    plural,
    row_label,
    spec_key,
)
from harness.report.history import NOT_APPLICABLE_STATUS, STATUSES, RunRecord, TestRecord
from harness.report.style import FILTER_JS, REPORT_CSS
from harness.report.svg import line_chart
from harness.report.timeline import quoted_lines
from harness.report.timeline_page import FailedCheck, write_timeline
from harness.run_files import SERIAL_LOG
from harness.spec_items import Family, family_of, title_of

LETTER = {"pass": "P", "fail": "F", "skip": "S", "na": "–", "none": "·"}
ARTIFACT_ORDER = ("serial_log", "tap_trace", "broker_log")
SHORT_LABEL = {"serial_log": "serial", "tap_trace": "tap", "broker_log": "broker"}
RUN_ARTIFACTS = ("serial_log", "tap_trace")  # these live in the scenario run's own folder
STATUS_WORDS = {NOT_APPLICABLE_STATUS: "not applicable"}


def artifact_href(path: str, out_dir: Path) -> str:
    """A link to an artifact: relative to the page when possible, so a published folder
    keeps working; an absolute file URL otherwise (another drive)."""
    target = Path(path)
    try:
        relative = os.path.relpath(target, out_dir)
    except ValueError:
        return target.resolve().as_uri()
    return quote(Path(relative).as_posix())


def run_folder(record: TestRecord) -> Path | None:
    """The scenario run's folder a test's artifacts are in (its timeline goes there)."""
    for name in RUN_ARTIFACTS:
        if name in record.artifacts:
            return Path(record.artifacts[name]).parent
    return None


class ReportRenderer:
    """Turns a :class:`ReportModel` into the HTML page written to ``out``."""

    def __init__(self, model: ReportModel, out: Path, *, history_dir: Path,
                 write_timelines: bool = True) -> None:
        self.model = model
        self.out = Path(out).resolve()
        self.out_dir = self.out.parent
        self.history_dir = history_dir
        self.timelines: dict[Path, Path] = {}
        if write_timelines:
            self._write_timelines()

    def render(self) -> str:
        m = self.model
        rounds = plural(len(m.rounds), "round")
        parts = [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>HIL report — {escape(m.verdict)}</title>",
            f"<style>{REPORT_CSS}</style></head><body><main>",
            self._header(),
            self._damage(),
            self._cells(),
            self._what_changed(),
            self._matrix(),
            self._every_test(),
            self._trends(),
            self._runs(),
            f"<footer>Generated {escape(_utc(time.time()))} UTC from "
            f"<code>{escape(str(self.history_dir))}</code> · {rounds} shown</footer>",
            f"</main><script>{FILTER_JS}</script></body></html>",
        ]
        return "\n".join(p for p in parts if p)

    # --- timelines ------------------------------------------------------------------------
    def _write_timelines(self) -> None:
        latest = self.model.latest
        failing: dict[Path, list[FailedCheck]] = defaultdict(list)
        folders: dict[Path, None] = {}
        for key, record in sorted(latest.results.items()):
            folder = run_folder(record)
            run = latest.run_of.get(key)
            if folder is None or (run is not None and run.pruned_at is not None):
                continue
            folders[folder] = None
            if record.bad:
                failing[folder].append(FailedCheck(
                    record.spec_item, title_of(record.spec_item), record.nodeid,
                    record.first_line, quoted_lines(record.message)))
        for folder in folders:
            if not (folder / SERIAL_LOG).is_file() and not any(folder.glob("*.jsonl")):
                continue
            back = artifact_href(str(self.out), folder)
            try:
                self.timelines[folder] = write_timeline(folder, failing.get(folder, []),
                                                        back_link=back)
            except OSError:
                continue  # a read-only artifact folder: the test simply has no timeline link

    # --- sections ------------------------------------------------------------------------
    def _header(self) -> str:
        m, latest = self.model, self.model.latest
        badge = {"pass": "ALL GOOD", "fail": "REGRESSION", "warn": "ATTENTION"}[m.verdict_state]
        counts = latest.counts
        chips = "".join(
            f'<a class="chip s {STATE_OF[s]}" href="#tests?status={escape(s)}">'
            f"{counts[s]} {escape(STATUS_WORDS.get(s, s))}</a>"
            for s in STATUSES if counts[s]
        )
        revs = sorted({r.device_rev for r in latest.results.values() if r.device_rev})
        hosts = sorted({run.host for run in latest.runs if run.host})
        harness = sorted({run.harness_rev for run in latest.runs if run.harness_rev})
        minutes = (latest.finished - latest.started) / 60
        meta = [f"latest round {escape(latest.label)} UTC", plural(len(latest.runs), "run"),
                f"{minutes:.1f} min"]
        if hosts:
            meta.append("host " + escape(", ".join(hosts)))
        if harness:
            meta.append("harness " + escape(", ".join(harness)))
        if revs:
            meta.append("device program " + escape(", ".join(revs[:3])))
        if m.previous:
            meta.append(f"compared with {escape(m.previous.label)} UTC")
        return (
            "<header><h1>ESP32 MicroPython MQTT — HIL regression report</h1>"
            f'<div class="sub">{" · ".join(meta)}</div></header>'
            f'<div class="verdict {m.verdict_state}"><span class="badge">{badge}</span>'
            f"<span>{escape(m.verdict)}</span></div>"
            f'<div class="chips">{chips}</div>'
        )

    def _damage(self) -> str:
        if not self.model.damage:
            return ""
        items = "".join(f"<li><code>{escape(d)}</code></li>" for d in self.model.damage[:20])
        return (
            '<section class="damage"><h2>History database is damaged</h2>'
            f"<p>{plural(len(self.model.damage), 'run')} could not be read and "
            f"{'is' if len(self.model.damage) == 1 else 'are'} left out; the rest of this "
            f"report is built from what could be read.</p><ul>{items}</ul></section>"
        )

    def _cells(self) -> str:
        """The nightly matrix at a glance: one row per board/profile/broker cell, with its
        S1–S13 verdict and its resilience (R1–R6) verdict, each over the rounds."""
        m = self.model
        if not m.cells:
            return ""
        rows = []
        for cell in m.cells:
            board, profile, broker = [*cell.cell.split("/", 2), "", ""][:3]
            rows.append(
                f'<tr data-cell="{escape(cell.cell)}"><td>{escape(board)}</td>'
                f"<td>{escape(profile)}</td><td>{escape(broker)}</td>"
                f'<td class="core">{self._verdict(cell.cell, cell.core)}</td>'
                f'<td class="resilience">{self._verdict(cell.cell, cell.resilience)}</td></tr>')
        core, resilience = Family.CORE.label, Family.RESILIENCE.label
        return (
            f'<section id="cells"><h2>Nightly matrix: board × profile × broker '
            f"(last {plural(len(m.rounds), 'round')})</h2><div class=\"scroll\">"
            '<table class="cells"><thead><tr><th>Board</th><th>Profile</th><th>Broker</th>'
            f"<th>Spec {core}</th><th>Resilience {resilience} (faults injected)</th>"
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
            '<div class="key">Counted by spec item (an item\'s worst test). A verdict opens '
            "that cell's tests, an R square its test. n/a: the program or board does not "
            "claim it (no reconnect, no emulated access point), never a failure; hover for "
            "the reason. The last row of squares: the rounds, oldest first.</div></section>"
        )

    def _verdict(self, cell: str, verdicts: list[FamilyVerdict]) -> str:
        """One family's verdict in one cell: counts linking to its tests, a square per item
        (resilience only), the reason when nothing applied, and the strip over rounds."""
        now = verdicts[-1]
        family = now.family
        strip = "".join(
            f'<span class="{v.status.state}" title="{escape(r.label)}: {escape(v.text)}">'
            f"{LETTER[v.status.state]}</span>"
            for v, r in zip(verdicts, self.model.rounds, strict=True))
        strip = f'<span class="strip" aria-label="{family.label} per round">{strip}</span>'
        if not now.records:
            return (f'<span class="s none" title="no {family.label} test ran in this cell in '
                    f'the latest round">not run</span><br>{strip}')
        reasons = {item: r.first_line for item, r in sorted(now.records.items(),
                                                             key=lambda kv: spec_key(kv[0]))
                   if r.status == NOT_APPLICABLE_STATUS}
        by_reason: dict[str, list[str]] = defaultdict(list)
        for item, why in reasons.items():
            by_reason[why].append(item)
        tip = f"Show the {family.label} tests of {cell}" + "".join(
            f"\n{', '.join(items)}: {why}" for why, items in by_reason.items())
        badges = " ".join(f'<span class="s {state}">{escape(text)}</span>'
                          for state, text in now.parts)
        out = [f'<a class="verdict-link" href="{escape(_tests_href(family.value, cell))}" '
               f'title="{escape(tip)}">{badges}</a>']
        if family is Family.RESILIENCE:
            out.append(self._item_squares(cell, now))
        else:
            out.append("<br>")
        if reasons and now.status.state == "na":  # nothing applied: say why without a hover
            texts = sorted(by_reason)
            out.append(f'<div class="why" title="{escape(chr(10).join(texts))}">'
                       f"{escape(texts[0])}</div>")
        out.append(strip)
        return "".join(out)

    @staticmethod
    def _item_squares(cell: str, verdict: FamilyVerdict) -> str:
        squares = []
        for item in verdict.family.items:
            record = verdict.records.get(item)
            if record is None:
                squares.append(f'<span class="item none" title="{escape(item)} — '
                               f'{escape(title_of(item))}: not run">{escape(item)}</span>')
                continue
            word = STATUS_WORDS.get(record.status, record.status)
            tip = f"{item} — {title_of(item)}: {word}" + (
                f"\n{record.first_line}" if record.message else "")
            squares.append(f'<a class="item {STATE_OF[record.status]}" '
                           f'href="{escape(_tests_href(item, cell))}" title="{escape(tip)}">'
                           f"{escape(item)}</a>")
        return f'<div class="items">{"".join(squares)}</div>'

    def _what_changed(self) -> str:
        m = self.model
        sections, quiet = [], []
        if m.new_failures:
            sections.append(self._changes("New failures", m.new_failures))
        elif m.previous:
            quiet.append("no new failures")
        if m.still_failing:
            sections.append(self._still_failing())
        if m.shifts:
            sections.append(self._shifts())
        if m.fixes:
            sections.append(self._changes("Fixed", m.fixes))
        elif m.previous:
            quiet.append("nothing fixed")
        if m.flaky:
            sections.append(self._flaky())
        else:
            quiet.append(f"no flaky tests in the last {plural(len(m.rounds), 'round')}")
        if not m.shifts and m.previous:
            quiet.append("no device metric shifted")
        if not m.previous:
            quiet.insert(0, "first recorded round: nothing to compare with")
        line = (f'<p class="quiet" id="changes">{escape("; ".join(quiet).capitalize())}.</p>'
                if quiet else "")
        return "\n".join([*sections, line])

    def _changes(self, title: str, changes: list[Change]) -> str:
        anchor = title.lower().replace(" ", "-")
        rows = "".join(
            "<tr>"
            f"<td>{self._spec(c.record)}</td>"
            f"<td>{_test_name(c.record)}{self._flaky_tag(c.record)}"
            f"{self._message(c.record)}</td>"
            f"<td>{escape(c.record.cell or '—')}</td>"
            f"<td>{_badge(c.previous.status)} → {_badge(c.record.status)}"
            f'<div class="sub">last {escape(c.previous.status)} '
            f"{escape(c.previous_round.label)}</div></td>"
            f'<td class="links">{self._links(c.record, self.model.latest)}</td>'
            "</tr>"
            for c in changes
        )
        return (
            f'<section id="{anchor}"><h2>{title} ({len(changes)})</h2><table>'
            "<tr><th>Spec</th><th>Test</th><th>Board / profile / broker</th><th>Change</th>"
            f"<th>Artifacts</th></tr>{rows}</table></section>"
        )

    def _still_failing(self) -> str:
        still = self.model.still_failing
        rows = "".join(
            f"<tr><td>{self._spec(r)}</td>"
            f"<td>{_test_name(r)}{self._message(r)}</td>"
            f"<td>{escape(r.cell or '—')}</td><td>{_badge(r.status)}"
            f"{self._since(r)}</td>"
            f'<td class="links">{self._links(r, self.model.latest)}</td></tr>'
            for r in still
        )
        title = "Still failing" if self.model.previous else "Failing"
        return (
            f'<section id="still-failing"><h2>{title} ({len(still)})</h2><table>'
            "<tr><th>Spec</th><th>Test</th><th>Board / profile / broker</th><th>Outcome</th>"
            f"<th>Artifacts</th></tr>{rows}</table></section>"
        )

    def _flaky(self) -> str:
        rows = "".join(
            f"<tr><td>{self._spec(f.record)}</td>"
            f"<td>{_test_name(f.record)}</td>"
            f"<td>{escape(f.record.cell or '—')}</td><td>{f.flips}</td>"
            f"<td>{self._strip(f.outcomes)}</td></tr>"
            for f in self.model.flaky
        )
        return (
            f'<section id="flaky"><h2>Flaky tests ({len(self.model.flaky)})</h2><table>'
            "<tr><th>Spec</th><th>Test</th><th>Board / profile / broker</th><th>Flips</th>"
            "<th>Outcome per round (oldest → newest)</th></tr>"
            f"{rows}</table>{self._key()}</section>"
        )

    def _shifts(self) -> str:
        rows = "".join(
            f"<tr><td><b>{escape(x.text)}</b></td><td>{escape(x.cell)}</td>"
            f"<td>{escape(x.since)}</td></tr>"
            for x in self.model.shifts
        )
        return (
            f'<section id="shifts"><h2>Device metric shifts ({len(self.model.shifts)})</h2>'
            "<table><tr><th>What moved (latest round against the median of the rounds "
            "before)</th><th>Board / profile / broker</th><th>New level since</th></tr>"
            f'{rows}</table><div class="key">The trends below show each one.</div></section>'
        )

    def _every_test(self) -> str:
        latest = self.model.latest
        records = sorted(latest.results.items(), key=lambda kv: _spec_key(kv[1]))
        counts = latest.counts
        boxes = "".join(
            f'<label><input type="checkbox" name="status" value="{escape(s)}" checked> '
            f'<span class="s {STATE_OF[s]}">{counts[s]} {escape(STATUS_WORDS.get(s, s))}'
            "</span></label>"
            for s in STATUSES if counts[s]
        )
        specs = sorted({row_label(r) for _, r in records}, key=spec_key)
        families = [f for f in Family if any(family_of(s) is f for s in specs)]
        options = "".join(f'<option value="{f.value}">{f.label} — all {f.value} items</option>'
                          for f in families)
        options += "".join(f'<option value="{escape(s)}">{escape(s)}'
                           f"{' — ' + escape(title_of(s)) if title_of(s) else ''}</option>"
                           for s in specs)
        cells = sorted({r.cell for _, r in records if r.cell}, key=natural_key)
        cell_menu = ("<label>board / profile / broker <select name=\"cell\"><option value=\"\">"
                     "all</option>" + "".join(f'<option value="{escape(c)}">{escape(c)}</option>'
                                              for c in cells) + "</select></label>"
                     if cells else "")
        rows = []
        for key, r in records:
            rows.append(
                f'<tr data-status="{escape(r.status)}" data-spec="{escape(row_label(r))}" '
                f'data-family="{_family(r)}" data-cell="{escape(r.cell)}">'
                f"<td class=\"spec\">{self._spec(r)}</td>"
                f"<td>{_test_name(r)}{self._flaky_tag(r)}</td>"
                f"<td>{_badge(r.status)}</td>"
                f'<td class="num">{_duration(r.duration)}</td>'
                f"<td>{self._where(r)}</td>"
                f"<td>{self._message(r)}</td>"
                f'<td class="links">{self._links(r, latest, latest.run_of.get(key), short=True)}'
                "</td></tr>")
        return (
            f'<section id="tests"><h2>Every test of the latest round ({len(records)})</h2>'
            f'<form id="tests-filter" class="filters" onsubmit="return false">{boxes}'
            f'<label>spec item <select name="spec"><option value="">all</option>{options}'
            f'</select></label>{cell_menu}<label><input type="search" name="q" placeholder="search '
            'tests, reasons"></label><span class="sub" id="tests-shown"></span></form>'
            '<div class="scroll"><table id="tests-table"><colgroup><col class="spec"><col>'
            '<col class="outcome"><col class="time"><col class="cell"><col class="message">'
            '<col class="links"></colgroup><thead><tr><th>Spec</th><th>Test</th>'
            "<th>Outcome</th><th>Time</th><th>Board / profile / broker</th>"
            "<th>Message or reason</th><th>Artifacts</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div></section>"
        )

    def _matrix(self) -> str:
        m = self.model
        cols = [tuple(col.split("/")) if col != NO_CELL else (NO_CELL, "", "")
                for col in m.matrix_cols]
        head_rows = []
        for depth, name in enumerate(("board", "profile", "broker")):
            cells, index = [], 0
            while index < len(cols):
                span = 1
                while (index + span < len(cols)
                       and cols[index + span][: depth + 1] == cols[index][: depth + 1]):
                    span += 1
                value = cols[index][depth]
                cells.append(f'<th colspan="{span}">{escape(value)}</th>')
                index += span
            head_rows.append(f'<tr><th class="group">{name}</th>{"".join(cells)}</tr>')
        body = []
        grouped = False
        for row in m.matrix_rows:
            if family_of(row) is Family.RESILIENCE and not grouped:
                grouped = True
                body.append(f'<tr class="group-row"><td colspan="{len(cols) + 1}">Resilience '
                            f"under injected faults ({Family.RESILIENCE.label}): the verdict "
                            'per cell is in the <a href="#cells">matrix</a> above</td></tr>')
            cells = []
            for col in m.matrix_cols:
                statuses = m.matrix.get((row, col))
                if statuses is None:
                    cells.append('<td><span class="s none">not run</span></td>')
                    continue
                now = statuses[-1]
                parts = " ".join(f'<span class="s {state}">{escape(text)}</span>'
                                for state, text in now.parts) or '<span class="s none">' \
                    "not run</span>"
                strip = "".join(
                    f'<span class="{s.state}" title="{escape(r.label)}: {escape(s.text)}">'
                    f"{LETTER[s.state]}</span>"
                    for s, r in zip(statuses, m.rounds, strict=True)
                )
                cells.append(f"<td>{parts}<br><span class=\"strip\">{strip}</span></td>")
            title = title_of(row)
            label = (f'{escape(row)} <span class="title">{escape(title)}</span>' if title
                     else escape(row))
            body.append(f"<tr><td>{label}</td>{''.join(cells)}</tr>")
        return (
            f'<section id="matrix"><h2>Matrix: spec item × board / profile / broker '
            f"(last {plural(len(m.rounds), 'round')})</h2><div class=\"scroll\">"
            f'<table class="matrix">{"".join(head_rows)}{"".join(body)}</table></div>'
            f"{self._key()}</section>"
        )

    def _trends(self) -> str:
        m = self.model
        heap = self._heap_chart()
        if not m.trends and not heap:
            return ('<p class="quiet" id="trends">No device metrics recorded in these '
                    "rounds.</p>")
        labels = [time.strftime("%m-%d %H:%M", time.gmtime(r.started)) for r in m.rounds]
        charts = heap + "".join(
            f"<div>{line_chart(t.title, t.unit, labels, t.series)}</div>" for t in m.trends
        )
        return (
            '<section id="trends"><h2>Trends (median per round, per board / profile / '
            f'broker)</h2><div class="charts">{charts}</div></section>'
        )

    def _heap_chart(self) -> str:
        """Free heap over messages in the latest round, from each cell's serial log."""
        series: dict[str, dict[int, float]] = {}
        for record in self.model.latest.results.values():
            folder = run_folder(record)
            if folder is None or record.cell in series:
                continue
            samples = _heap_samples(folder / SERIAL_LOG)
            if samples:
                series[record.cell or NO_CELL] = samples
        if not series:
            return ""
        counts = sorted({c for s in series.values() for c in s})
        index = {c: i for i, c in enumerate(counts)}
        points = {cell: [(index[c], v) for c, v in sorted(s.items())]
                  for cell, s in sorted(series.items())}
        chart = line_chart("Free heap over messages (latest round)", "bytes",
                           [str(c) for c in counts], points, x_title="messages sent")
        return f"<div>{chart}</div>"

    def _runs(self) -> str:
        latest = self.model.latest
        cells: dict[int, str] = {}
        for key, run in latest.run_of.items():
            cells.setdefault(run.run_id, latest.results[key].cell)
        rows = "".join(
            f"<tr><td>#{run.run_id}</td><td>{escape(cells.get(run.run_id) or '—')}</td>"
            f"<td>{escape(_utc(run.started))}</td>"
            f"<td>{_duration(run.finished - run.started)}</td><td>{run.exit_status}</td>"
            f'<td class="mono">{escape(run.command)}</td></tr>'
            for run in latest.runs
        )
        return (
            f'<section id="runs"><h2>Runs in the latest round ({len(latest.runs)})</h2><table>'
            "<tr><th>Run</th><th>Board / profile / broker</th><th>Started (UTC)</th>"
            f"<th>Took</th><th>Exit</th><th>Command</th></tr>{rows}</table></section>"
        )

    # --- pieces --------------------------------------------------------------------------
    def _links(self, record: TestRecord, current: Round, run: RunRecord | None = None, *,
               short: bool = False) -> str:
        run = run or current.run_of.get(record.key)
        names = sorted(record.artifacts, key=lambda n: (
            ARTIFACT_ORDER.index(n) if n in ARTIFACT_ORDER else 99, n))
        links: list[str] = []
        folder = run_folder(record)
        if run is not None and run.pruned_at is not None:
            when = time.strftime("%Y-%m-%d", time.gmtime(run.pruned_at))
            return (f'<span class="gone" title="deleted by --hil-keep on {when}">artifacts '
                    f"pruned {when}</span>") if names else ""
        if folder is not None and folder in self.timelines:
            href = artifact_href(str(self.timelines[folder]), self.out_dir)
            links.append(f'<a href="{escape(href)}">timeline</a>')
        for name in names:
            label = escape(name.replace("_", " ") if not short else SHORT_LABEL.get(name, name))
            path = record.artifacts[name]
            if Path(path).exists():
                links.append(f'<a href="{escape(artifact_href(path, self.out_dir))}">{label}</a>')
            else:
                links.append(f'<span class="gone" title="{escape(path)}">{label} (missing)</span>')
        return "".join(links) or '<span class="empty" title="no artifacts recorded">—</span>'

    def _spec(self, record: TestRecord) -> str:
        label = row_label(record)
        title = title_of(record.spec_item)
        return (f"<b>{escape(label)}</b>"
                + (f'<span class="title" title="{escape(title)}"> {escape(title)}</span>'
                   if title else ""))

    @staticmethod
    def _where(record: TestRecord) -> str:
        if not record.cell:
            return '<span class="empty">local</span>'
        transport = f" · {escape(record.transport)}" if record.transport else ""
        return escape(record.cell) + transport

    def _flaky_tag(self, record: TestRecord) -> str:
        flaky = any(f.record.key == record.key for f in self.model.flaky)
        return '<span class="tag" title="flips between pass and fail">FLAKY</span>' if flaky else ""

    def _since(self, record: TestRecord) -> str:
        """When a still-failing test last passed (or that it never did in the window)."""
        for earlier in reversed(self.model.rounds[:-1]):
            previous = earlier.results.get(record.key)
            if previous is not None and previous.outcome == "passed":
                return f'<div class="sub">last passed {escape(earlier.label)}</div>'
        return '<div class="sub">failing in every round shown</div>' if self.model.previous \
            else ""

    @staticmethod
    def _message(record: TestRecord) -> str:
        if not record.message:
            return ""
        klass = "msg" if record.bad else "reason"
        first = escape(record.first_line)
        rest = record.message.strip()
        if "\n" not in rest:
            return f'<div class="{klass}">{first}</div>'
        return (f'<div class="{klass}">{first}</div><details class="more"><summary>whole '
                f"message</summary><pre>{escape(rest)}</pre></details>")

    def _strip(self, outcomes: list[str | None]) -> str:
        spans = "".join(
            f'<span class="{STATE_OF[o]}" title="{escape(r.label)}: {escape(o or "not run")}">'
            f"{LETTER[STATE_OF[o]]}</span>"
            for o, r in zip(outcomes, self.model.rounds, strict=True)
        )
        return f'<span class="strip">{spans}</span>'

    @staticmethod
    def _key() -> str:
        return ('<div class="key">Key: P passed · F failed or error · S skipped or xfailed · '
                "– not applicable · · not run. Hover a square for its round.</div>")


def _heap_samples(serial_log: Path) -> dict[int, float]:
    """message count -> free bytes, from the run's ``Memory free`` lines."""
    if not serial_log.is_file():
        return {}
    samples: dict[int, float] = {}
    for line in serial_log.read_text(encoding="utf-8", errors="replace").splitlines():
        match = MEMORY_FREE.match(line.partition(" ")[2].strip())
        if match and int(match["free"]) >= 0:
            samples[int(match["count"])] = float(match["free"])
    return samples


def _tests_href(spec: str, cell: str) -> str:
    """The every-test table filtered to a spec item or family in one cell."""
    return "#tests?" + urlencode({"spec": spec, "cell": cell})


def _family(record: TestRecord) -> str:
    family = family_of(record.spec_item)
    return family.value if family else ""


def _spec_key(record: TestRecord) -> tuple[object, ...]:
    return (spec_key(row_label(record)), record.nodeid, record.cell)


def _test_name(record: TestRecord) -> str:
    """The test function (with its parameters) first, its file below it."""
    path, _, name = record.nodeid.rpartition("::")
    return (f'<span class="test-name">{escape(name or record.nodeid)}</span>'
            + (f'<span class="test-file">{escape(path)}</span>' if path else ""))


def _badge(status: str) -> str:
    return f'<span class="s {STATE_OF[status]}">{escape(STATUS_WORDS.get(status, status))}</span>'


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def _utc(stamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(stamp))


def render_report(model: ReportModel, out: Path, *, history_dir: Path) -> Path:
    """Write the page to ``out`` (creating its folder), and a timeline next to each run's
    serial log; returns the page's path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    html = ReportRenderer(model, out, history_dir=history_dir).render()
    out.write_text(html, encoding="utf-8")
    return out
