# The harness's pytest plugin is registered through the `pytest11` entry point in
# pyproject.toml, so its fixtures live in harness/pytest_plugin.py, where installed users
# get them too. This file only holds what the project's own tests need: pytester, and the
# `mosquitto` marker that skips (with the install hint) when the broker is not installed.
from __future__ import annotations

from collections.abc import Generator

import pytest

from harness.broker.mosquitto_broker import INSTALL_HINT, mosquitto_installed
from harness.errors import ProcessFailed

pytest_plugins = ["pytester"]

MOSQUITTO_MARK = "mosquitto"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MOSQUITTO_MARK}: needs Debian's mosquitto; skipped with the install hint "
        "when it is missing (also set on every test parametrized with the mosquitto backend)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and MOSQUITTO_MARK in callspec.params.values():
            item.add_marker(MOSQUITTO_MARK)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker(MOSQUITTO_MARK) is not None and not mosquitto_installed():
        pytest.skip(f"mosquitto is not installed; {INSTALL_HINT}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A program that failed under a test is one message (command, exit code, output tail)
    at the test's line, not a traceback through subprocess internals."""
    report = yield
    excinfo = call.excinfo
    if report.failed and excinfo is not None and excinfo.errisinstance(ProcessFailed):
        test_file = str(item.path)
        lines = [entry for entry in excinfo.traceback if str(entry.path) == test_file]
        where = f"{item.path.name}:{lines[-1].lineno + 1}" if lines else item.nodeid
        report.longrepr = f"{where}: {excinfo.value}"
    return report
