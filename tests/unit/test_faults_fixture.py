"""The ``hil_faults`` fixture as a user writes it: faults added in the test go into that
test's run (a run of its own), and their events come back in the evidence."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]

USER_TEST = """
import pytest
from harness.faults import AfterEchoes
from harness.hil.scenario import Scenario

pytestmark = pytest.mark.hil
RECONNECTING = Scenario("my-reset", reconnect=True, keepalive=2, publishes=5,
                        reconnect_delay=0.2, reconnect_max_delay=0.8)

def test_reset_after_the_second_echo(hil_run, hil_faults):
    hil_faults.hard_reset(AfterEchoes(2), 0.5)
    evidence = hil_run(RECONNECTING).evidence
    assert [(m.phase, m.kind) for m in evidence.faults] == [
        ("start", "reset_peer"), ("end", "reset_peer")]
    start = evidence.faults[0]
    echoes = [p for p in evidence.packets_of("PUBLISH", "b2c")]
    assert start.time >= echoes[1].time and start.fields["trigger"] == "after echo #2"
    assert len([a for a in evidence.packets_of("CONNACK", "b2c")]) >= 2

def test_without_faults_the_plain_run(hil_run, hil_faults):
    assert hil_run(RECONNECTING).evidence.faults == []
"""


def test_faults_added_by_the_test_reach_its_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TEST)
    result = pytester.runpytest("-p", "no:cacheprovider", "--hil-device=emu",
                                f"--hil-device-src={REPO / 'device_src'}",
                                f"--hil-results={pytester.path / 'res'}")
    result.assert_outcomes(passed=2)
