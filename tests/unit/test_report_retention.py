"""Retention (--hil-keep) and the main job's clean exits."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.report.history import History

pytestmark = pytest.mark.unit

PLUGIN = ["-p", "harness.report.pytest_history"]
REPO = Path(__file__).resolve().parents[2]

# Each session writes a run folder the way the rig does and records it as an artifact.
RUN_SUITE = """
import os
from pathlib import Path

def test_s7_echo(record_property):
    folder = Path("results/runs/session-" + os.environ["SESSION"]) / "01-messaging"
    folder.mkdir(parents=True)
    (folder / "serial.log").write_text("12:00:00.000 Connected on 1.2.3.4\\n" * 200)
    (folder / "tap.jsonl").write_text("{}\\n" * 200)
    record_property("hil.spec_item", "S7")
    record_property("hil.artifact.serial_log", str(folder / "serial.log"))
    record_property("hil.artifact.tap_trace", str(folder / "tap.jsonl"))
"""


def _session(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, n: int,
             *keep: str) -> pytest.RunResult:
    monkeypatch.setenv("SESSION", str(n))
    result = pytester.runpytest(*PLUGIN, "--hil-history", "hist", *keep)
    result.assert_outcomes(passed=1)
    return result


def test_keep_prunes_old_run_folders_to_a_note_and_forgets_the_oldest_rounds(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytester.makepyfile(test_runs=RUN_SUITE)
    keep = ("--hil-keep", "2", "--hil-keep-history", "3")
    for n in range(1, 5):
        result = _session(pytester, monkeypatch, n, *keep)
    result.stdout.fnmatch_lines(["*hil history: recorded 1 results as run #4 in *; pruned 1 "
                                 "run folder, forgot 1 old run"])
    runs = pytester.path / "results" / "runs"
    assert not (runs / "session-1").exists()  # beyond the history: gone
    pruned = (runs / "session-2" / "01-messaging" / "serial.log").read_text()
    assert pruned.startswith("pruned on ") and "by --hil-keep 2" in pruned
    assert len(pruned) < 300  # the folder no longer costs its size
    for n in (3, 4):
        assert (runs / f"session-{n}" / "01-messaging" / "serial.log").stat().st_size > 5000
    with History.for_reading(pytester.path / "hist") as history:
        loaded = history.load(10)
    assert [r.pruned_at is not None for r in loaded.runs] == [True, False, False]


def test_keep_without_a_history_or_with_a_bad_number_is_a_usage_error(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_x="def test_x(): pass\n")
    result = pytester.runpytest(*PLUGIN, "--hil-keep", "3")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--hil-keep prunes the results history; give it one with "
                                 "--hil-history DIR*"])
    result = pytester.runpytest(*PLUGIN, "--hil-history", "h", "--hil-keep", "zero")
    result.stderr.fnmatch_lines(["*--hil-keep 'zero' is not a number of rounds; give a whole "
                                 "number of at least 1, e.g. --hil-keep 30*"])


def test_harness_run_after_a_usage_error_prints_only_the_error_and_writes_nothing(
    tmp_path: Path,
) -> None:
    results = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--results", str(results), "--",
         "--no-such-option"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 4
    assert done.stdout == ""
    assert "unrecognized arguments: --no-such-option" in done.stderr
    assert "JUnit XML" not in done.stderr and "history" not in done.stderr
    assert not results.exists()
