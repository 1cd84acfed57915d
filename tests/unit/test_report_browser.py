"""The report and a run timeline, opened in headless Chromium as a reader would open them:
nothing loads from the network, no console error, the filters work, no label is clipped."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.report.cli import build_report
from tests.unit.chromium import Chromium, find_chromium
from tests.unit.report_days import write_day

pytestmark = pytest.mark.unit

VISIBLE_ROWS = "[...document.querySelectorAll('#tests-table tbody tr')].filter(r => !r.hidden)"


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    binary = find_chromium()
    if binary is None:
        pytest.skip("headless Chromium is not installed: apt-get install chromium")
    with Chromium(binary, profile=tmp_path_factory.mktemp("chromium-profile")) as browser:
        yield browser


def _day(tmp_path: Path, *, red: bool) -> Path:
    write_day(tmp_path / "history", tmp_path / "site" / "results", red=red)
    return build_report(tmp_path / "history", tmp_path / "site" / "index.html").html


def _visible(chromium: Chromium) -> int:
    return int(chromium.evaluate(f"{VISIBLE_ROWS}.length"))


def _set(chromium: Chromium, js: str) -> None:
    chromium.evaluate(f"(() => {{ {js}; document.getElementById('tests-filter')"
                      f".dispatchEvent(new Event('change')); }})()")


def test_the_client_notices_network_requests_and_script_errors(
    chromium: Chromium, tmp_path: Path,
) -> None:
    page = tmp_path / "bad.html"
    page.write_text('<!doctype html><img src="http://192.0.2.1/logo.png">'
                    "<script>console.error('boom'); no_such_function();</script>")
    log = chromium.open(page)
    assert log.network_requests() == ["http://192.0.2.1/logo.png"]
    assert any("boom" in e for e in log.console_errors)
    assert any("no_such_function" in e for e in log.exceptions)


def test_a_red_day_reads_in_a_real_browser(chromium: Chromium, tmp_path: Path) -> None:
    page = _day(tmp_path, red=True)
    log = chromium.open(page)
    assert log.network_requests() == []
    assert log.errors() == []
    assert chromium.evaluate("document.querySelector('.verdict').innerText") == (
        "REGRESSION\n2 new failures since 2026-11-24 11:06, 1 fix, 2 flaky tests, 2 device "
        "metric shifts")
    assert _visible(chromium) == 28
    assert chromium.evaluate("document.getElementById('tests-shown').textContent") == (
        "28 of 28 tests")
    # Outcome filter: without the passes, the failures, skips and not-applicable remain.
    _set(chromium, "document.querySelector('input[name=status][value=passed]').checked = false")
    assert _visible(chromium) == 3 + 6 + 1
    _set(chromium, "document.querySelectorAll('input[name=status]').forEach(b => b.checked = true);"
                   "document.querySelector('select[name=spec]').value = 'S7'")
    assert _visible(chromium) == 2
    # The count chips link to the table filtered to that outcome.
    chromium.evaluate("document.querySelector('a.chip.fail').click()")
    chromium.evaluate("new Promise(r => setTimeout(r, 50))")
    _set(chromium, "document.querySelector('select[name=spec]').value = ''")
    statuses = chromium.evaluate(f"{VISIBLE_ROWS}.map(r => r.dataset.status)")
    assert statuses == ["failed", "failed", "failed"]
    # Text search over tests and reasons.
    _set(chromium, "document.querySelectorAll('input[name=status]').forEach(b => b.checked = true);"
                   "document.querySelector('input[name=q]').value = 'profile v1.25'")
    assert _visible(chromium) == 2
    # No pass badge holds a skip; S12 shows its pass and its skips side by side.
    badges = chromium.evaluate("[...document.querySelectorAll('#matrix .s.pass')]"
                               ".map(b => b.textContent)")
    assert badges and all(text.endswith(" passed") for text in badges)
    s12 = chromium.evaluate("[...document.querySelectorAll('#matrix tr')].find(r => "
                            "r.cells[0].textContent.startsWith('S12')).cells[1].innerText")
    assert s12.splitlines()[0].split() == ["1", "passed", "3", "skipped"]


def test_no_chart_label_is_clipped(chromium: Chromium, tmp_path: Path) -> None:
    chromium.open(_day(tmp_path, red=True))
    outside = chromium.evaluate("""[...document.querySelectorAll('svg.chart')].flatMap(svg => {
        const frame = svg.getBoundingClientRect();
        return [...svg.querySelectorAll('text')].filter(t => {
            const box = t.getBoundingClientRect();
            return box.left < frame.left - 0.5 || box.right > frame.right + 0.5; })
          .map(t => t.textContent); })""")
    assert outside == []
    charts = chromium.evaluate("[...document.querySelectorAll('svg.chart .chart-title')]"
                               ".map(t => t.textContent)")
    for title in ("Free heap over messages (latest round)", "Heap lost per message (leak rate)",
                  "Boot to connected (reset → Connected to MQTT Broker)", "Suite duration"):
        assert title in charts


def test_the_timeline_of_a_failure_highlights_what_the_check_quoted(
    chromium: Chromium, tmp_path: Path,
) -> None:
    page = _day(tmp_path, red=True)
    chromium.open(page)
    href = chromium.evaluate("[...document.querySelectorAll('#new-failures tr')].find(r => "
                             "r.textContent.includes('S7 violated')).querySelector("
                             "'a[href$=\"timeline.html\"]').href")
    timeline = Path(href.removeprefix("file://"))
    log = chromium.open(timeline)
    assert log.network_requests() == [] and log.errors() == []
    quoted = chromium.evaluate("[...document.querySelectorAll('#tl-events tr.q')]"
                               ".map(r => r.innerText.replace(/\\s+/g, ' '))")
    assert len(quoted) == 2 and all("Send '{\"msg\": " in q and "quoted by S7" in q
                                    for q in quoted)
    chromium.evaluate("(() => { const box = document.querySelector('input[name=quoted]');"
                      "box.checked = true; box.dispatchEvent(new Event('change', "
                      "{bubbles: true})); })()")
    shown = chromium.evaluate("[...document.querySelectorAll('#tl-events tbody tr')]"
                              ".filter(r => !r.hidden).length")
    assert shown == 2
    lanes = chromium.evaluate("[...document.querySelectorAll('#tl-events th')]"
                              ".map(t => t.textContent)")
    assert lanes[1:] == ["Device serial", "MQTT on the wire", "TLS / connection",
                         "Faults and other events"]
    back = chromium.evaluate("document.querySelector('header a').href")
    assert Path(back.removeprefix("file://")) == page.resolve()


def test_a_green_day_reads_clean(chromium: Chromium, tmp_path: Path) -> None:
    page = _day(tmp_path, red=False)
    log = chromium.open(page)
    assert log.network_requests() == [] and log.errors() == []
    text = chromium.evaluate("document.body.innerText")
    assert "ALL GOOD" in text and "(0)" not in text
    assert ("No new failures; nothing fixed; no flaky tests in the last 8 rounds; no device "
            "metric shifted.") in text
    assert json.loads(json.dumps(_visible(chromium))) == 28
