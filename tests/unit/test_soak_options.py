"""The soak run's configuration (issue 14): its scenario, its pytest options (bad values
are one usage line), its test timeout, and the nightly cell that runs it for an hour.
The run itself is ``tests/hil/test_soak.py`` (``pytest -m soak``) and
``benchmarks/bench_soak.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.hil.scenario import SOAK, soak
from harness.pytest_soak import soak_budget_s
from harness.report.nightly import DEFAULT_CELL_TIMEOUT_S, Cell

pytestmark = pytest.mark.unit


def test_the_default_soak_is_a_thousand_messages_over_tls_with_heap_readings() -> None:
    scenario = soak()
    assert (scenario.publishes, scenario.tls, scenario.publish_interval) == (1000, True, 0.1)
    assert scenario.mem_log_every == 100
    assert soak(60).mem_log_every == 6  # still ten readings in a short run


def test_a_timed_soak_runs_for_its_minutes_and_its_test_gets_that_long() -> None:
    scenario = soak(minutes=60)
    assert scenario.run_for_s == 3600
    assert scenario.publishes >= 3600 / SOAK.publish_interval
    assert 3600 < soak_budget_s(scenario) < 3600 + 600
    # A counted soak: every message may take its interval plus an echo on a busy runner.
    assert soak_budget_s(soak(1000)) > 1000 * 0.1 + 120


@pytest.mark.parametrize("value", ["abc", "0", "-5"])
def test_a_bad_soak_length_is_one_usage_line(pytester: pytest.Pytester, value: str) -> None:
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest("--hil-soak-messages", value)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = result.stdout.str() + result.stderr.str()
    assert f"--hil-soak-messages {value!r} is not a positive number" in text
    assert "Traceback" not in text


def test_soak_tests_are_not_in_the_default_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest
        @pytest.mark.soak
        def test_long():
            pass
        @pytest.mark.unit
        def test_short():
            pass
    """)
    result = pytester.runpytest("-m", "unit or hil", "--strict-markers")
    result.assert_outcomes(passed=1, deselected=1)


def test_the_nightly_soak_cell_runs_the_soak_with_its_own_deadline(tmp_path: Path) -> None:
    cell = Cell("emu", "v1.22", "amqtt", soak_minutes=60)
    command = cell.pytest_command(history=tmp_path / "h", results=tmp_path / "r")
    assert command[command.index("-m", 3) + 1] == "soak"  # after "-m pytest"
    assert command[command.index("--hil-soak-minutes") + 1] == "60"
    assert cell.name == "emu-v1.22-amqtt-soak60min"
    assert cell.timeout_s == 3600 + DEFAULT_CELL_TIMEOUT_S
    assert Cell("emu", "v1.22", "amqtt").timeout_s is None
