"""The timeline page of one run: an overview strip per lane on one time axis, then every
event in time order in its lane's column, with the lines a failing check quoted marked."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from html import escape
from pathlib import Path

from harness.report.style import BASE_CSS
from harness.report.svg import nice_ticks
from harness.report.timeline import (
    FAULT,
    LANES,
    SERIAL,
        Timeline,
    build_timeline,
)
from harness.run_files import TIMELINE
from harness.wire import WireDirection

GAP_S = 1.0  # a quiet stretch longer than this gets its own row, so stalls stand out

TIMELINE_CSS = BASE_CSS + """
.checks { background: var(--fail-bg); border-color: #f1b8b0; }
.checks li { margin: 4px 0; }
.ev { table-layout: fixed; }
.ev td { padding: 2px 8px; font-family: ui-monospace, Menlo, Consolas, monospace;
  font-size: 12.5px; word-break: break-word; border-bottom: 1px solid #f0f2f5; }
.ev td.t { color: var(--muted); text-align: right; white-space: nowrap; }
.ev col.t { width: 84px; }
.ev tr.q td { background: var(--hl); }
.ev tr.q td.t { font-weight: 700; color: var(--fg); }
.ev tr.gap td { color: var(--muted); font-style: italic; text-align: center;
  background: var(--bg); font-family: inherit; font-size: 12px; }
.ev .dir { color: var(--muted); }
.ev .k-tls_error, .ev .k-close { color: var(--fail); }
.ev .other { color: #7a4d00; }
.qtag { font-family: system-ui, sans-serif; font-size: 11px; font-weight: 700;
  background: #f5c400; color: #3b2f00; border-radius: 4px; padding: 0 5px; margin-left: 6px; }
.controls { display:flex; gap: 14px; flex-wrap: wrap; font-size: 14px; margin: 0 0 8px; }
.overview { width: 100%; height: auto; }
.overview .lane-label { font-size: 12px; fill: var(--muted); }
.overview .tick { font-size: 11px; fill: var(--muted); }
details summary { cursor: pointer; }
.faults { background: #fff4e5; border-color: #f3c58b; }
.faults li { margin: 3px 0; }
.faults .when { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12.5px;
  color: var(--muted); }
.fkind { font-size: 12px; font-weight: 700; background: #D55E00; color: #fff;
  border-radius: 4px; padding: 0 6px; margin-right: 6px; }
.ev tr.during td.t { box-shadow: inset 4px 0 #E69F00; }
.ev tr.fault-row td { background: #fff4e5; }
.ev td.k-fault { color: #8a3b00; font-weight: 650; }
.overview .band { fill: #E69F00; fill-opacity: .28; }
.overview .band-label { font-size: 11px; fill: #8a3b00; font-weight: 700; }
"""

FILTER_JS = """
(function () {
  var form = document.getElementById('tl-filter');
  var rows = document.querySelectorAll('#tl-events tbody tr');
  function apply() {
    var lanes = {}, boxes = form.querySelectorAll('input[name=lane]');
    for (var i = 0; i < boxes.length; i++) lanes[boxes[i].value] = boxes[i].checked;
    var quotedOnly = form.elements.quoted && form.elements.quoted.checked;
    for (var j = 0; j < rows.length; j++) {
      var r = rows[j], lane = r.dataset.lane;
      r.hidden = lane ? !(lanes[lane] && (!quotedOnly || r.classList.contains('q')))
                      : quotedOnly;
    }
  }
  form.addEventListener('change', apply);
  apply();
})();
"""


@dataclass
class FailedCheck:
    """A failing test that points at this run: what the page names at its top."""

    item: str
    title: str
    nodeid: str
    first_line: str
    quoted: list[str]


def render_timeline(timeline: Timeline, checks: list[FailedCheck], *,
                    back_link: str = "") -> str:
    events = timeline.events
    name = timeline.run_dir.name
    session = timeline.run_dir.parent.name
    span = timeline.end - timeline.start
    counts = Counter(e.lane for e in events)
    meta = [f"session {escape(session)}"]
    if events:
        meta.append(f"started {escape(_utc(timeline.start))} UTC")
        meta.append(f"{span:.1f} s")
    meta.append(", ".join(f"{counts[lane]} {LANES[lane].lower()}" for lane in LANES
                          if counts[lane]) or "no events")
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Timeline — {escape(name)}</title>",
        f"<style>{TIMELINE_CSS}</style></head><body><main>",
        f"<header><h1>Run timeline: {escape(name)}</h1>",
        f'<div class="sub">{" · ".join(meta)}'
        + (f' · <a href="{escape(back_link)}">back to the report</a>' if back_link else "")
        + "</div></header>",
        _checks(checks),
        _faults(timeline),
    ]
    if not events:
        parts.append('<section><p class="empty">This run folder holds no timestamped events '
                     "(no serial log or tap trace).</p></section>")
    else:
        parts += [_overview(timeline), _table(timeline)]
    parts.append("</main></body></html>")
    return "\n".join(p for p in parts if p)


def write_timeline(run_dir: Path, checks: list[FailedCheck], *, back_link: str = "") -> Path:
    """Build and write ``run_dir/timeline.html``; returns its path."""
    quotes = {c.item or c.nodeid: c.quoted for c in checks if c.quoted}
    timeline = build_timeline(run_dir, quotes)
    out = run_dir / TIMELINE
    out.write_text(render_timeline(timeline, checks, back_link=back_link), encoding="utf-8")
    return out


def _checks(checks: list[FailedCheck]) -> str:
    if not checks:
        return ""
    items = "".join(
        f"<li><b>{escape(c.item or 'test')}</b> {escape(c.title)} — "
        f'<span class="mono">{escape(c.nodeid)}</span><br>{escape(c.first_line)}'
        + (f' <a href="#q1" class="qtag">{len(c.quoted)} quoted line'
           f'{"s" if len(c.quoted) != 1 else ""} highlighted: jump to the first</a>'
           if c.quoted else "")
        + "</li>"
        for c in checks
    )
    return (f'<section class="checks"><h2>Failing checks that point at this run '
            f"({len(checks)})</h2><ul>{items}</ul></section>")


def _faults(timeline: Timeline) -> str:
    """The faults injected in this run, each with when it was active (links to its row)."""
    spans = timeline.faults
    if not spans:
        return ""
    items = []
    for number, span in enumerate(spans, 1):
        begin = span.start - timeline.start
        if span.end is None:
            when = f"+{begin:.3f} s → the end of the records"
        else:
            when = f"+{begin:.3f} s → +{span.end - timeline.start:.3f} s " \
                f"({span.end - span.start:.1f} s)"
        items.append(f'<li><span class="fkind">{escape(span.name)}</span> '
                     f'<a href="#f{number}">{escape(span.text)}</a> '
                     f'<span class="when">{escape(when)}</span></li>')
    return (f'<section class="faults" id="faults"><h2>Faults injected in this run '
            f"({len(spans)})</h2><ul>{''.join(items)}</ul><div class=\"sub\">Shaded in the "
            "overview; rows while a fault was active are marked at the left.</div></section>")


def _overview(timeline: Timeline, width: int = 1200) -> str:
    left, right, row_h, top = 170, 16, 26, 8
    lanes = [lane for lane in LANES if any(e.lane == lane for e in timeline.events)]
    height = top + row_h * len(lanes) + 34
    span = max(timeline.end - timeline.start, 1e-3)
    plot = width - left - right

    def sx(t: float) -> float:
        return left + plot * (t - timeline.start) / span

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="overview" role="img" '
           f'viewBox="0 0 {width} {height}" width="{width}" height="{height}">',
           "<title>When each lane had events</title>"]
    for row, lane in enumerate(lanes):
        y = top + row * row_h
        out.append(f'<text x="{left - 8}" y="{y + 16}" text-anchor="end" '
                   f'class="lane-label">{escape(LANES[lane])}</text>')
        out.append(f'<rect x="{left}" y="{y + 3}" width="{plot}" height="{row_h - 6}" '
                   'fill="#f3f5f8"/>')
    for fault in timeline.faults:  # over the lanes, under the marks: when it was active
        x0 = sx(fault.start)
        x1 = sx(fault.end if fault.end is not None else timeline.end)
        out.append(f'<rect class="band" x="{x0:.1f}" y="{top}" width="{max(x1 - x0, 2):.1f}" '
                   f'height="{row_h * len(lanes)}"><title>{escape(fault.text)}</title></rect>')
    for row, lane in enumerate(lanes):
        y = top + row * row_h
        for event in timeline.events:
            if event.lane != lane:
                continue
            colour = "#b42318" if event.kind in ("tls_error",) else (
                "#c99a00" if event.quoted_by else "#D55E00" if lane == FAULT else "#0072B2")
            tall = 2 if event.quoted_by or event.kind == "tls_error" else 5
            out.append(f'<line x1="{sx(event.time):.1f}" x2="{sx(event.time):.1f}" '
                       f'y1="{y + tall}" y2="{y + row_h - tall}" stroke="{colour}"/>')
    base = top + row_h * len(lanes) + 4
    for tick in nice_ticks(0.0, span, 8):
        if tick > span + 1e-9:
            break
        x = sx(timeline.start + tick)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{base}" y2="{base + 4}" '
                   'stroke="#8a93a3"/>')
        anchor = "end" if x > width - right - 20 else "middle"
        out.append(f'<text x="{x:.1f}" y="{base + 17}" text-anchor="{anchor}" class="tick">'
                   f"+{tick:g} s</text>")
    out.append("</svg>")
    return "<section><h2>Overview</h2>" + "\n".join(out) + "</section>"


def _table(timeline: Timeline) -> str:
    present = {e.lane for e in timeline.events}
    lanes = [lane for lane in LANES if lane in present]
    boxes = "".join(
        f'<label><input type="checkbox" name="lane" value="{lane}" checked> '
        f"{escape(LANES[lane])}</label>" for lane in lanes if lane in present)
    quoted = any(e.quoted_by for e in timeline.events)
    if quoted:
        boxes += ('<label><input type="checkbox" name="quoted"> only the lines a check '
                  "quoted</label>")
    head = "".join(f'<th class="lane">{escape(LANES[lane])}</th>' for lane in lanes)
    rows: list[str] = []
    quoted_rows = 0
    spans = timeline.faults
    starts = {(span.start, span.name): n for n, span in enumerate(spans, 1)}
    previous = timeline.start
    for event in timeline.events:
        if event.time - previous > GAP_S:
            rows.append(f'<tr class="gap"><td colspan="{len(lanes) + 1}">'
                        f"… {event.time - previous:.1f} s without events …</td></tr>")
        previous = event.time
        cells = []
        for lane in lanes:
            if lane != event.lane:
                cells.append("<td></td>")
                continue
            text = escape(event.text)
            if event.direction:
                arrow = ("device → broker" if event.direction == WireDirection.CLIENT_TO_BROKER
                         else "broker → device")
                text = f'<span class="dir">{arrow}</span> {text}'
            if event.detail:
                text = f'<span title="{escape(event.detail)}">{text}</span>'
            tags = "".join(f'<span class="qtag">quoted by {escape(item)}</span>'
                           for item in event.quoted_by)
            klass = f"k-{escape(event.kind)}" + (" other" if lane not in (SERIAL, FAULT) and
                                                  event.kind not in ("packet", "open",
                                                                     "sni") else "")
            cells.append(f'<td class="{klass}">{text}{tags}</td>')
        offset = event.time - timeline.start
        classes: list[str] = []
        anchor = ""
        if event.quoted_by:
            quoted_rows += 1
            classes.append("q")
            anchor = f' id="q{quoted_rows}"'
        if event.lane == FAULT:
            classes.append("fault-row")
            number = starts.get((event.time, event.fault_kind))
            anchor = f' id="f{number}"' if number and not anchor else anchor
        active = [span for span in spans if span.covers(event.time)]
        if active:
            classes.append("during")
        stamp = f"{_utc(event.time)} UTC" + "".join(f"; during {span.name}" for span in active)
        klass = f' class="{" ".join(classes)}"' if classes else ""
        rows.append(f'<tr data-lane="{event.lane}"{klass}{anchor}><td class="t" '
                    f'title="{escape(stamp)}">+{offset:.3f}</td>'
                    f"{''.join(cells)}</tr>")
    omitted = (f'<p class="sub">{timeline.omitted_lines} earlier lines of this session\'s '
               "serial log (before this run's hard reset) are left out; the serial log has "
               "them.</p>" if timeline.omitted_lines else "")
    return (
        f'<section><h2>Events ({len(timeline.events)})</h2>{omitted}'
        f'<form id="tl-filter" class="controls">{boxes}</form>'
        f'<table class="ev" id="tl-events"><colgroup><col class="t">'
        f"{'<col>' * len(lanes)}</colgroup><thead><tr><th>+s</th>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></section><script>{FILTER_JS}</script>"
    )


def _utc(stamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(stamp)) + f".{int(stamp % 1 * 1000):03d}"
