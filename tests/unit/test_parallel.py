"""pytest-xdist: the HIL suite on several emulated boards at once, each scenario run once,
results and history complete, node ids unchanged."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness.hil import scenario
from harness.parallel import (
    DEFAULT_TEST_S,
    expected_costs,
    scenario_groups,
    scenarios_read,
    shares_fixtures,
)

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
ENV_DROPPED = ("HIL_DEVICE", "HIL_BROKER", "HIL_PROFILE", "HIL_DEVICE_SRC", "HIL_RESULTS",
               "HIL_HISTORY", "PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER",
               "PYTEST_XDIST_WORKER_COUNT")


def _reads_messaging() -> None:
    scenario.MESSAGING.name  # noqa: B018 - the reference is what is being detected


def _reads_two() -> None:
    (scenario.TLS_SNI, scenario.AUTH_WRONG)  # noqa: B018


def _reads_auth() -> None:
    scenario.AUTH_WRONG  # noqa: B018


def _reads_nothing() -> None:
    return None


def _item(nodeid: str, function: Any, profile: str | None = None) -> Any:
    callspec = SimpleNamespace(params={"profile": profile}) if profile else None
    return SimpleNamespace(nodeid=nodeid, function=function, callspec=callspec,
                           get_closest_marker=lambda name: None)


def test_tests_are_grouped_by_the_scenario_run_they_read() -> None:
    assert scenarios_read(_item("a", _reads_messaging)) == ["messaging"]
    groups = scenario_groups([
        _item("a", _reads_messaging), _item("b", _reads_two), _item("c", _reads_auth),
        _item("d", _reads_nothing), _item("e", _reads_two, profile="v1.22"),
        _item("f", _reads_two, profile="v1.25"),
    ], "v1.22")
    assert groups["a"] == "messaging"
    # b reads two runs, so they share a worker; c reads one of them and joins the group.
    assert groups["b"] == groups["c"] == groups["e"]
    assert "d" not in groups
    assert groups["f"] != groups["b"]  # another profile is another rig, another run


def test_only_tests_sharing_a_built_once_fixture_keep_their_module_together(
        pytester: pytest.Pytester) -> None:
    items = pytester.getitems("""
        import pytest

        @pytest.fixture(scope="module")
        def farm():
            return object()

        @pytest.fixture
        def board(farm):
            return farm

        def test_uses_the_module_fixture(farm): pass
        def test_through_a_function_fixture(board): pass
        def test_plain(tmp_path, monkeypatch): pass
    """)
    shared = {item.name: shares_fixtures(item) for item in items}
    assert shared == {"test_uses_the_module_fixture": True,
                      "test_through_a_function_fixture": True, "test_plain": False}


def test_scenario_runs_are_costed_by_their_designed_waits_and_markers_win(
        pytester: pytest.Pytester) -> None:
    items = pytester.getitems("""
        import pytest
        from harness.hil import scenario

        def test_latency(): scenario.R_LATENCY
        def test_latency_too(): scenario.R_LATENCY
        def test_refusal(): scenario.AUTH_WRONG
        @pytest.mark.hil_duration(40)
        def test_marked(): pass
        def test_plain(): pass
    """)
    costs = expected_costs(items, scenario_groups(items, "v1.22"))
    by_name = {item.name: costs.get(item.nodeid) for item in items}
    # The latency run (about 15 s of held round trips) is shared by its two tests.
    assert by_name["test_latency"] == by_name["test_latency_too"]
    assert 2 * by_name["test_latency"] == pytest.approx(
        scenario.R_LATENCY.expected_s() + 2 * DEFAULT_TEST_S)
    assert scenario.R_LATENCY.expected_s() > 10 * scenario.AUTH_WRONG.expected_s()
    # Each round trip (CONNECT, SUBSCRIBE, every publish and its echo) is held both ways.
    latency = scenario.R_LATENCY.faults[0].latency_s
    without = dataclasses.replace(scenario.R_LATENCY, faults=())
    assert scenario.R_LATENCY.expected_s() - without.expected_s() >= (
        2 * latency * (scenario.R_LATENCY.publishes + 2))
    assert by_name["test_marked"] == 40 and by_name["test_plain"] is None


def test_under_xdist_the_costliest_work_starts_first(pytester: pytest.Pytester) -> None:
    """Collected last, a long test would start last and leave one worker busy alone at the
    end; it starts first. Each test logs where and in which order it started."""
    log = pytester.path / "started.log"
    pytester.makeconftest(f"""
        import os
        import pytest

        @pytest.fixture(autouse=True)
        def _started(request):
            with open({str(log)!r}, "a") as out:
                out.write(os.environ["PYTEST_XDIST_WORKER"] + " " + request.node.name + "\\n")
    """)
    quick = "".join(f"def test_quick_{n}(): pass\n" for n in range(3))
    pytester.makepyfile(test_a=quick, test_b=quick, test_c=quick,
                        test_z="import pytest\n\n@pytest.mark.hil_duration(30)\n"
                               "def test_long(): pass\n")
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=10)
    first_per_worker = {}
    for line in log.read_text().splitlines():
        worker, name = line.split()
        first_per_worker.setdefault(worker, name)
    assert "test_long" in first_per_worker.values(), log.read_text()


def _run(args: list[str], results: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_DROPPED}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "tests/hil", "-m", "hil", "-q", "-p", "no:cacheprovider",
         "--hil-device", "emu", "--hil-results", str(results), *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.hil_duration(20)
def test_the_hil_suite_on_two_boards_runs_each_scenario_once(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    # Without the fault scenarios (R1-R6): about 35 s of faults that xdist shares out the
    # same way (bench_parallel.py times the whole suite).
    done = _run(["-n", "2", "-k", "not test_r", "--junitxml", str(junit),
                 "-o", "junit_family=xunit1", "--hil-history", str(tmp_path / "history")],
                tmp_path / "results")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]

    # One session folder; each scenario ran exactly once, on whichever worker held it.
    sessions = list((tmp_path / "results" / "runs").iterdir())
    assert len(sessions) == 1
    runs = [run.name.split("-", 1)[1] for run in sessions[0].glob("gw*/*")]
    assert sorted(runs) == sorted(set(runs)), runs
    assert {"messaging", "tls-sni", "auth-wrong-password"} <= set(runs)
    assert {p.name for p in sessions[0].iterdir()} == {"gw0", "gw1"}

    # JUnit: node ids as without -n, and every result names the board it ran on.
    cases = list(ET.parse(junit).getroot().iter("testcase"))
    assert cases and not [c for c in cases if "@" in c.get("name", "")]
    boards = {p.get("value") for c in cases for p in c.iter("property")
              if p.get("name") == "hil.device"}
    assert boards == {"emu:gw0", "emu:gw1"}

    # History: one session with every result, each naming its board.
    with sqlite3.connect(tmp_path / "history" / "hil-history.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1
        rows = db.execute("SELECT outcome, device FROM results").fetchall()
    assert len(rows) == len(cases)
    assert {device for outcome, device in rows if outcome == "passed"} == boards
