"""The report's every-test table, honest counts, collapsed sections, and run timelines."""

from __future__ import annotations

import json
import time
from html import escape
from pathlib import Path

import pytest

from harness.checks.evidence import Evidence, Expectation, SerialLine
from harness.checks.findings import Finding
from harness.report.analysis import analyse
from harness.report.history import History, RunRecord, TestRecord
from harness.report.render import render_report
from harness.report.timeline import FAULT, SERIAL, TLS, WIRE, build_timeline, quoted_lines
from harness.spec_items import SPEC_ITEMS
from tests.unit.report_days import write_day

pytestmark = pytest.mark.unit


def _render(tmp_path: Path, red: bool = True) -> tuple[str, Path]:
    write_day(tmp_path / "history", tmp_path / "site" / "results", red=red)
    with History.for_reading(tmp_path / "history") as history:
        model = analyse(history.load(30))
    out = render_report(model, tmp_path / "site" / "index.html", history_dir=tmp_path)
    return out.read_text(), out


def _section(html: str, anchor: str) -> str:
    start = html.index(f'id="{anchor}"')
    return html[start:html.index("</section>", start)]


def test_every_test_of_the_latest_round_is_a_row_with_its_spec_title_and_reason(
    tmp_path: Path,
) -> None:
    html, _ = _render(tmp_path)
    table = _section(html, "tests")
    rows = table.split("<tr data-status=")[1:]
    # 2 emulated cells x (10 tests + S12 on 4 profiles + R1-R6), a real board's 10 + 6
    assert len(rows) == 2 * (10 + 4 + 6) + 16
    s7 = next(r for r in rows if "mosquitto" in r and 'data-spec="S7"' in r)
    assert s7.startswith('"failed"')
    assert SPEC_ITEMS["S7"].title in s7  # the description comes from harness.spec_items
    assert "S7 violated" in s7 and ">timeline</a>" in s7 and ">serial</a>" in s7
    skipped = [r for r in rows if r.startswith('"skipped"')]
    assert len(skipped) == 6 and all("firmware profile v1.2" in r for r in skipped)
    sni, r4 = [r for r in rows if r.startswith('"n/a"')]
    assert "not applicable: the seed program always uses sni=True" in sni
    assert 'data-spec="R4"' in r4 and "needs the emulated access point" in r4
    assert 'name="status" value="failed"' in table and '<option value="S12">' in table


def test_skips_are_never_inside_a_pass_badge_and_not_applicable_is_its_own_count(
    tmp_path: Path,
) -> None:
    html, _ = _render(tmp_path)
    matrix = _section(html, "matrix")
    s12 = matrix[matrix.index("<tr><td>S12"):]
    s12 = s12[:s12.index("</tr>")]
    assert '<span class="s pass">1 passed</span> <span class="s skip">3 skipped</span>' in s12
    assert '<span class="s na">1 n/a</span>' in matrix
    start = html.index('<div class="chips">')
    chips = html[start:html.index("</div>", start)]
    assert "6 skipped" in chips and "2 not applicable" in chips and "44 passed" in chips


def test_a_green_day_collapses_empty_sections_to_one_line_with_correct_plurals(
    tmp_path: Path,
) -> None:
    write_day(tmp_path / "history", tmp_path / "site" / "results", red=False, nights=1)
    with History.for_reading(tmp_path / "history") as history:
        model = analyse(history.load(30))
    html = render_report(model, tmp_path / "site" / "index.html",
                         history_dir=tmp_path).read_text()
    assert "(0)</h2>" not in html
    assert ("First recorded round: nothing to compare with; no flaky tests in the last 1 "
            "round.") in html
    assert "1 round shown" in html and "1 rounds" not in html
    assert "last 1 round)" in html  # the matrix heading


def test_the_verdict_counts_the_one_test_in_the_singular(tmp_path: Path) -> None:
    with History.for_writing(tmp_path) as history:
        for night in range(2):
            history.record_run(RunRecord(started=night * 100.0, finished=night * 100.0 + 1),
                               [TestRecord("t.py::test_a", "passed")])
    with History.for_reading(tmp_path) as history:
        model = analyse(history.load(5))
    assert model.verdict == "The 1 test passed"


def _run_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "runs" / "20261201-120000-abcd" / "01-messaging"
    folder.mkdir(parents=True)
    t0 = time.mktime((2026, 12, 1, 23, 59, 59, 0, 0, -1))  # the run crosses midnight
    serial = [(0.0, "[harness] hard reset"), (0.5, "Connected on 192.168.4.23"),
              (1.2, "Send '{\"msg\": 0}' to topic 't'"),
              (1.4, "Traceback (most recent call last):")]
    with (folder / "serial.log").open("w") as out:
        out.write("23:59:00.000 an earlier run's line\n")
        for offset, text in serial:
            stamp = t0 + offset
            out.write(time.strftime("%H:%M:%S", time.localtime(stamp))
                      + f".{min(999, round(stamp % 1 * 1000)):03d} {text}\n")
    tap = [
        {"kind": "open", "conn": 1, "time": t0 + 0.6, "detail": "from 127.0.0.1:5"},
        {"kind": "sni", "conn": 1, "time": t0 + 0.7, "detail": "broker.test"},
        {"kind": "packet", "conn": 1, "time": t0 + 0.8, "dir": "c2b", "type": "CONNECT",
         "fields": {"client_id": "dut", "username": "u", "password_present": True,
                    "password_length": 6, "keepalive": 30, "protocol_level": 4}},
        {"kind": "packet", "conn": 1, "time": t0 + 0.9, "dir": "b2c", "type": "CONNACK",
         "fields": {"return_code": 0, "return_text": "accepted"}},
        {"kind": "fault", "conn": 1, "time": t0 + 1.3, "detail": "black hole for 5 s"},
        {"kind": "tls_error", "conn": 2, "time": t0 + 1.5, "detail": "unknown ca"},
    ]
    (folder / "tap.jsonl").write_text("".join(json.dumps(r) + "\n" for r in tap)
                                      + '{"cut short')
    return folder


def test_a_timeline_puts_serial_wire_tls_and_any_other_event_on_one_axis(
    tmp_path: Path,
) -> None:
    folder = _run_folder(tmp_path)
    timeline = build_timeline(folder, {"S7": ["Send '{\"msg\": 0}' to topic 't'"]})
    lanes = [(e.lane, e.text.split(" ")[0]) for e in timeline.events]
    assert lanes == [
        (SERIAL, "[harness]"), (SERIAL, "Connected"), (TLS, "#1"), (TLS, "#1"),
        (WIRE, "CONNECT"), (WIRE, "CONNACK"), (SERIAL, "Send"), (FAULT, "#1"),
        (SERIAL, "Traceback"), (TLS, "#2"),
    ]
    assert timeline.omitted_lines == 1  # the earlier run's line in the session's log
    by_text = {e.text: e for e in timeline.events}
    assert by_text["Send '{\"msg\": 0}' to topic 't'"].quoted_by == ("S7",)
    assert by_text["CONNACK 0 (accepted)"].direction == "b2c"
    assert "#1 black hole for 5 s" in by_text
    assert "#2 TLS handshake failed: unknown ca" in by_text
    assert "#1 ClientHello, SNI 'broker.test'" in by_text
    assert timeline.events[1].time == pytest.approx(timeline.events[2].time - 0.1, abs=0.002)


def test_quoted_lines_read_back_what_a_finding_quotes() -> None:
    evidence = Evidence(Expectation(server="b", topic="t", client_id=None, username=None,
                                    keepalive=0, publish_interval=1.0, wifi_ip="1.2.3.4"),
                        serial=[SerialLine(0.0, "Connected on 1.2.3.4"),
                                SerialLine(1.0, "ERROR oops"), SerialLine(2.0, "tail line")])
    finding = Finding("S3", "x", evidence, quote=("ERROR",)).fail("bad")
    assert quoted_lines(finding.message()) == ["ERROR oops"]


def test_the_failure_links_a_timeline_that_highlights_the_quoted_lines(tmp_path: Path) -> None:
    html, _ = _render(tmp_path)
    new = _section(html, "new-failures")
    start = new.index('href="', new.index("S7 violated"))
    href = new[start + 6:new.index('"', start + 6)]
    assert href.endswith("01-messaging/timeline.html")
    page = (tmp_path / "site" / href).read_text()
    assert "Failing checks that point at this run (1)" in page
    assert page.count('class="q"') == 2  # the two Send lines S7 quoted
    assert "quoted by S7" in page and "drop b2c PUBLISH (injected)" in page


def test_a_program_that_starts_leaking_heap_is_named_at_the_top(tmp_path: Path) -> None:
    html, _ = _render(tmp_path)
    shifts = _section(html, "shifts")
    assert "Heap lost per message (leak rate) rose from 6 to 4,800 bytes" in shifts
    assert "emu/v1.22/amqtt" in shifts and "2026-11-23" in shifts
    assert html.index('id="shifts"') < html.index('id="matrix"')


def test_the_timeline_command_writes_any_run_folders_page_with_its_failures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    from harness.__main__ import main

    write_day(tmp_path / "history", tmp_path / "results", red=True)
    old = next((tmp_path / "results" / "emu-amqtt").glob("*-n1")) / "01-messaging"  # S8 failed
    assert main(["timeline", str(old), "--history", str(tmp_path / "history")]) == 0
    page = (old / "timeline.html").read_text()
    assert "Failing checks that point at this run (1)" in page and "S8 violated" in page
    assert main(["timeline", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("harness timeline: error: ") and "holds no serial.log" in err
    assert "\n" not in err


def test_the_rig_measures_boot_to_connected_and_the_heap_lost_per_message() -> None:
    from harness.hil.rig import boot_and_heap_metrics

    lines = [(0.0, "ets Jun  8 2016 00:22:57"), (2.5, 'Connected to MQTT Broker "b"')]
    lines += [(3.0 + n, f"Memory free: {90_000 - 1_000 * n} bytes after {n + 1} messages")
              for n in range(6)]
    evidence = Evidence(Expectation(server="b", topic="t", client_id=None, username=None,
                                    keepalive=0, publish_interval=1.0, wifi_ip="1.2.3.4"),
                        serial=[SerialLine(t, text) for t, text in lines])
    metrics = boot_and_heap_metrics(evidence)
    assert metrics == {"boot_to_connected_ms": 2500.0, "heap_free_bytes": 85_000.0,
                       "heap_loss_bytes_per_message": pytest.approx(1000.0)}


def test_a_program_without_reconnect_is_not_applicable_for_resilience_never_failed(
    tmp_path: Path,
) -> None:
    from harness.report.summary import render_summary
    from tests.unit.report_days import NO_RECONNECT, RESILIENCE

    def record(spec: str, test: str, outcome: str, message: str = "") -> TestRecord:
        return TestRecord(nodeid=f"tests/hil/test_x.py::{test}", outcome=outcome,
                          spec_item=spec, backend="emu", device="emu", profile="v1.22",
                          broker="amqtt", message=message)

    records = [record("S7", "test_s7_echo", "passed")]
    records += [record(spec, test, "skipped", NO_RECONNECT) for spec, test, _ in RESILIENCE]
    with History.for_writing(tmp_path / "history") as history:
        history.record_run(RunRecord(started=0.0, finished=60.0, batch="n0"), records)
    with History.for_reading(tmp_path / "history") as history:
        model = analyse(history.load(30))
    [cell] = model.cells
    assert cell.resilience[-1].status.state == "na" and cell.resilience[-1].text == "6 n/a"
    assert cell.core[-1].text == "1 passed, 12 not run"
    html = render_report(model, tmp_path / "index.html", history_dir=tmp_path).read_text()
    column = _section(html, "cells")
    start = column.index('<td class="resilience">')
    column = column[start:column.index("</tr>", start)]
    assert '<span class="s na">6 n/a</span>' in column and "fail" not in column
    # The reason is on the page, not only on hover, and in each item's title.
    assert f'<div class="why" title="{escape(NO_RECONNECT)}">{escape(NO_RECONNECT)}</div>' \
        in column
    assert column.count(escape(NO_RECONNECT)) == 2 + 1 + 6  # why (2), verdict, 6 items
    summary = render_summary(model)
    assert "Resilience R1–R6 (faults injected): emu/v1.22/amqtt 6 n/a." in summary
    assert summary.startswith("## ✅ HIL: First recorded round: the 1 test that ran passed")
