"""The report's and the timeline's inline CSS and JS (one home for the look of both pages).

No fonts, images or scripts are loaded from anywhere: each page is one self-contained file.
Every status is text as well as colour, so the pages read in greyscale too.
"""

from __future__ import annotations

BASE_CSS = """
:root { --fg:#1d2330; --muted:#5b6473; --line:#dde2ea; --bg:#f6f7f9; --card:#fff;
  --pass:#1a7f37; --pass-bg:#dcf5e3; --fail:#b42318; --fail-bg:#fde4e1;
  --skip:#6b5a00; --skip-bg:#fbf1c7; --na:#4b5563; --na-bg:#e5e7eb;
  --none:#8a93a3; --none-bg:#eef0f3; --warn-bg:#fff4d6; --hl:#fff1a8; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--fg);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
  sans-serif; }
main { max-width: 1320px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 22px; margin: 0 0 4px; letter-spacing: -0.01em; }
h2 { font-size: 17px; margin: 0 0 12px; }
.sub { color: var(--muted); font-size: 13px; }
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
a { color: #0b5cad; }
.s { display:inline-block; border-radius:5px; padding: 1px 8px; font-weight: 650;
  font-size: 13px; white-space: nowrap; }
.pass { --c: var(--pass); --b: var(--pass-bg); } .fail { --c: var(--fail); --b: var(--fail-bg); }
.skip { --c: var(--skip); --b: var(--skip-bg); } .na { --c: var(--na); --b: var(--na-bg); }
.none { --c: var(--none); --b: var(--none-bg); }
.s.pass, .s.fail, .s.skip, .s.na, .s.none { background: var(--b); color: var(--c); }
.empty { color: var(--muted); font-style: italic; }
footer { color: var(--muted); font-size: 12px; text-align: center; }
"""

REPORT_CSS = BASE_CSS + """
.verdict { border-radius: 10px; padding: 18px 22px; margin: 18px 0 14px; font-size: 22px;
  font-weight: 650; display:flex; align-items:center; gap:14px; }
.verdict .badge { font-size: 13px; font-weight: 700; padding: 3px 10px; border-radius: 99px;
  background: rgba(255,255,255,.7); letter-spacing: .04em; }
.verdict.pass { background: var(--pass-bg); color: var(--pass); }
.verdict.fail { background: var(--fail-bg); color: var(--fail); }
.verdict.warn { background: var(--warn-bg); color: #7a4d00; }
.chips { display:flex; flex-wrap:wrap; gap:8px; margin: 0 0 16px; }
.chip { border-radius: 6px; padding: 4px 10px; font-size: 14px; font-weight: 600; }
.quiet { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: 10px 20px; margin: 0 0 18px; color: var(--muted); }
.msg { color: var(--fail); font-family: ui-monospace, Menlo, Consolas, monospace;
  font-size: 12.5px; word-break: break-word; }
.reason { color: var(--muted); font-size: 13px; word-break: break-word; }
details.more summary { cursor: pointer; color: var(--muted); font-size: 12px; }
details.more pre { white-space: pre-wrap; font-size: 12px; background: var(--bg);
  padding: 8px; border-radius: 6px; max-height: 320px; overflow: auto; }
.links a, .links .gone { margin-right: 10px; white-space: nowrap; font-size: 13px; }
.gone { color: var(--muted); font-style: italic; }
.strip { display:inline-flex; flex-wrap: wrap; gap:2px; margin-top: 4px; max-width: 180px; }
.strip span { width: 15px; height: 17px; border-radius: 3px; font-size: 10.5px;
  font-weight: 700; text-align:center; line-height: 17px; background: var(--b); color: var(--c); }
.scroll { overflow-x: auto; }
.tag { font-size: 11px; font-weight: 700; color: #7a4d00; background: var(--warn-bg);
  border-radius: 4px; padding: 0 5px; margin-left: 6px; }
table.matrix { width: auto; }
.matrix td, .matrix th { text-align: center; padding: 5px 8px; }
.matrix th { text-transform: none; font-size: 12.5px; color: var(--fg); }
.matrix th.group { color: var(--muted); font-weight: 600; }
.matrix td:first-child, .matrix th:first-child { text-align: left; font-weight: 650; }
.matrix .title { font-weight: 400; color: var(--muted); font-size: 12.5px; }
.matrix .s { margin: 1px; }
.charts { display:grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr));
  gap: 18px; }
.chart { width: 100%; height: auto; }
.chart .grid { stroke: #e8ebf0; } .chart .axis { stroke: #8a93a3; }
.chart .tick { font-size: 11px; fill: var(--muted); }
.chart .axis-label { font-size: 12px; fill: var(--muted); }
.chart .chart-title { font-size: 14px; font-weight: 650; fill: var(--fg); }
.chart .legend { font-size: 12px; fill: var(--fg); }
.damage { background: var(--warn-bg); border-color: #e9c46a; }
.key { color: var(--muted); font-size: 12.5px; margin-top: 10px; }
.filters { display:flex; flex-wrap: wrap; gap: 8px 14px; align-items: center;
  margin: 0 0 10px; font-size: 14px; }
.filters label { white-space: nowrap; cursor: pointer; }
.filters select, .filters input[type=search] { font: inherit; font-size: 14px;
  padding: 2px 6px; }
.filters select { max-width: 300px; }
#tests-table { table-layout: fixed; min-width: 1100px; }
#tests-table col.spec { width: 170px; } #tests-table col.outcome { width: 118px; }
#tests-table col.time { width: 66px; } #tests-table col.cell { width: 150px; }
#tests-table col.links { width: 130px; } #tests-table col.message { width: 24%; }
td .title { display:block; color: var(--muted); font-size: 12.5px; }
#tests-table td .title { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
td.num { text-align: right; white-space: nowrap; }
.test-name { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 13px;
  overflow-wrap: anywhere; }
.test-file { display:block; color: var(--muted); font-size: 12px; overflow-wrap: anywhere; }
#tests-table .links a, #tests-table .links .gone { display: inline-block; margin: 0 8px 0 0; }
table.cells { width: auto; min-width: 760px; }
.cells td { vertical-align: top; }
.cells td.core, .cells td.resilience { min-width: 250px; }
.cells td.resilience { border-left: 2px solid var(--line); }
.cells th:last-child { border-left: 2px solid var(--line); }
a.verdict-link { text-decoration: none; }
a.verdict-link .s { margin: 0 4px 2px 0; }
a.verdict-link:hover .s { text-decoration: underline; }
.items { display:flex; gap: 3px; margin: 4px 0 0; }
.items .item { min-width: 26px; padding: 0 3px; border-radius: 4px; font-size: 11px;
  font-weight: 700; text-align: center; line-height: 18px; text-decoration: none;
  background: var(--b); color: var(--c); }
.why { color: var(--muted); font-size: 12.5px; max-width: 360px; white-space: nowrap;
  overflow: hidden; text-overflow: ellipsis; margin-top: 3px; }
.matrix tr.group-row td { text-align: left; font-weight: 600; color: var(--muted);
  background: var(--bg); font-size: 12.5px; }
"""

# The every-test table's filter: outcome checkboxes, a spec item (or family) menu, a cell
# menu and a text box. Without JS the table simply shows every row.
FILTER_JS = """
(function () {
  var table = document.getElementById('tests-table');
  var form = document.getElementById('tests-filter');
  if (!table || !form) return;
  var rows = table.tBodies[0].rows, shown = document.getElementById('tests-shown');
  function apply() {
    var wanted = {}, boxes = form.querySelectorAll('input[name=status]');
    for (var i = 0; i < boxes.length; i++) wanted[boxes[i].value] = boxes[i].checked;
    var spec = form.elements.spec.value, text = form.elements.q.value.toLowerCase(), n = 0;
    var cell = form.elements.cell ? form.elements.cell.value : '';
    for (var j = 0; j < rows.length; j++) {
      var r = rows[j];
      var ok = wanted[r.dataset.status] &&
        (!spec || r.dataset.spec === spec || r.dataset.family === spec) &&
        (!cell || r.dataset.cell === cell) &&
        (!text || r.textContent.toLowerCase().indexOf(text) >= 0);
      r.hidden = !ok; if (ok) n++;
    }
    shown.textContent = n + ' of ' + rows.length + (rows.length === 1 ? ' test' : ' tests');
  }
  function choose(select, value) {
    if (!select) return;
    for (var i = 0; i < select.options.length; i++)
      if (select.options[i].value === value) { select.value = value; return; }
    select.value = '';
  }
  // "#tests?status=failed,error" (the count chips) shows only those outcomes;
  // "#tests?spec=resilience&cell=emu/v1.22/amqtt" (the matrix) one family or item of a cell.
  function fromHash() {
    var at = location.hash.indexOf('?');
    if (location.hash.indexOf('#tests') !== 0 || at < 0) return;
    var params = new URLSearchParams(location.hash.slice(at + 1));
    var keep = params.has('status') ? params.get('status').split(',') : null;
    var all = form.querySelectorAll('input[name=status]');
    for (var k = 0; k < all.length; k++)
      all[k].checked = keep === null || keep.indexOf(all[k].value) >= 0;
    choose(form.elements.spec, params.get('spec') || '');
    choose(form.elements.cell, params.get('cell') || '');
    apply();
    document.getElementById('tests').scrollIntoView();
  }
  form.addEventListener('input', apply);
  form.addEventListener('change', apply);
  window.addEventListener('hashchange', fromHash);
  apply();
  fromHash();
})();
"""
