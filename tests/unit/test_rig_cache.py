"""Rig.run runs each scenario once per session: a changed scenario is a new run, and a
run that failed is reported again as the same failure, not rerun for every test. A run
asked for again (a benchmark's repeats) runs anew. What the rig asks the board after a run
hides only what the board may answer (an error on the device), never a lost port or a bug."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from harness.checks.evidence import Evidence, Expectation
from harness.errors import DeviceCodeRaised, DeviceError, DeviceLost, HarnessError
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


def test_a_run_asked_for_again_runs_anew_and_is_kept(tmp_path: Path) -> None:
    rig = CountingRig(tmp_path, fail=False)
    first = rig.run(MESSAGING)
    second = rig.run(MESSAGING, again=True)
    assert second is not first and rig.calls == [MESSAGING, MESSAGING]
    assert rig.run(MESSAGING) is second


class _Board:
    def __init__(self, answer: str | BaseException) -> None:
        self.answer = answer

    def exec(self, code: str, timeout: float = 10.0) -> str:
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


def _rig_on(tmp_path: Path, board: _Board) -> Rig:
    target = type("FakeTarget", (), {"device": board})()
    return Rig(target, ContractProgram(REPO / "device_src"), tmp_path)  # type: ignore[arg-type]


@pytest.mark.parametrize(("answer", "address"), [
    ("192.168.1.20\n", "192.168.1.20"), ("-\n", None),
    ("0.0.0.0\n", None), ("", None),
    (DeviceCodeRaised("code raised on the device: ImportError: no module named 'network'"),
     None),
])
def test_the_device_address_is_what_the_board_says(tmp_path: Path, answer: str | BaseException,
                                                   address: str | None) -> None:
    assert _rig_on(tmp_path, _Board(answer))._device_ip() == address


@pytest.mark.parametrize("error", [DeviceLost("serial port /dev/ttyUSB0 was lost"),
                                   DeviceError("running code on /dev/ttyUSB0 failed: timeout"),
                                   TypeError("a bug in the harness")])
def test_a_lost_port_a_dead_repl_or_a_bug_is_not_taken_for_no_address(tmp_path: Path,
                                                          error: BaseException) -> None:
    with pytest.raises(type(error)):
        _rig_on(tmp_path, _Board(error))._device_ip()
