"""Rig.run runs each scenario once per session: a changed scenario is a new run, and a
run that failed is reported again as the same failure, not rerun for every test."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from harness.checks.evidence import Evidence, Expectation
from harness.errors import HarnessError
from harness.hil.programs import ContractProgram
from harness.hil.rig import Rig, RunResult
from harness.hil.scenario import MESSAGING, Scenario

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]


class CountingRig(Rig):
    def __init__(self, tmp_path: Path, fail: bool) -> None:
        super().__init__(Any, ContractProgram(REPO / "device_src"), tmp_path)  # type: ignore[arg-type]
        self.fail = fail
        self.calls: list[Scenario] = []

    def _run(self, scenario: Scenario) -> RunResult:
        self.calls.append(scenario)
        if self.fail:
            raise HarnessError(f"run {len(self.calls)} broke")
        expectation = Expectation("broker.test", "t", None, None, 0, 1.0, "192.168.4.2")
        return RunResult(scenario, Evidence(expectation), 0.0)


def test_a_scenario_runs_once_and_a_changed_one_runs_again(tmp_path: Path) -> None:
    rig = CountingRig(tmp_path, fail=False)
    first = rig.run(MESSAGING)
    assert rig.run(MESSAGING) is first
    changed = replace(MESSAGING, publishes=MESSAGING.publishes + 1)  # same name
    assert rig.run(changed) is not first
    assert rig.calls == [MESSAGING, changed]


def test_a_failed_run_is_reported_again_not_rerun(tmp_path: Path) -> None:
    rig = CountingRig(tmp_path, fail=True)
    for _ in range(3):
        with pytest.raises(HarnessError, match="run 1 broke"):
            rig.run(MESSAGING)
    assert rig.calls == [MESSAGING]
