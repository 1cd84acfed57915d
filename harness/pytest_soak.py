"""The soak run as pytest sees it: ``pytest -m soak`` runs the device for a long stretch
(``--hil-soak-messages``, default 1,000 messages 0.1 s apart through the tap over TLS, or
``--hil-soak-minutes``) and checks that every message arrives, that the harness's cost per
message stays flat and that the device's heap does not shrink. Soak tests carry only the
``soak`` marker, so the default run (``-m "unit or hil"``) and the suite's own sharpness
test never include them.
"""

from __future__ import annotations

import contextlib

import pytest

from harness.hil.rig import Rig, RunResult
from harness.hil.scenario import SOAK, Scenario, soak

MESSAGES, MINUTES = "hil_soak_messages", "hil_soak_minutes"
# Set-up and the final checks on top of the run itself; pytest-timeout's per-test default
# (120 s) would end any real soak.
_MARGIN_S = 180.0
# A loop iteration is the interval plus an echo round trip; on a loaded runner allow this.
_ITERATION_SLACK_S = 0.25


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hil")
    for name, help_text, default in (
            (MESSAGES, "messages in the soak run (pytest -m soak)", str(SOAK.publishes)),
            (MINUTES, "run the soak for this many minutes instead (60: the nightly hour)", "")):
        group.addoption("--" + name.replace("_", "-"), dest=name, default=None,
                        help=f"{help_text} (ini {name}, env {name.upper()}; default "
                        f"{default or 'none'})")
        parser.addini(name, help_text, default=default)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "soak: a long device run (pytest -m soak; not in "
                            "the default run); --hil-soak-messages / --hil-soak-minutes")
    soak_scenario(config)  # a bad value is a usage error before anything starts


def _number(config: pytest.Config, name: str, kind: type[int] | type[float]) -> float | None:
    from harness.pytest_plugin import option_value

    raw = option_value(config, name)
    if not raw:
        return None
    try:
        value = kind(raw)
    except ValueError:
        value = 0
    if value <= 0:
        flag = "--" + name.replace("_", "-")
        raise pytest.UsageError(f"{flag} {raw!r} is not a positive number; give e.g. "
                                f"{'1000' if kind is int else '60'}")
    return value


def soak_scenario(config: pytest.Config) -> Scenario:
    minutes = _number(config, MINUTES, float)
    if minutes:
        return soak(minutes=minutes)
    return soak(int(_number(config, MESSAGES, int) or SOAK.publishes))


def soak_budget_s(scenario: Scenario) -> float:
    """How long the whole soak test may take: the designed run, slack, set-up."""
    if scenario.run_for_s:
        return scenario.run_for_s + _MARGIN_S
    return scenario.publishes * (scenario.publish_interval + _ITERATION_SLACK_S) + _MARGIN_S


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    budget = soak_budget_s(soak_scenario(config))
    for item in items:
        if item.get_closest_marker("soak") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(budget))


@pytest.fixture
def soak_run(rig: Rig, request: pytest.FixtureRequest) -> RunResult:
    """The session's soak run (run once, shared by the soak tests), with progress lines on
    the terminal as it goes."""
    from harness.pytest_plugin import HilRunner

    plugins = request.config.pluginmanager
    reporter = plugins.get_plugin("terminalreporter")
    capture = plugins.get_plugin("capturemanager")

    def progress(line: str) -> None:
        if reporter is None:
            return
        # Past pytest's output capture, so it shows while the test runs.
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            reporter.write_line(f"[soak] {line}")

    if rig.progress is None:
        rig.progress = progress
    return HilRunner(rig, request.node)(soak_scenario(request.config))
