"""The report page: one self-contained HTML file (inline CSS and SVG, no scripts, no network).

Every status is shown as text as well as colour, so the page reads in greyscale and for
colour-blind readers.
"""

from __future__ import annotations

import os
import time
from html import escape
from pathlib import Path
from urllib.parse import quote

from harness.report.analysis import Change, ReportModel, row_label
from harness.report.history import TestRecord
from harness.report.svg import line_chart

LETTER = {"passed": "P", "failed": "F", "error": "E", "skipped": "S", "xfailed": "X", None: "·"}
STATE_OF = {"passed": "pass", "failed": "fail", "error": "fail", "skipped": "skip",
            "xfailed": "skip", None: "none"}
ARTIFACT_ORDER = ("serial_log", "tap_trace", "broker_log")

CSS = """
:root { --fg:#1d2330; --muted:#5b6473; --line:#dde2ea; --bg:#f6f7f9; --card:#fff;
  --pass:#1a7f37; --pass-bg:#dcf5e3; --fail:#b42318; --fail-bg:#fde4e1;
  --skip:#6b5a00; --skip-bg:#fbf1c7; --none:#8a93a3; --none-bg:#eef0f3; --warn-bg:#fff4d6; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--fg);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
  sans-serif; }
main { max-width: 1240px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 22px; margin: 0 0 4px; letter-spacing: -0.01em; }
h2 { font-size: 17px; margin: 0 0 12px; }
.sub { color: var(--muted); font-size: 13px; }
.verdict { border-radius: 10px; padding: 18px 22px; margin: 18px 0 20px; font-size: 22px;
  font-weight: 650; display:flex; align-items:center; gap:14px; }
.verdict .badge { font-size: 13px; font-weight: 700; padding: 3px 10px; border-radius: 99px;
  background: rgba(255,255,255,.7); letter-spacing: .04em; }
.verdict.pass { background: var(--pass-bg); color: var(--pass); }
.verdict.fail { background: var(--fail-bg); color: var(--fail); }
.verdict.warn { background: var(--warn-bg); color: #7a4d00; }
.chips { display:flex; flex-wrap:wrap; gap:8px; margin: 0 0 8px; }
.chip { border-radius: 6px; padding: 4px 10px; font-size: 14px; font-weight: 600; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: 18px 20px; margin: 0 0 18px; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th { text-align: left; color: var(--muted); font-weight: 600; font-size: 12px;
  text-transform: uppercase; letter-spacing: .04em; border-bottom: 1px solid var(--line);
  padding: 6px 8px; }
td { border-bottom: 1px solid var(--line); padding: 7px 8px; vertical-align: top; }
tr:last-child td { border-bottom: 0; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 13px; }
.msg { color: var(--fail); font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12.5px;
  word-break: break-word; }
.links a { margin-right: 10px; white-space: nowrap; }
a { color: #0b5cad; }
.s { display:inline-block; border-radius:5px; padding: 1px 8px; font-weight: 650; font-size: 13px; }
.s.pass { background: var(--pass-bg); color: var(--pass); }
.s.fail { background: var(--fail-bg); color: var(--fail); }
.s.skip { background: var(--skip-bg); color: var(--skip); }
.s.none { background: var(--none-bg); color: var(--none); }
.strip { display:inline-flex; flex-wrap: wrap; gap:2px; margin-top: 4px; max-width: 180px; }
.matrix .strip { justify-content: center; }
.scroll { overflow-x: auto; }
.strip span { width: 15px; height: 17px; border-radius: 3px; font-size: 10.5px; font-weight: 700;
  text-align:center; line-height: 17px; }
.strip .pass { background: var(--pass-bg); color: var(--pass); }
.strip .fail { background: var(--fail-bg); color: var(--fail); }
.strip .skip { background: var(--skip-bg); color: var(--skip); }
.strip .none { background: var(--none-bg); color: var(--none); }
.matrix td, .matrix th { text-align: center; }
.matrix th { text-transform: none; font-size: 12.5px; color: var(--fg); }
.tag { font-size: 11px; font-weight: 700; color: #7a4d00; background: var(--warn-bg);
  border-radius: 4px; padding: 0 5px; margin-left: 6px; }
.matrix td:first-child, .matrix th:first-child { text-align: left; font-weight: 650; }
.matrix td { min-width: 120px; }
.empty { color: var(--muted); font-style: italic; }
.charts { display:grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 18px; }
.chart { width: 100%; height: auto; }
.chart .grid { stroke: #e8ebf0; } .chart .axis { stroke: #8a93a3; }
.chart .tick { font-size: 11px; fill: var(--muted); }
.chart .axis-label { font-size: 12px; fill: var(--muted); }
.chart .chart-title { font-size: 14px; font-weight: 650; fill: var(--fg); }
.chart .legend { font-size: 12px; fill: var(--fg); }
.damage { background: var(--warn-bg); border-color: #e9c46a; }
.key { color: var(--muted); font-size: 12.5px; margin-top: 10px; }
footer { color: var(--muted); font-size: 12px; text-align: center; }
"""


def artifact_href(path: str, out_dir: Path) -> str:
    """A link to an artifact: relative to the page when possible, so a published folder
    keeps working; an absolute file URL otherwise (another drive)."""
    target = Path(path)
    try:
        relative = os.path.relpath(target, out_dir)
    except ValueError:
        return target.resolve().as_uri()
    return quote(Path(relative).as_posix())


class ReportRenderer:
    """Turns a :class:`ReportModel` into the HTML page written next to ``out``."""

    def __init__(self, model: ReportModel, out: Path, *, history_dir: Path) -> None:
        self.model = model
        self.out_dir = Path(out).resolve().parent
        self.history_dir = history_dir

    def render(self) -> str:
        m = self.model
        parts = [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>HIL report — {escape(m.verdict)}</title>",
            f"<style>{CSS}</style></head><body><main>",
            self._header(),
            self._damage(),
            self._changes("New failures", m.new_failures, "No test that passed before fails now."),
            self._still_failing(),
            self._changes("Fixed", m.fixes, "Nothing that failed before passes now."),
            self._flaky(),
            self._matrix(),
            self._trends(),
            self._runs(),
            f"<footer>Generated {escape(_utc(time.time()))} from "
            f"<code>{escape(str(self.history_dir))}</code> · {len(m.rounds)} rounds shown</footer>",
            "</main></body></html>",
        ]
        return "\n".join(p for p in parts if p)

    # --- sections ------------------------------------------------------------------------
    def _header(self) -> str:
        m, latest = self.model, self.model.latest
        badge = {"pass": "ALL GOOD", "fail": "REGRESSION", "warn": "ATTENTION"}[m.verdict_state]
        counts = latest.counts
        chips = "".join(
            f'<span class="chip s {STATE_OF[o]}">{counts[o]} {o}</span>'
            for o in ("passed", "failed", "error", "skipped", "xfailed") if counts[o]
        )
        revs = sorted({r.device_rev for r in latest.results.values() if r.device_rev})
        hosts = sorted({run.host for run in latest.runs if run.host})
        harness = sorted({run.harness_rev for run in latest.runs if run.harness_rev})
        minutes = (latest.finished - latest.started) / 60
        meta = [
            f"latest round {escape(latest.label)} UTC",
            f"{len(latest.runs)} run{'s' if len(latest.runs) != 1 else ''}",
            f"{minutes:.1f} min",
        ]
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
            f"<p>{len(self.model.damage)} run(s) could not be read and are left out; the rest "
            f"of this report is built from what could be read.</p><ul>{items}</ul></section>"
        )

    def _changes(self, title: str, changes: list[Change], none_text: str) -> str:
        anchor = title.lower().replace(" ", "-")
        if not changes:
            return (f'<section id="{anchor}"><h2>{title} (0)</h2>'
                    f'<p class="empty">{none_text}</p></section>')
        rows = "".join(
            "<tr>"
            f"<td><b>{escape(row_label(c.record))}</b></td>"
            f'<td><span class="mono">{escape(c.record.nodeid)}</span>{self._flaky_tag(c.record)}'
            f"{self._message(c.record)}</td>"
            f"<td>{escape(c.record.cell or '—')}</td>"
            f"<td>{_badge(c.previous.outcome)} → {_badge(c.record.outcome)}"
            f'<div class="sub">was {escape(c.previous.outcome)} on '
            f"{escape(c.previous_round.label)}</div></td>"
            f'<td class="links">{self._links(c.record)}</td>'
            "</tr>"
            for c in changes
        )
        return (
            f'<section id="{anchor}"><h2>{title} ({len(changes)})</h2><table>'
            "<tr><th>Spec</th><th>Test</th><th>Backend / profile / broker</th><th>Change</th>"
            f"<th>Artifacts</th></tr>{rows}</table></section>"
        )

    def _still_failing(self) -> str:
        still = self.model.still_failing
        if not still:
            return ""
        rows = "".join(
            f"<tr><td><b>{escape(row_label(r))}</b></td>"
            f'<td><span class="mono">{escape(r.nodeid)}</span>{self._message(r)}</td>'
            f"<td>{escape(r.cell or '—')}</td>"
            f'<td><span class="s fail">{escape(r.outcome)}</span></td>'
            f'<td class="links">{self._links(r)}</td></tr>'
            for r in still
        )
        title = "Still failing" if self.model.previous else "Failing"
        return (
            f'<section id="still-failing"><h2>{title} ({len(still)})</h2><table>'
            "<tr><th>Spec</th><th>Test</th><th>Backend / profile / broker</th><th>Outcome</th>"
            f"<th>Artifacts</th></tr>{rows}</table></section>"
        )

    def _flaky(self) -> str:
        flakes = self.model.flaky
        if not flakes:
            return ('<section id="flaky"><h2>Flaky tests (0)</h2><p class="empty">No test '
                    f"flipped between pass and fail more than once in the last "
                    f"{len(self.model.rounds)} rounds.</p></section>")
        rows = "".join(
            f"<tr><td><b>{escape(row_label(f.record))}</b></td>"
            f'<td><span class="mono">{escape(f.record.nodeid)}</span></td>'
            f"<td>{escape(f.record.cell or '—')}</td><td>{f.flips}</td>"
            f"<td>{self._strip(f.outcomes)}</td></tr>"
            for f in flakes
        )
        return (
            f'<section id="flaky"><h2>Flaky tests ({len(flakes)})</h2><table>'
            "<tr><th>Spec</th><th>Test</th><th>Backend / profile / broker</th><th>Flips</th>"
            "<th>Outcome per round (oldest → newest)</th></tr>"
            f"{rows}</table>{self._key()}</section>"
        )

    def _matrix(self) -> str:
        m = self.model
        head = "".join(f"<th>{'<br>'.join(escape(p) for p in col.split('/'))}</th>"
                       for col in m.matrix_cols)
        body = []
        for row in m.matrix_rows:
            cells = []
            for col in m.matrix_cols:
                statuses = m.matrix.get((row, col))
                if statuses is None:
                    cells.append('<td><span class="s none">not run</span></td>')
                    continue
                now = statuses[-1]
                strip = "".join(
                    f'<span class="{s.state}" title="{escape(r.label)}: {escape(s.text)}">'
                    f"{ {'pass': 'P', 'fail': 'F', 'skip': 'S', 'none': '·'}[s.state]}</span>"
                    for s, r in zip(statuses, m.rounds, strict=True)
                )
                cells.append(f'<td><span class="s {now.state}">{escape(now.text)}</span>'
                             f'<br><span class="strip">{strip}</span></td>')
            body.append(f"<tr><td>{escape(row)}</td>{''.join(cells)}</tr>")
        return (
            f'<section id="matrix"><h2>Matrix: spec item × backend / profile / broker '
            f"(last {len(m.rounds)} rounds)</h2><div class=\"scroll\"><table class=\"matrix\">"
            f"<tr><th>Spec</th>{head}</tr>{''.join(body)}</table></div>{self._key()}</section>"
        )

    def _trends(self) -> str:
        m = self.model
        if not m.trends:
            return ('<section id="trends"><h2>Device metric trends</h2><p class="empty">No '
                    "device metrics recorded in these rounds.</p></section>")
        labels = [time.strftime("%m-%d %H:%M", time.gmtime(r.started)) for r in m.rounds]
        charts = "".join(
            f"<div>{line_chart(t.title, t.unit, labels, t.series)}</div>" for t in m.trends
        )
        return (
            '<section id="trends"><h2>Device metric trends (median per round, per '
            f'backend / profile / broker)</h2><div class="charts">{charts}</div></section>'
        )

    def _runs(self) -> str:
        rows = "".join(
            f"<tr><td>#{run.run_id}</td><td>{escape(_utc(run.started))}</td>"
            f"<td>{(run.finished - run.started):.1f} s</td><td>{run.exit_status}</td>"
            f'<td class="mono">{escape(run.command)}</td></tr>'
            for run in self.model.latest.runs
        )
        return (
            '<section id="runs"><h2>Runs in the latest round</h2><table><tr><th>Run</th>'
            f"<th>Started (UTC)</th><th>Took</th><th>Exit</th><th>Command</th></tr>{rows}"
            "</table></section>"
        )

    # --- pieces --------------------------------------------------------------------------
    def _links(self, record: TestRecord) -> str:
        names = sorted(record.artifacts, key=lambda n: (
            ARTIFACT_ORDER.index(n) if n in ARTIFACT_ORDER else 99, n))
        links = [
            f'<a href="{escape(artifact_href(record.artifacts[n], self.out_dir))}">'
            f"{escape(n.replace('_', ' '))}</a>"
            for n in names
        ]
        return "".join(links) or '<span class="empty" title="no artifacts recorded">—</span>'

    def _flaky_tag(self, record: TestRecord) -> str:
        flaky = any(f.record.key == record.key for f in self.model.flaky)
        return '<span class="tag" title="flips between pass and fail">FLAKY</span>' if flaky else ""

    @staticmethod
    def _message(record: TestRecord) -> str:
        return f'<div class="msg">{escape(record.message)}</div>' if record.message else ""

    def _strip(self, outcomes: list[str | None]) -> str:
        spans = "".join(
            f'<span class="{STATE_OF[o]}" title="{escape(r.label)}: {escape(o or "not run")}">'
            f"{LETTER[o]}</span>"
            for o, r in zip(outcomes, self.model.rounds, strict=True)
        )
        return f'<span class="strip">{spans}</span>'

    @staticmethod
    def _key() -> str:
        return ('<div class="key">Key: P pass · F fail (E: error) · S skipped / xfailed · '
                "· not run. Hover a square for its round.</div>")


def _badge(outcome: str) -> str:
    return f'<span class="s {STATE_OF[outcome]}">{escape(outcome)}</span>'


def _utc(stamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(stamp))


def render_report(model: ReportModel, out: Path, *, history_dir: Path) -> Path:
    """Write the page to ``out`` (creating its folder) and return the path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    html = ReportRenderer(model, out, history_dir=history_dir).render()
    out.write_text(html, encoding="utf-8")
    return out
