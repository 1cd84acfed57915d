"""The report: regressions, fixes, flakes, matrix, trends, the page, the summary and the CLI."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from harness.__main__ import main
from harness.report import cli as report_cli
from harness.report.analysis import analyse
from harness.report.history import DB_NAME, History, RunRecord, TestRecord
from harness.report.render import artifact_href, render_report
from harness.report.summary import render_summary
from harness.report.svg import line_chart, nice_ticks

pytestmark = pytest.mark.unit

DAY = 86400.0


def _record(spec: str, outcome: str, *, profile: str = "v1.22", broker: str = "amqtt",
            metrics: dict[str, float] | None = None, logs: Path | None = None) -> TestRecord:
    artifacts = {}
    if logs is not None:
        artifacts = {"serial_log": str(logs / f"{spec}.serial.log"),
                     "tap_trace": str(logs / f"{spec}.tap.txt")}
    return TestRecord(
        nodeid=f"tests/hil/test_{spec.lower()}.py::test_{spec.lower()}[tls]", outcome=outcome,
        duration=1.0, spec_item=spec, backend="emu", device="emu", profile=profile,
        broker=broker, transport="tls", device_rev="rev",
        message="" if outcome == "passed" else f"{spec} check failed: echo missing",
        artifacts=artifacts if outcome != "passed" else {}, metrics=metrics or {},
    )


def _write(history_dir: Path, rounds: list[list[TestRecord]]) -> None:
    with History.for_writing(history_dir) as history:
        for night, records in enumerate(rounds):
            history.record_run(
                RunRecord(started=night * DAY, finished=night * DAY + 60, batch=f"n{night}"),
                records,
            )


def _model(history_dir: Path, last: int = 30):  # type: ignore[no-untyped-def]
    with History.for_reading(history_dir) as history:
        return analyse(history.load(last))


def test_a_test_that_passed_then_failed_is_a_new_failure(tmp_path: Path) -> None:
    _write(tmp_path, [
        [_record("S7", "passed"), _record("S9", "failed")],
        [_record("S7", "failed"), _record("S9", "passed")],
    ])
    model = _model(tmp_path)
    assert [c.record.spec_item for c in model.new_failures] == ["S7"]
    assert [c.record.spec_item for c in model.fixes] == ["S9"]
    assert model.regressed
    assert model.verdict.startswith("1 new failure since 1970-01-01")


def test_comparison_is_per_cell_and_skips_rounds_where_the_cell_did_not_run(
    tmp_path: Path,
) -> None:
    _write(tmp_path, [
        [_record("S7", "passed", broker="mosquitto")],
        [_record("S7", "failed", broker="amqtt")],       # amqtt never passed: not new
        [_record("S7", "failed", broker="mosquitto"),     # mosquitto passed 2 rounds ago: new
         _record("S7", "failed", broker="amqtt")],
    ])
    model = _model(tmp_path)
    assert [c.record.broker for c in model.new_failures] == ["mosquitto"]
    assert model.new_failures[0].previous_round.name == "n0"
    assert [r.broker for r in model.still_failing] == ["amqtt"]


def test_flipping_twice_is_flaky_but_one_change_is_not(tmp_path: Path) -> None:
    _write(tmp_path, [
        [_record("S8", "passed"), _record("S4", "passed")],
        [_record("S8", "failed"), _record("S4", "passed")],
        [_record("S8", "passed"), _record("S4", "failed")],
        [_record("S8", "failed"), _record("S4", "failed")],
    ])
    model = _model(tmp_path)
    assert [(f.record.spec_item, f.flips) for f in model.flaky] == [("S8", 3)]
    assert model.flaky[0].outcomes == ["passed", "failed", "passed", "failed"]


def test_matrix_cells_count_outcomes_per_spec_item_and_cell(tmp_path: Path) -> None:
    _write(tmp_path, [
        [_record("S2", "passed"), _record("S2", "passed", profile="v1.24")],
        [_record("S2", "passed"), _record("S2", "failed", profile="v1.24")],
    ])
    model = _model(tmp_path)
    assert model.matrix_cols == ["emu/v1.22/amqtt", "emu/v1.24/amqtt"]
    assert [s.text for s in model.matrix[("S2", "emu/v1.24/amqtt")]] == ["1 passed", "1 failed"]


def test_trends_take_the_median_per_round_and_cell(tmp_path: Path) -> None:
    _write(tmp_path, [
        [_record("S2", "passed", metrics={"connect_ms": 10}),
         _record("S3", "passed", metrics={"connect_ms": 30}),
         _record("S4", "passed", metrics={"connect_ms": 20})],
        [_record("S2", "passed", metrics={"connect_ms": 50})],
    ])
    model = _model(tmp_path)
    [trend] = [t for t in model.trends if t.metric == "connect_ms"]
    assert trend.unit == "ms"
    assert trend.series == {"emu/v1.22/amqtt": [(0, 20.0), (1, 50.0)]}


def _regression_history(tmp_path: Path) -> tuple[Path, Path]:
    history_dir, logs = tmp_path / "hist", tmp_path / "results" / "cell"
    metrics = {"connect_ms": 12.0, "tls_handshake_ms": 300.0, "echo_rtt_p50_ms": 9.0}
    logs.mkdir(parents=True)
    for name in ("S7.serial.log", "S7.tap.txt"):
        (logs / name).write_text("12:00:00.000 [harness] hard reset\n")
    _write(history_dir, [
        [_record("S7", "passed", metrics=metrics), _record("S9", "passed", metrics=metrics)],
        [_record("S7", "failed", logs=logs, metrics=metrics),
         _record("S9", "passed", metrics=metrics)],
    ])
    return history_dir, logs


def test_the_page_shows_new_failures_with_relative_log_links_matrix_and_plots(
    tmp_path: Path,
) -> None:
    history_dir, _ = _regression_history(tmp_path)
    out = render_report(_model(history_dir), tmp_path / "site" / "report.html",
                        history_dir=history_dir)
    html = out.read_text()
    start = html.index('id="new-failures"')
    section = html[start:html.index("</section>", start)]
    assert "New failures (1)" in section and "S7" in section and "echo missing" in section
    assert 'href="../results/cell/S7.serial.log"' in section
    assert 'href="../results/cell/S7.tap.txt"' in section
    assert "1 new failure since" in html
    assert 'id="matrix"' in html and "1 failed" in html and "1 passed" in html
    assert html.count("<svg") == 4  # one plot per recorded metric, and the suite duration
    assert "MQTT connect time" in html and ">ms</text>" in html


def test_the_page_loads_nothing_from_outside(tmp_path: Path) -> None:
    history_dir, _ = _regression_history(tmp_path)
    html = render_report(_model(history_dir), tmp_path / "r.html",
                         history_dir=history_dir).read_text()
    assert "<script src" not in html and "<link" not in html and "@import" not in html
    assert " src=" not in html and "url(" not in html and "fetch(" not in html
    external = re.findall(r'(?:href|src)="(https?:[^"]*)"', html)
    assert external == []


def test_artifact_links_are_relative_to_the_page(tmp_path: Path) -> None:
    assert artifact_href(str(tmp_path / "a b" / "serial.log"), tmp_path / "site") == (
        "../a%20b/serial.log")


def test_summary_names_the_verdict_and_each_new_failure(tmp_path: Path) -> None:
    history_dir, _ = _regression_history(tmp_path)
    site = tmp_path / "site"
    text = render_summary(_model(history_dir), report=site / "report.html",
                          summary=site / "summary.md")
    first = text.splitlines()[0]
    assert first.startswith("## ❌ HIL: 1 new failure since")
    assert first.endswith("[full report](report.html)")
    assert "### New failures (1)" in text
    [row] = [line for line in text.splitlines() if line.startswith("| **S7**")]
    assert "`test_s7[tls]`" in row and "emu/v1.22/amqtt" in row
    assert "S7 check failed: echo missing" in row  # the message's first line
    assert "[serial log](../results/cell/S7.serial.log)" in row


def test_summary_links_go_under_a_base_url_when_given(tmp_path: Path) -> None:
    history_dir, _ = _regression_history(tmp_path)
    site = tmp_path / "site"
    text = render_summary(_model(history_dir), report=tmp_path / "report.html",
                          summary=site / "summary.md", base_url="https://ci.example/hil/")
    assert "[full report](https://ci.example/hil/report.html)" in text
    assert "[serial log](https://ci.example/hil/results/cell/S7.serial.log)" in text
    assert str(tmp_path) not in text  # no local absolute path


def test_summary_of_a_clean_round_says_all_passed(tmp_path: Path) -> None:
    _write(tmp_path, [[_record("S2", "passed")], [_record("S2", "passed")]])
    text = render_summary(_model(tmp_path))
    assert text.startswith("## ✅ HIL: The 1 test passed")
    assert "New failures" not in text


def test_cli_fail_on_regression_exits_1_only_on_a_regression(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history_dir, _ = _regression_history(tmp_path)
    out, summary = tmp_path / "r.html", tmp_path / "s.md"
    argv = ["report", "--history", str(history_dir), "--out", str(out), "--summary", str(summary)]
    assert main(argv) == 0
    assert main([*argv, "--fail-on-regression"]) == 1
    assert out.is_file() and "New failures (1)" in summary.read_text()
    clean = tmp_path / "clean"
    _write(clean, [[_record("S2", "failed")], [_record("S2", "passed")]])
    assert main(["report", "--history", str(clean), "--out", str(out),
                 "--fail-on-regression"]) == 0


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_cli_empty_history_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--history", str(tmp_path), "--out", str(tmp_path / "r.html")]) == 2
    assert "no results history in" in _one_error_line(capsys)
    History.for_writing(tmp_path).close()
    assert main(["report", "--history", str(tmp_path), "--out", str(tmp_path / "r.html")]) == 2
    assert "holds no runs yet" in _one_error_line(capsys)


def test_cli_corrupt_database_is_one_line(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / DB_NAME).write_bytes(b"\x00garbage" * 512)
    assert main(["report", "--history", str(tmp_path), "--out", str(tmp_path / "r.html")]) == 2
    assert "is corrupt" in _one_error_line(capsys)


def test_cli_partly_damaged_database_still_renders_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rounds = [[_record(f"S{i % 12 + 1}", "passed") for i in range(40)] for _ in range(30)]
    for night, records in enumerate(rounds):
        for record in records:
            record.nodeid += f"-night{night:02d}-" + "x" * 40
    _write(tmp_path, rounds)
    with sqlite3.connect(tmp_path / DB_NAME) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    data = bytearray((tmp_path / DB_NAME).read_bytes())
    victim = data.index(b"-night15-") // page
    data[victim * page:(victim + 1) * page] = b"\xff" * page
    (tmp_path / DB_NAME).write_bytes(bytes(data))

    out = tmp_path / "r.html"
    assert main(["report", "--history", str(tmp_path), "--out", str(out), "--last", "50"]) == 0
    warning = _one_error_line(capsys)
    assert "corrupt" in warning and "unreadable" in warning
    html = out.read_text()
    assert "History database is damaged" in html and 'id="matrix"' in html


def test_nice_ticks_cover_the_data_with_round_steps() -> None:
    assert nice_ticks(0, 65) == [0, 20, 40, 60, 80]
    assert nice_ticks(0, 0.37) == [0.0, 0.1, 0.2, 0.3, 0.4]


def test_a_chart_has_axes_tick_labels_units_and_a_legend_entry_per_series() -> None:
    svg = line_chart("Echo round trip, p50", "ms", ["11-01", "11-02", "11-03"],
                     {"emu/v1.22/amqtt": [(0, 9.0), (1, 11.0), (2, 10.0)],
                      "emu/v1.24/mosquitto": [(0, 14.0), (2, 15.0)]})
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count('class="axis"') >= 2
    assert ">ms</text>" in svg and "round (UTC start time)" in svg
    assert ">11-02</text>" in svg
    y_ticks = re.findall(r">\d+</text>", svg[: svg.index('class="axis"')])
    assert y_ticks == [">0</text>", ">5</text>", ">10</text>", ">15</text>"]  # reach the top
    assert svg.count('class="legend"') == 2
    assert "stroke-dasharray" in svg  # the second series differs by more than colour


def test_cli_main_works_without_the_dispatcher(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    history_dir, _ = _regression_history(tmp_path)
    out = tmp_path / "r.html"
    assert report_cli.main(["--history", str(history_dir), "--out", str(out),
                            "--fail-on-regression"]) == 1
    assert out.is_file()
    assert report_cli.main(["--history", str(tmp_path / "none"), "--out", str(out)]) == 2
    assert "no results history in" in _one_error_line(capsys)


def test_a_first_round_says_there_is_nothing_to_compare_with(tmp_path: Path) -> None:
    _write(tmp_path, [[_record("S2", "passed"), _record("S9", "failed")]])
    model = _model(tmp_path)
    assert model.verdict == "First recorded round: 1 of 2 tests failing"
    assert not model.regressed and model.new_failures == []


def test_cli_unwritable_output_is_one_line(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    history_dir, _ = _regression_history(tmp_path)
    (tmp_path / "blocker").write_text("a file")
    out = tmp_path / "blocker" / "report.html"
    assert main(["report", "--history", str(history_dir), "--out", str(out)]) == 2
    assert f"cannot write {out}" in _one_error_line(capsys)
