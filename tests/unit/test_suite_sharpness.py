"""The HIL suite is sharp (issue 5): a device program with one deliberate defect in one spec
item fails that item's check, and only the checks that depend on it, with a message that
names the item.

Each mutant in ``mutants.py`` is device_src/ with one substitution. The whole HIL suite runs
on it once (a subprocess on the emulated board, ~25-40 s; the suites run concurrently),
and several tests read the result. The unmutated program is the control: it must pass every check.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from harness.checks.clock import CLOCK_DIAGNOSIS
from harness.emulator.profiles import PROFILES
from tests.unit.mutants import (
    DEVICE_SRC,
    MUTANTS,
    REPO,
    STOP_GRACE_S,
    SUITE_TIMEOUT_S,
    Mutant,
    SuiteResult,
    run_hil_suite,
)
from tests.unit.mutants import _stop as stop_suite

# A whole HIL suite per mutant runs inside the first test that needs it.
pytestmark = [pytest.mark.unit, pytest.mark.timeout(SUITE_TIMEOUT_S + STOP_GRACE_S + 60)]

CONTROL = "control"
# Every spec item has at least one check the reference program must pass.
SPEC_ITEMS = {f"S{n}" for n in range(1, 14)} | {f"R{n}" for n in range(1, 7)}

# Known weaknesses of the checks, found by these mutants. The expectation stays what the
# spec demands; the test is an expected failure (strict: it turns red once fixed, so the
# entry is removed) until harness/ is changed. (test, parameter id) -> reason.
KNOWN_WEAKNESSES: dict[tuple[str, str], str] = {
    # (test, case id) -> why the check is known to be wrong there; a strict xfail, so a fix
    # shows up as XPASS and the entry must go.
}


def _params(test: str, per_item: bool = False) -> list[Any]:  # pytest.param values
    params = []
    for mutant in MUTANTS:
        cases = ([(f"{mutant.name}-{item}", (mutant, item))
                  for item in sorted(mutant.defect_items)]
                 if per_item else [(mutant.name, (mutant,))])
        for case_id, values in cases:
            reason = KNOWN_WEAKNESSES.get((test, case_id))
            marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
            params.append(pytest.param(*values, id=case_id, marks=marks))
    return params


# Suites run at once. They wait on emulated devices far more than they compute (about
# 5 s of CPU in a 50 s suite). Under xdist they run in two waves unless this says
# otherwise: the module stays off the unit run's critical path, and the start-up burst of
# all of them at once (imports, brokers, boots: 2 s of CPU each) does not load the timing
# of the tests the other workers run. In a process of its own (no xdist) nothing else runs
# beside it, so all start at once (26 suites: 72 s against 122 s in two waves, on 2 cores).
SUITE_JOBS = int(os.environ.get("HIL_SHARPNESS_JOBS", "0"))  # 0: as above


def _jobs(suites: int) -> int:
    """How many of ``suites`` run at a time (see above)."""
    if SUITE_JOBS > 0:
        return SUITE_JOBS
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return max(1, suites)
    return max(1, (suites + 1) // 2)


SEED_KEY = "seed:"  # a suites key: "seed:<profile>", the guide's own program


def _needed(request: pytest.FixtureRequest) -> list[str]:
    """The suites the selected tests of this module read: the control and their mutants
    (for ``suite_on``), the seed program's profiles (for ``seed_on``)."""
    names: list[str] = []
    for item in request.session.items:
        if item.module is not request.module:
            continue
        params = item.callspec.params if hasattr(item, "callspec") else {}
        if "suite_on" in item.fixturenames:
            mutant = params.get("mutant")
            wanted = [CONTROL] + ([mutant.name] if isinstance(mutant, Mutant) else [])
        elif "seed_on" in item.fixturenames:
            # Parametrized by generation, or the one on firmware that checks dates.
            wanted = [SEED_KEY + str(params.get("profile", DATE_CHECKING_PROFILE))]
        else:
            continue
        names += [name for name in wanted if name not in names]
    return names


@pytest.fixture(scope="module")
def suites(tmp_path_factory: pytest.TempPathFactory,
           request: pytest.FixtureRequest) -> Iterator[Callable[[str], SuiteResult]]:
    """The HIL suite's result for a mutant, the control or ``seed:<profile>``, run once per
    module. Every suite the selected tests need is queued when the module's first test
    starts (how many run at a time: ``_jobs``). A run that could not finish is remembered
    too, so it is not retried for every test."""
    by_name = {mutant.name: mutant for mutant in MUTANTS}
    running: list[subprocess.Popen[bytes]] = []

    def run(name: str, base: Path) -> SuiteResult:
        if name.startswith(SEED_KEY):
            return run_hil_suite(f"seed:{_seed_document()}", base / "results",
                                 profile=name.removeprefix(SEED_KEY), on_start=running.append)
        src = base / "device_src"
        if name == CONTROL:
            shutil.copytree(DEVICE_SRC, src, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            by_name[name].apply(src)
        return run_hil_suite(src, base / "results", on_start=running.append)

    needed = _needed(request)
    pool = ThreadPoolExecutor(max_workers=_jobs(len(needed)), thread_name_prefix="suite")

    def submit(name: str) -> Future[SuiteResult]:
        # pytest's temp-path factory is not thread-safe (its first call may empty the
        # worker's base folder while another thread fills it): folders are made here.
        return pool.submit(run, name, tmp_path_factory.mktemp(name.replace(":", "-")))

    futures = {name: submit(name) for name in needed}

    def get(name: str) -> SuiteResult:
        if name not in futures:
            futures[name] = submit(name)
        return futures[name].result()  # an AssertionError (or a skip) of the run is raised

    try:
        yield get
    finally:  # after Ctrl-C or a stop on first failure: no suite goes on running
        pool.shutdown(wait=False, cancel_futures=True)
        for process in running:
            if process.poll() is None:
                stop_suite(process)
        pool.shutdown(wait=True)


@pytest.fixture(scope="module")
def suite_on(suites: Callable[[str], SuiteResult]) -> Callable[[str], SuiteResult]:
    """The HIL suite's result for a mutant (or the control)."""
    return suites


# The module's suites run in its fixture while this first test waits: their time is put
# here, so under -n the module starts first.
@pytest.mark.hil_duration(130)
def test_control_passes_every_check(suite_on: Callable[[str], SuiteResult]) -> None:
    result = suite_on(CONTROL)
    assert not result.failed(), f"the unmutated device_src fails:\n{result.summary()}"
    passed = {o.item for o in result.outcomes if o.outcome == "passed"}
    assert passed == SPEC_ITEMS, (
        f"items without a passing check on device_src: {sorted(SPEC_ITEMS - passed)}\n"
        f"{result.summary()}")
    # Only firmware profiles whose umqtt cannot be fetched may be skipped.
    unexpected = [o for o in result.outcomes if o.outcome == "skipped"
                  and not (o.item == "S12" and "unavailable" in o.message)]
    assert not unexpected, f"unexpected skips:\n{result.summary()}"


@pytest.mark.parametrize("mutant", [pytest.param(m, id=m.name) for m in MUTANTS])
def test_mutation_applies_exactly_once(mutant: Mutant, tmp_path: Path) -> None:
    src = mutant.apply(tmp_path / "device_src")
    changed = (src / mutant.file).read_text(encoding="utf-8")
    assert changed != (DEVICE_SRC / mutant.file).read_text(encoding="utf-8")
    assert mutant.new in changed


@pytest.mark.parametrize(("mutant", "item"), _params("defect_item_fails", per_item=True))
def test_defect_item_fails_with_message_naming_it(
    mutant: Mutant, item: str, suite_on: Callable[[str], SuiteResult]
) -> None:
    result = suite_on(mutant.name)
    failed = [o for o in result.failed() if o.item == item]
    assert failed, f"{mutant.why}: no {item} check failed\n{result.summary()}"
    named = [o for o in failed if f"{item} violated" in o.message]
    assert named, (f"{mutant.why}: the failing {item} checks do not say '{item} violated':\n"
                   + "\n".join(f"--- {o.name}\n{o.message[:600]}" for o in failed))


@pytest.mark.parametrize("mutant", _params("only_dependents_fail"))
def test_only_the_defect_and_its_dependents_fail(
    mutant: Mutant, suite_on: Callable[[str], SuiteResult]
) -> None:
    result = suite_on(mutant.name)
    control = suite_on(CONTROL)
    failed = result.failed_items()
    assert failed == set(mutant.expected_items), (
        f"{mutant.why}: expected failures in {sorted(mutant.expected_items)}, got "
        f"{sorted(failed)}; unexpected: {sorted(failed - mutant.expected_items)}, missing: "
        f"{sorted(mutant.expected_items - failed)}\n{result.summary()}\n"
        + "\n".join(f"--- {o.name}\n{o.message[:1500]}" for o in result.failed()
                    if o.item not in mutant.expected_items))
    # A defect must not turn a check into a skip either (only the declared not-applicable).
    assert result.skipped() == control.skipped() | mutant.skipped_tests, result.summary()
    for name in mutant.skipped_tests:
        skip = next(o for o in result.outcomes if o.name == name)
        assert "not applicable" in skip.message, skip.message


@pytest.mark.parametrize(("mutant", "item", "text"), [
    pytest.param(m, item, text, id=f"{m.name}-{item}")
    for m in MUTANTS for item, text in m.diagnoses])
def test_diagnosis_names_the_cause(
    mutant: Mutant, item: str, text: str, suite_on: Callable[[str], SuiteResult]
) -> None:
    result = suite_on(mutant.name)
    failed = [o for o in result.failed() if o.item == item]
    assert failed, f"{mutant.why}: no {item} check failed\n{result.summary()}"
    vague = [o for o in failed if text not in o.message]
    assert not vague, (f"{mutant.why}: {item} failures that do not say {text!r}:\n"
                       + "\n".join(f"--- {o.name}\n{o.message[:1500]}" for o in vague))


@pytest.mark.parametrize("mutant", _params("failures_name_item"))
def test_every_failure_names_its_own_item(
    mutant: Mutant, suite_on: Callable[[str], SuiteResult]
) -> None:
    result = suite_on(mutant.name)
    unnamed = [o for o in result.failed() if f"{o.item} violated" not in o.message]
    assert not unnamed, "failures that do not name their spec item:\n" + "\n".join(
        f"--- {o.name}\n{o.message.splitlines()[0] if o.message else '(no message)'}"
        for o in unnamed)


# --- the guide's own program: the honest verdict per firmware generation ----------------
SEED_DOCUMENT = "000_1d65173659e48ce4.txt"
SEED_GENERATIONS = ("v1.20", "v1.21")  # what the guide was written for: no date checks
DATE_CHECKING_PROFILE = "v1.22"


def _seed_document() -> Path:
    configured = os.environ.get("HIL_SEED_DOCUMENT")
    path = Path(configured) if configured else REPO.parent / "shared" / "seeds" / SEED_DOCUMENT
    if not path.is_file():
        pytest.skip(f"the seed document {path} is not beside the repository; set "
                    "HIL_SEED_DOCUMENT to it")
    return path


def _cell_checks_dates(test_name: str) -> bool:
    """True for an S12 cell (``...[v1.22]``) whose firmware checks certificate dates."""
    profile = test_name.rpartition("[")[2].rstrip("]")
    return profile in PROFILES and PROFILES[profile].checks_cert_dates


@pytest.fixture(scope="module")
def seed_on(suites: Callable[[str], SuiteResult]) -> Callable[[str], SuiteResult]:
    """The HIL suite's result for the seed program on a firmware profile."""
    return lambda profile: suites(SEED_KEY + profile)


@pytest.mark.parametrize("profile", SEED_GENERATIONS)
def test_seed_passes_every_check_on_its_generation(
        profile: str, seed_on: Callable[[str], SuiteResult]) -> None:
    result = seed_on(profile)
    # Only the S12 cells of firmware that checks dates may fail: the guide never sets the
    # clock, which those boards need (S13); on its own generation everything holds.
    failed = [o for o in result.failed()
              if not (o.item == "S12" and _cell_checks_dates(o.name))]
    assert not failed, f"the seed program fails on {profile}:\n{result.summary()}"
    passed = {o.item for o in result.outcomes if o.outcome == "passed"}
    # S13 does not apply where no date is checked, R1-R6 not to a program that does not
    # reconnect; the seed has no SNI switch (S10's negative case) but passes the positive.
    assert passed == {item for item in SPEC_ITEMS if item.startswith("S")} - {"S13"}, (
        result.summary())
    s13 = [o for o in result.outcomes if o.item == "S13"]
    assert s13 and all(o.outcome == "skipped" and "not applicable" in o.message
                       for o in s13), result.summary()


def test_seed_fails_s13_on_firmware_that_checks_dates(
        seed_on: Callable[[str], SuiteResult]) -> None:
    result = seed_on(DATE_CHECKING_PROFILE)
    s13 = [o for o in result.failed() if o.item == "S13"]
    assert s13, f"the seed program passes S13 on {DATE_CHECKING_PROFILE}:\n{result.summary()}"
    assert "S13 violated" in s13[0].message
    assert CLOCK_DIAGNOSIS in s13[0].message, s13[0].message[:1500]
