"""The results history database: round trip, concurrent writers, bad input."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from harness.errors import HistoryError
from harness.report.history import (
    DB_NAME,
    History,
    HistoryCorrupt,
    HistoryEmpty,
    HistoryNotWritable,
    RunRecord,
    TestRecord,
)

pytestmark = pytest.mark.unit


def _records(n: int, *, prefix: str = "t", outcome: str = "passed") -> list[TestRecord]:
    return [
        TestRecord(
            nodeid=f"tests/hil/test_x.py::{prefix}{i}", outcome=outcome, duration=0.5,
            spec_item=f"S{i % 12 + 1}", backend="emu", device="emu", profile="v1.22",
            broker="amqtt", transport="tls", device_rev="rev1",
            artifacts={"serial_log": f"/r/{prefix}{i}.log"}, metrics={"connect_ms": 10.0 + i},
        )
        for i in range(n)
    ]


def test_a_recorded_run_reads_back_with_all_its_fields(tmp_path: Path) -> None:
    with History.for_writing(tmp_path) as history:
        run_id = history.record_run(
            RunRecord(started=100.0, finished=160.0, exit_status=1, harness_rev="abc",
                      host="ci", command="pytest -m hil"),
            _records(3),
        )
    with History.for_reading(tmp_path) as history:
        loaded = history.load(5)
    assert [r.run_id for r in loaded.runs] == [run_id]
    run = loaded.runs[0]
    assert (run.batch, run.exit_status, run.harness_rev, run.command) == (
        f"run-{run_id}", 1, "abc", "pytest -m hil")
    assert loaded.results[run_id] == _records(3)
    assert loaded.damage == []


def test_load_keeps_the_newest_batches_and_groups_runs_of_one_batch(tmp_path: Path) -> None:
    with History.for_writing(tmp_path) as history:
        for night in range(4):
            for cell in range(2):
                history.record_run(
                    RunRecord(started=night * 1000 + cell, finished=night * 1000 + cell + 1,
                              batch=f"nightly-{night}"),
                    _records(1, prefix=f"c{cell}-"),
                )
    with History.for_reading(tmp_path) as history:
        loaded = history.load(2)
    assert [r.batch for r in loaded.runs] == ["nightly-2", "nightly-2", "nightly-3", "nightly-3"]


def _writer(directory: str, worker: int, runs: int) -> None:
    with History.for_writing(Path(directory)) as history:
        for i in range(runs):
            history.record_run(
                RunRecord(started=worker * 1000 + i, finished=worker * 1000 + i + 1),
                _records(20, prefix=f"w{worker}-"),
            )


def test_several_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(str(tmp_path), w, 8)) for w in range(6)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=120)
    assert [p.exitcode for p in workers] == [0] * 6
    conn = sqlite3.connect(tmp_path / DB_NAME)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 48
        assert conn.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 48 * 20
        # Every run got exactly its own 20 results, none interleaved with another's.
        per_run = conn.execute("SELECT COUNT(*) FROM results GROUP BY run_id").fetchall()
        assert {n for (n,) in per_run} == {20}
    finally:
        conn.close()


def test_a_file_that_is_not_a_database_is_reported_as_corrupt(tmp_path: Path) -> None:
    (tmp_path / DB_NAME).write_bytes(b"this is not sqlite at all\n" * 200)
    with pytest.raises(HistoryCorrupt) as excinfo:
        History.for_reading(tmp_path)
    message = str(excinfo.value)
    assert "corrupt" in message and str(tmp_path / DB_NAME) in message
    assert "\n" not in message
    with pytest.raises(HistoryCorrupt):
        History.for_writing(tmp_path)


def test_a_damaged_page_costs_only_the_runs_stored_on_it(tmp_path: Path) -> None:
    with History.for_writing(tmp_path) as history:
        for i in range(40):
            history.record_run(RunRecord(started=i, finished=i + 1), _records(40, prefix=f"r{i}-"))
        history._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    path = tmp_path / DB_NAME
    conn = sqlite3.connect(path)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    # The result rows of one run from the middle: find a page that holds only them.
    conn.close()
    data = bytearray(path.read_bytes())
    pages = len(data) // page_size
    marker = b"r20-"
    victim = next(
        p for p in range(pages // 3, pages) if marker in data[p * page_size:(p + 1) * page_size]
    )
    data[victim * page_size:(victim + 1) * page_size] = b"\xff" * page_size
    path.write_bytes(bytes(data))

    with History.for_reading(tmp_path) as history:
        loaded = history.load(100)
    assert loaded.damage, "the damaged run must be reported"
    assert any("#21" in note for note in loaded.damage)  # run ids start at 1: r20 is #21
    assert 30 <= len(loaded.runs) < 40


def test_a_missing_database_is_an_empty_history(tmp_path: Path) -> None:
    with pytest.raises(HistoryEmpty, match="no results history in"):
        History.for_reading(tmp_path)


def test_a_database_without_runs_is_an_empty_history(tmp_path: Path) -> None:
    History.for_writing(tmp_path).close()
    with History.for_reading(tmp_path) as history, pytest.raises(HistoryEmpty, match="no runs"):
        history.load(5)


def test_a_history_directory_that_cannot_be_created_says_so(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(HistoryNotWritable) as excinfo:
        History.for_writing(blocker / "history")
    assert "is not writable" in str(excinfo.value)
    assert "--hil-history" in str(excinfo.value)


def test_a_history_from_another_schema_version_is_refused(tmp_path: Path) -> None:
    History.for_writing(tmp_path).close()
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(HistoryError, match="schema version 99"):
        History.for_reading(tmp_path)
