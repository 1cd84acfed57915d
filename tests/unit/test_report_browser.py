"""The report and a run timeline, opened in headless Chromium as a reader would open them:
nothing loads from the network, no console error, the filters work, no label is clipped."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.report.cli import build_report
from tests.unit.chromium import Chromium, find_chromium
from tests.unit.report_days import NO_ACCESS_POINT, write_day

pytestmark = pytest.mark.unit

VISIBLE_ROWS = "[...document.querySelectorAll('#tests-table tbody tr')].filter(r => !r.hidden)"
# The red day's latest round: two emulated cells of 20 tests (10 + S12 x 4 + R1-R6) and a
# real board's 16 (no S12 profiles).
TESTS_SHOWN = 2 * 20 + 16
# The text of an element, and whether it is laid out inside the page's width (not clipped).
SHOWN = """(el => { const box = el.getBoundingClientRect();
  return box.width > 0 && box.height > 0 && box.left >= 0 &&
    box.right <= document.documentElement.clientWidth && el.scrollWidth <= el.clientWidth + 1;
})"""


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
        "REGRESSION\n3 new failures since 2026-11-24 11:06, 1 fix, 2 flaky tests, 2 device "
        "metric shifts")
    assert _visible(chromium) == TESTS_SHOWN
    assert chromium.evaluate("document.getElementById('tests-shown').textContent") == (
        f"{TESTS_SHOWN} of {TESTS_SHOWN} tests")
    # Outcome filter: without the passes, the failures, skips and not-applicable remain.
    _set(chromium, "document.querySelector('input[name=status][value=passed]').checked = false")
    assert _visible(chromium) == 4 + 6 + 2
    _set(chromium, "document.querySelectorAll('input[name=status]').forEach(b => b.checked = true);"
                   "document.querySelector('select[name=spec]').value = 'S7'")
    assert _visible(chromium) == 3
    # The count chips link to the table filtered to that outcome.
    chromium.evaluate("document.querySelector('a.chip.fail').click()")
    chromium.evaluate("new Promise(r => setTimeout(r, 50))")
    _set(chromium, "document.querySelector('select[name=spec]').value = ''")
    statuses = chromium.evaluate(f"{VISIBLE_ROWS}.map(r => r.dataset.status)")
    assert statuses == ["failed"] * 4
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
                         "Injected faults"]
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
    assert json.loads(json.dumps(_visible(chromium))) == TESTS_SHOWN


def _resilience_cells(chromium: Chromium) -> dict[str, dict[str, object]]:
    """Per matrix cell (board/profile/broker): the resilience verdict's badges, its item
    squares (text, state, title) and its per-round strip."""
    return dict(chromium.evaluate("""Object.fromEntries([...document.querySelectorAll(
        '#cells tbody tr')].map(r => [r.dataset.cell, {
          badges: [...r.querySelectorAll('td.resilience .verdict-link .s')]
            .map(b => b.textContent),
          link: r.querySelector('td.resilience .verdict-link').getAttribute('href'),
          tip: r.querySelector('td.resilience .verdict-link').title,
          items: [...r.querySelectorAll('td.resilience .item')].map(i =>
            [i.textContent, i.className.replace('item ', ''), i.title]),
          strip: [...r.querySelectorAll('td.resilience .strip span')].map(s =>
            [s.textContent, s.title]),
          core: [...r.querySelectorAll('td.core .verdict-link .s')].map(b => b.textContent),
        }]))"""))


def test_the_matrix_gives_each_cell_a_resilience_verdict(
    chromium: Chromium, tmp_path: Path,
) -> None:
    page = _day(tmp_path, red=True)
    log = chromium.open(page)
    assert log.network_requests() == [] and log.errors() == []
    heads = chromium.evaluate("[...document.querySelectorAll('#cells th')]"
                              ".map(t => t.textContent)")
    assert heads == ["Board", "Profile", "Broker", "Spec S1–S13",
                     "Resilience R1–R6 (faults injected)"]
    # Every label of the cells table is laid out on the page, none cut off.
    hidden = chromium.evaluate(f"[...document.querySelectorAll('#cells th, #cells .s, "
                               f"#cells .item')].filter(el => !{SHOWN}(el))"
                               ".map(el => el.textContent)")
    assert hidden == []
    cells = _resilience_cells(chromium)
    assert list(cells) == ["emu/v1.22/amqtt", "emu/v1.22/mosquitto", "serial/flashed/amqtt"]
    assert cells["emu/v1.22/amqtt"]["badges"] == ["6 passed"]
    assert cells["emu/v1.22/mosquitto"]["badges"] == ["1 failed (R3)", "5 passed"]
    assert cells["emu/v1.22/mosquitto"]["core"] == ["2 failed (S7, S11)", "9 passed",
                                                    "2 not run"]
    # On the real board R4 cannot apply: n/a with the reason on hover, never a failure.
    board = cells["serial/flashed/amqtt"]
    assert board["badges"] == ["5 passed", "1 n/a"]
    r4 = next(i for i in board["items"] if i[0] == "R4")  # type: ignore[attr-defined]
    assert r4[1] == "na" and NO_ACCESS_POINT in r4[2]
    assert f"R4: {NO_ACCESS_POINT}" in str(board["tip"])
    states = {i[0]: i[1] for i in cells["emu/v1.22/mosquitto"]["items"]}  # type: ignore
    assert states == {"R1": "pass", "R2": "pass", "R3": "fail", "R4": "pass", "R5": "pass",
                      "R6": "pass"}
    # The history keeps it: one square per round, the program without reconnect as n/a.
    strip = cells["emu/v1.22/mosquitto"]["strip"]
    assert [text for text, _ in strip] == ["–"] * 3 + ["P"] * 4 + ["F"]  # type: ignore
    assert strip[0][1].endswith(": 6 n/a")  # type: ignore[index]
    assert strip[-1][1].endswith(": 1 failed (R3), 5 passed")  # type: ignore[index]


def test_a_resilience_verdict_opens_the_r_tests_of_its_cell(
    chromium: Chromium, tmp_path: Path,
) -> None:
    chromium.open(_day(tmp_path, red=True))
    chromium.evaluate("[...document.querySelectorAll('#cells tbody tr')].find(r => r.dataset"
                      ".cell === 'emu/v1.22/mosquitto').querySelector('td.resilience "
                      ".verdict-link').click()")
    chromium.evaluate("new Promise(r => setTimeout(r, 50))")
    rows = chromium.evaluate(f"{VISIBLE_ROWS}.map(r => [r.dataset.spec, r.dataset.cell, "
                             "r.dataset.status])")
    assert rows == [[f"R{n}", "emu/v1.22/mosquitto", "failed" if n == 3 else "passed"]
                    for n in range(1, 7)]
    assert chromium.evaluate("document.querySelector('select[name=cell]').value") == (
        "emu/v1.22/mosquitto")
    top = chromium.evaluate("document.getElementById('tests').getBoundingClientRect().top")
    assert abs(top) < 2  # scrolled to the table
    # An item square opens that one test.
    chromium.evaluate("[...document.querySelectorAll('#cells tbody tr')].find(r => r.dataset"
                      ".cell === 'serial/flashed/amqtt').querySelector('a.item.na').click()")
    chromium.evaluate("new Promise(r => setTimeout(r, 50))")
    rows = chromium.evaluate(f"{VISIBLE_ROWS}.map(r => [r.dataset.spec, r.dataset.status, "
                             "r.querySelector('.reason').textContent])")
    assert rows == [["R4", "n/a", NO_ACCESS_POINT]]


def test_the_timeline_of_a_failing_resilience_run_shows_its_faults(
    chromium: Chromium, tmp_path: Path,
) -> None:
    chromium.open(_day(tmp_path, red=True))
    href = chromium.evaluate("[...document.querySelectorAll('#new-failures tr')].find(r => "
                             "r.textContent.includes('R3 violated')).querySelector("
                             "'a[href$=\"timeline.html\"]').href")
    log = chromium.open(Path(href.removeprefix("file://")))
    assert log.network_requests() == [] and log.errors() == []
    faults = chromium.evaluate("[...document.querySelectorAll('#faults li')]"
                               ".map(li => li.innerText)")
    assert faults == ["reset_peer reset_peer both after echo #3 for 1 s: echo #3 seen "
                      "+0.900 s → +1.900 s (1.0 s)"]
    assert chromium.evaluate(f"[...document.querySelectorAll('#faults .fkind, #tl-events th,"
                             f" .overview .lane-label')].filter(el => !{SHOWN}(el)).length") == 0
    lanes = chromium.evaluate("[...document.querySelectorAll('.overview .lane-label')]"
                              ".map(t => t.textContent)")
    assert lanes == ["Device serial", "MQTT on the wire", "TLS / connection", "Injected faults"]
    assert chromium.evaluate("document.querySelectorAll('.overview rect.band').length") == 1
    # The fault events sit in their own lane, in time order with the packets; what
    # happened while the reset was active is marked, the reconnect after it is not.
    rows = chromium.evaluate("""[...document.querySelectorAll('#tl-events tbody tr')]
        .filter(r => r.dataset.lane).map(r => [r.cells[0].textContent, r.dataset.lane,
          r.classList.contains('during'), r.innerText.replace(/\\s+/g, ' ').trim()])""")
    fault_rows = [r for r in rows if r[1] == "fault"]
    assert [r[0] for r in fault_rows] == ["+0.900", "+1.900"]
    assert fault_rows[0][3].endswith("start reset_peer both after echo #3 for 1 s: echo #3 seen")
    assert fault_rows[1][3].endswith("end reset_peer both after echo #3 for 1 s: after 1 s")
    during = [r[3] for r in rows if r[2] and r[1] != "fault"]
    assert any("#1 connection closed: reset by fault (RST)" in text for text in during)
    first = rows.index(fault_rows[0])
    assert any("CONNECT client id" in r[3] for r in rows[:first])
    after = [r for r in rows[rows.index(fault_rows[1]) + 1:]]
    assert any("CONNECT client id" in r[3] and not r[2] for r in after)
    # The list links to the fault's row.
    chromium.evaluate("document.querySelector('#faults a').click()")
    assert chromium.evaluate("location.hash") == "#f1"
    assert chromium.evaluate("document.getElementById('f1').dataset.lane") == "fault"
