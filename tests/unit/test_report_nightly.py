"""The nightly matrix runner: the cell list, and a whole nightly over a fake suite."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pytest

from harness.broker.mosquitto_broker import mosquitto_installed
from harness.emulator.profiles import list_profiles
from harness.report import nightly
from harness.report.history import History
from harness.report.nightly import Cell, NightlyRunner, plan_cells

pytestmark = pytest.mark.unit

# Stands in for the lead's plugin options so the nightly's pytest command line parses.
FAKE_CONFTEST = """
def pytest_addoption(parser):
    group = parser.getgroup("hil")
    for name in ("--hil-device", "--hil-profile", "--hil-broker", "--hil-results"):
        try:
            group.addoption(name, default=None)
        except ValueError:
            pass  # the real plugin already has it

def pytest_configure(config):
    config.addinivalue_line("markers", "hil: spec check")
"""

FAKE_SUITE = """
import os
import pytest

@pytest.mark.hil
def test_s7_echo(request, record_property):
    opt = request.config.getoption
    record_property("hil.spec_item", "S7")
    record_property("hil.backend", "emu")
    record_property("hil.profile", opt("--hil-profile"))
    record_property("hil.broker", opt("--hil-broker"))
    record_property("hil.metric.connect_ms", 10.0)
    if os.environ.get("HANG"):
        import threading
        threading.Event().wait(120)
    broken = os.environ.get("BROKEN_BROKER")
    assert opt("--hil-broker") != broken, "S7 echo missing"
"""


def _args(tmp_path: Path, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    nightly.configure(parser)
    return parser.parse_args(["--history", str(tmp_path / "hist"),
                              "--out", str(tmp_path / "site" / "report.html"), *extra])


def test_cells_are_every_profile_and_broker_once_and_each_board_per_broker() -> None:
    cells = plan_cells(["emu", "/dev/ttyUSB0", "emu"], ["v1.20", "v1.24"], ["amqtt", "mosquitto"])
    assert cells == [
        Cell("emu", "v1.20", "amqtt"), Cell("emu", "v1.20", "mosquitto"),
        Cell("emu", "v1.24", "amqtt"), Cell("emu", "v1.24", "mosquitto"),
        Cell("/dev/ttyUSB0", "flashed", "amqtt"), Cell("/dev/ttyUSB0", "flashed", "mosquitto"),
    ]
    assert cells[-1].name == "dev_ttyUSB0-flashed-mosquitto"
    board_command = cells[-1].pytest_command(history=Path("h"), results=Path("r"))
    assert "--hil-profile" not in board_command  # a board runs the firmware it has


def test_a_cell_runs_the_hil_suite_with_its_options(tmp_path: Path) -> None:
    command = Cell("emu", "v1.22", "amqtt").pytest_command(
        history=tmp_path / "h", results=tmp_path / "r")
    assert command[:5] == [sys.executable, "-m", "pytest", "-m", "hil"]
    with_suite = Cell("emu", "v1.22", "amqtt").pytest_command(
        history=tmp_path / "h", results=tmp_path / "r", suite=tmp_path / "tests")
    assert with_suite[3:6] == [str(tmp_path / "tests"), "-m", "hil"]
    joined = " ".join(command)
    cell_dir = tmp_path / "r" / "emu-v1.22-amqtt"
    for part in ("--hil-device emu", "--hil-profile v1.22", "--hil-broker amqtt",
                 f"--hil-history {tmp_path / 'h'}", f"--hil-results {cell_dir}",
                 f"--junitxml={cell_dir / 'junit.xml'}"):
        assert part in joined


def test_mosquitto_is_a_broker_exactly_when_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert ("mosquitto" in nightly.available_brokers()) == mosquitto_installed()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    assert nightly.available_brokers() == ["amqtt"]
    for program in ("mosquitto", "mosquitto_passwd"):
        fake = tmp_path / "sbin" / program if program == "mosquitto" else bin_dir / program
        fake.parent.mkdir(exist_ok=True)
        fake.write_text("#!/bin/sh\n")
        fake.chmod(0o755)
    # found in the sbin folder next to a bin folder on PATH, as Debian installs it
    assert nightly.available_brokers() == ["amqtt", "mosquitto"]


def test_the_nightly_matrix_covers_every_emulator_profile() -> None:
    assert nightly.available_profiles() == list_profiles()


def test_dry_run_prints_the_cells_and_runs_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _args(tmp_path, "--dry-run", "--profile", "v1.20", "--profile", "v1.24",
                 "--broker", "amqtt", "--device", "/dev/ttyUSB0")
    assert nightly.run(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == [
        "emu-v1.20-amqtt", "emu-v1.24-amqtt", "dev_ttyUSB0-flashed-amqtt"]
    assert not (tmp_path / "hist").exists()


def test_a_nightly_records_all_cells_as_one_round_and_writes_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text(FAKE_CONFTEST)
    (suite / "test_fake.py").write_text(FAKE_SUITE)
    monkeypatch.chdir(suite)
    common = ("--suite", str(suite), "--profile", "v1.22", "--broker", "amqtt",
              "--broker", "mosquitto",
              "--pytest-arg=-p", "--pytest-arg=harness.report.pytest_history")
    assert nightly.run(_args(tmp_path, *common, "--fail-on-regression")) == 0
    monkeypatch.setenv("BROKEN_BROKER", "mosquitto")
    assert nightly.run(_args(tmp_path, *common, "--fail-on-regression")) == 1

    with History.for_reading(tmp_path / "hist") as history:
        loaded = history.load(10)
    batches = [run.batch for run in loaded.runs]
    assert len(batches) == 4 and len(set(batches)) == 2  # 2 cells per nightly round
    html = (tmp_path / "site" / "report.html").read_text()
    assert "1 new failure since" in html and "emu/v1.22/mosquitto" in html
    summary = (tmp_path / "site" / "summary.md").read_text()
    assert "### New failures (1)" in summary and "| emu/v1.22/mosquitto |" in summary
    assert (tmp_path / "site" / "results" / "emu-v1.22-mosquitto" / "junit.xml").is_file()


def test_a_hung_cell_is_stopped_at_its_deadline(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text(FAKE_CONFTEST)
    (suite / "test_fake.py").write_text(FAKE_SUITE)
    monkeypatch.chdir(suite)
    monkeypatch.setenv("HANG", "1")
    runner = NightlyRunner([Cell("emu", "v1.22", "amqtt")], history=tmp_path / "hist",
                           results=tmp_path / "res", cell_timeout=4.0, suite=suite,
                           extra=["-p", "harness.report.pytest_history"])
    codes = runner.run_all()
    assert codes == {Cell("emu", "v1.22", "amqtt"): None}
    # The whole process group is gone: no pytest left running the suite.
    leftovers = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _runs_suite(p, suite)]
    assert leftovers == []


def _runs_suite(proc: Path, suite: Path) -> bool:
    try:
        return (proc / "cwd").readlink() == suite and proc.name != str(os.getpid())
    except OSError:
        return False
