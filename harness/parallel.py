"""pytest-xdist support: ``pytest -m hil -n N`` runs the suite on N boards at once.

* Each worker brings up a board of its own (the device backend picks a distinct one; see
  :mod:`harness.device.backends.pool`) with its own broker side, and writes its artifacts
  into one session folder the controller names, one subfolder per worker.
* Tests that read the same scenario run go to the same worker, so each scenario runs once
  per session whichever worker holds its tests. The plugin schedules ``-n`` runs itself
  (``pytest_xdist_make_scheduler``): a test's group is the scenario it passes to
  ``hil_run`` (found in its code), or the ``hil_scenario("name")`` marker; a test that uses
  a module- (or wider-) scoped fixture of the project is scheduled with its module, as
  ``--dist loadscope`` does, so that fixture is built once; any other test on its own.
  Node ids are not changed (``--dist loadgroup`` would append ``@group``), so JUnit and
  history names are the same with and without ``-n``. An explicit ``--dist`` other than
  ``load`` is honoured.
* The costliest work starts first (longest-processing-time first, so no worker is left
  with a long test at the end while the others idle). A scenario group costs what its runs
  are expected to take (:meth:`Scenario.expected_s`); a test marked ``hil_duration(s)``
  costs ``s``; any other test :data:`DEFAULT_TEST_S`.

Workers tell the controller their groups through small JSON files in a folder the
controller creates and removes; xdist's own channel carries only node ids.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness import lifetime
from harness.hil import scenario as scenarios
from harness.hil.scenario import Scenario

MARKER = "hil_scenario"
_GROUPS_DIR = "hil_groups_dir"
_SESSION = "hil_session"
_GROUP_PREFIX = "hil-run:"
_ALONE_PREFIX = "test:"  # a test scheduled on its own (it shares no fixture)
DURATION_MARKER = "hil_duration"
DEFAULT_TEST_S = 0.3  # the median unit test here, to order tests without a better estimate

groups_dir_key = pytest.StashKey[Path]()
session_key = pytest.StashKey[str]()


# --- who am I ---------------------------------------------------------------------------
def worker_id(config: pytest.Config) -> str:
    """This session's xdist worker id ("gw0"), or "" outside xdist. Read from the config,
    not the environment: a pytest run inside a worker (pytester) is not that worker."""
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    return str(workerinput.get("workerid", "")) if workerinput is not None else ""


def worker_count(config: pytest.Config) -> int:
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    return int(workerinput.get("workercount", 1)) if workerinput is not None else 1


def session_name(config: pytest.Config) -> str:
    """One name for the whole run, the same in every worker: ``<time>-<id>``."""
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is not None and _SESSION in workerinput:
        return str(workerinput[_SESSION])
    if session_key not in config.stash:
        config.stash[session_key] = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
    return config.stash[session_key]


# --- controller side --------------------------------------------------------------------
def _distributing(config: pytest.Config) -> bool:
    return (not hasattr(config, "workerinput")
            and str(config.getoption("dist", "no") or "no") != "no"
            and bool(config.getoption("tx", None)))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}(name): the scenario run a HIL test reads "
                            "(found automatically when the test passes it to hil_run)")
    config.addinivalue_line("markers", f"{DURATION_MARKER}(seconds): about how long the test "
                            "takes; under -n the costliest work starts first")
    if _distributing(config):
        config.stash[groups_dir_key] = lifetime.temp_dir("hil-xdist-groups-")
        session_name(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    folder = config.stash.get(groups_dir_key, None)
    if folder is not None:
        lifetime.remove_dir(folder)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    config: pytest.Config = node.config
    if groups_dir_key in config.stash:
        node.workerinput[_GROUPS_DIR] = str(config.stash[groups_dir_key])
    node.workerinput[_SESSION] = session_name(config)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "load" or groups_dir_key not in config.stash:
        return None  # the user chose a distribution mode: theirs
    from xdist.scheduler import LoadScopeScheduling

    folder = config.stash[groups_dir_key]

    class ScenarioScheduling(LoadScopeScheduling):  # type: ignore[misc]
        """LoadScope with scopes = scenario runs (HIL tests), modules sharing a built-once
        fixture, or single tests; the costliest scope is handed out first."""

        _plan: Plan | None = None
        _ordered = False

        def _reschedule(self, node: Any) -> None:
            # xdist holds back a worker's last queued test until more work arrives, so a
            # worker needs one test in reserve; unlike LoadScope's reserve of two, which
            # parks several one-test scenario runs on one busy worker while others idle.
            if node.shutting_down:
                return
            if not self.workqueue:
                node.shutdown()
                return
            if self._pending_of(self.assigned_work[node]) > 1:
                return
            self._assign_work_unit(node)

        def _assign_work_unit(self, node: Any) -> None:
            if not self._ordered:  # the first assignment: the queue is complete now
                self._ordered = True
                plan = self._read_plan()
                ordered = sorted(self.workqueue.items(),
                                 key=lambda scope: -sum(map(plan.cost, scope[1])))
                self.workqueue.clear()
                self.workqueue.update(ordered)
            super()._assign_work_unit(node)

        def _split_scope(self, nodeid: str) -> str:
            group = self._read_plan().groups.get(nodeid)
            return _GROUP_PREFIX + group if group else str(super()._split_scope(nodeid))

        def _read_plan(self) -> Plan:
            if self._plan is None:
                self._plan = read_plan(folder)
            return self._plan

    return ScenarioScheduling(config, log)


@dataclass
class Plan:
    """What the workers found at collection: each test's group and its expected cost."""

    groups: dict[str, str] = field(default_factory=dict)  # nodeid -> scenario group
    costs: dict[str, float] = field(default_factory=dict)  # nodeid -> seconds

    def cost(self, nodeid: str) -> float:
        return self.costs.get(nodeid, DEFAULT_TEST_S)


def read_plan(folder: Path) -> Plan:
    plan = Plan()
    for path in sorted(folder.glob("*.json")):
        try:
            found = json.loads(path.read_text(encoding="utf-8"))
            plan.groups.update(found["groups"])
            plan.costs.update(found["costs"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a worker that died mid-write: its tests fall back to module scopes
    return plan


# --- worker side ------------------------------------------------------------------------
@pytest.hookimpl(tryfirst=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """Before the worker reports its collection, write down which run each test reads."""
    workerinput: dict[str, Any] | None = getattr(session.config, "workerinput", None)
    if workerinput is None or _GROUPS_DIR not in workerinput:
        return
    profile = _session_profile(session.config)
    groups = scenario_groups(session.items, profile)
    costs = expected_costs(session.items, groups)
    groups.update({item.nodeid: _ALONE_PREFIX + item.nodeid for item in session.items
                   if item.nodeid not in groups and not shares_fixtures(item)})
    target = Path(workerinput[_GROUPS_DIR]) / f"{workerinput.get('workerid', 'gw')}.json"
    partial = target.with_suffix(".partial")
    partial.write_text(json.dumps({"groups": groups, "costs": costs}), encoding="utf-8")
    partial.replace(target)


def expected_costs(items: list[pytest.Item], groups: dict[str, str]) -> dict[str, float]:
    """``{nodeid: seconds}``: a ``hil_duration`` marker's value, else a share of what the
    scenario runs of the test's group are expected to take (the group's tests split it),
    else nothing (:data:`DEFAULT_TEST_S`)."""
    known = scenarios.by_name()
    runs: dict[str, dict[str, float]] = {}  # group -> {run name: expected seconds}
    members: dict[str, int] = {}
    for item in items:
        group = groups.get(item.nodeid)
        if group is None:
            continue
        members[group] = members.get(group, 0) + 1
        for name in scenarios_read(item):
            scenario = known.get(name)
            runs.setdefault(group, {})[name] = (scenario.expected_s() if scenario is not None
                                                else DEFAULT_TEST_S)
    costs: dict[str, float] = {}
    for item in items:
        marker = item.get_closest_marker(DURATION_MARKER)
        group = groups.get(item.nodeid)
        if marker is not None and marker.args:
            costs[item.nodeid] = float(marker.args[0])
        elif group is not None:
            costs[item.nodeid] = (DEFAULT_TEST_S
                                  + sum(runs.get(group, {}).values()) / members[group])
    return costs


def shares_fixtures(item: pytest.Item) -> bool:
    """Whether ``item`` uses a fixture built once for several tests (module, class, package
    or session scope) of the project's own, or of the harness: such tests keep their
    module's scope, so it is built once. Any other test is a unit of its own: a module of
    slow tests no longer runs one after another on one worker."""
    info = getattr(item, "_fixtureinfo", None)
    for definitions in getattr(info, "name2fixturedefs", {}).values():
        for definition in definitions:
            module = getattr(getattr(definition, "func", None), "__module__", "") or ""
            if definition.scope != "function" and (
                    definition.baseid or module.split(".")[0] == "harness"):
                return True
    return False


def _session_profile(config: pytest.Config) -> str:
    from harness.pytest_plugin import option_value

    return option_value(config, "hil_profile") or "v1.22"


def scenario_groups(items: list[pytest.Item], session_profile: str) -> dict[str, str]:
    """``{nodeid: group}`` for tests that read a scenario run; tests reading several runs
    merge those runs into one group (they must share a worker)."""
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    per_item: dict[str, list[str]] = {}
    for item in items:
        keys = [_run_key(name, item, session_profile) for name in scenarios_read(item)]
        if keys:
            per_item[item.nodeid] = keys
            for key in keys[1:]:
                parent[find(key)] = find(keys[0])
    return {nodeid: find(keys[0]) for nodeid, keys in per_item.items()}


def _run_key(name: str, item: pytest.Item, session_profile: str) -> str:
    """A run is a scenario on one rig; rigs other than the session's are per profile."""
    callspec = getattr(item, "callspec", None)
    profile = callspec.params.get("profile") if callspec is not None else None
    return f"{profile}/{name}" if profile and profile != session_profile else name


def scenarios_read(item: pytest.Item) -> list[str]:
    """The names of the scenarios a test reads: its marker, else the Scenario constants its
    code refers to (``scenario.MESSAGING``, or a Scenario imported into its module)."""
    marker = item.get_closest_marker(MARKER)
    if marker is not None:
        return [str(arg) for arg in marker.args]
    function = getattr(item, "function", None)
    code = getattr(function, "__code__", None)
    if code is None:
        return []
    module_globals = getattr(function, "__globals__", {})
    names: list[str] = []
    for name in code.co_names:
        value = module_globals.get(name, getattr(scenarios, name, None))
        if isinstance(value, Scenario) and value.name not in names:
            names.append(value.name)
    return names
