"""pytest plugin: record every test's outcome into the results history (``--hil-history DIR``).

Loaded by ``harness.pytest_plugin`` through ``pytest_plugins``. The tests and HIL fixtures
put their context on ``item.user_properties`` (``hil.spec_item``, ``hil.backend``,
``hil.metric.connect_ms``, ``hil.artifact.serial_log`` …); this plugin folds the
setup/call/teardown reports into one outcome per test and writes the whole run in one
transaction at session finish. Under pytest-xdist only the controller records (it receives
every worker's reports), so workers never write.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness import lifetime
from harness.errors import HarnessError, HistoryError, ProcessFailed
from harness.redact import redact
from harness.report.history import (
    PYTEST_SKIPPED,
    History,
    RunRecord,
    TestRecord,
    ensure_writable,
)
from harness.report.retention import apply_retention

ENV_HISTORY = "HIL_HISTORY"
ENV_BATCH = "HIL_HISTORY_BATCH"
ENV_KEEP = "HIL_KEEP"
ENV_KEEP_HISTORY = "HIL_KEEP_HISTORY"
# Enough for a check's whole message (expected, seen, diagnosis, quoted lines, paths); the
# report shows its first line and keeps the rest one click away.
_MESSAGE_LIMIT = 4000
# Command-line options whose value must never reach the history.
_SECRET_OPTION = re.compile(r"(password|passwd|secret|token|psk|key)", re.IGNORECASE)
# user:password@ in a broker URL such as mqtts://user:pass@host:8883
_URL_PASSWORD = re.compile(r"(\w+://[^:/@\s]+:)[^@\s]+@")
_CONTEXT_FIELDS = ("spec_item", "backend", "device", "profile", "broker", "transport", "device_rev")

recorder_key = pytest.StashKey["HistoryRecorder"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hil", "ESP32 MicroPython MQTT hardware-in-the-loop")
    group.addoption(
        "--hil-history",
        dest="hil_history",
        default=None,
        metavar="DIR",
        help="record every test's outcome into the results history in DIR "
        f"(ini hil_history, env {ENV_HISTORY})",
    )
    group.addoption(
        "--hil-history-batch",
        dest="hil_history_batch",
        default=None,
        metavar="NAME",
        help="group this run with others into one report round, e.g. a nightly's matrix "
        f"cells (env {ENV_BATCH}; default: the run is a round of its own)",
    )
    group.addoption(
        "--hil-keep",
        dest="hil_keep",
        default=None,
        metavar="N",
        help="keep the run folders (serial logs, tap traces) of the newest N rounds; older "
        f"ones are replaced by a 'pruned' note (ini hil_keep, env {ENV_KEEP}; default: keep all)",
    )
    group.addoption(
        "--hil-keep-history",
        dest="hil_keep_history",
        default=None,
        metavar="M",
        help="with --hil-keep: keep the results of the newest M rounds in the history "
        f"(ini hil_keep_history, env {ENV_KEEP_HISTORY}; default 10 x N)",
    )
    parser.addini("hil_history", "default for --hil-history", default="")
    parser.addini("hil_keep", "default for --hil-keep", default="")
    parser.addini("hil_keep_history", "default for --hil-keep-history", default="")


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):  # an xdist worker: the controller records
        return
    directory = (
        config.getoption("hil_history", None)
        or os.environ.get(ENV_HISTORY)
        or str(config.getini("hil_history") or "")
    )
    if not directory:
        if config.getoption("hil_keep", None) or config.getoption("hil_keep_history", None):
            raise pytest.UsageError("--hil-keep prunes the results history; give it one with "
                                    "--hil-history DIR")
        return
    path = Path(directory)
    if not path.is_absolute():
        path = Path(config.invocation_params.dir) / path
    try:
        ensure_writable(path)
    except HistoryError as exc:
        raise pytest.UsageError(str(exc)) from exc
    batch = config.getoption("hil_history_batch", None) or os.environ.get(ENV_BATCH, "")
    keep = _rounds(config, "hil_keep", ENV_KEEP)
    keep_history = _rounds(config, "hil_keep_history", ENV_KEEP_HISTORY)
    if keep_history is not None and keep is None:
        raise pytest.UsageError("--hil-keep-history needs --hil-keep N (the rounds whose run "
                                "folders are kept)")
    if keep is not None and keep_history is not None and keep_history < keep:
        raise pytest.UsageError(f"--hil-keep-history {keep_history} is less than --hil-keep "
                                f"{keep}; the history must hold at least the kept rounds")
    recorder = HistoryRecorder(
        path, batch=batch, command=_redacted_command(config.invocation_params.args),
        base_dir=Path(config.invocation_params.dir), session_context=_session_context(config),
        keep=keep, keep_history=keep_history,
    )
    config.stash[recorder_key] = recorder
    config.pluginmanager.register(recorder, "hil-history-recorder")


@dataclass
class _Pending:
    """The phases of one test seen so far."""

    outcome: str = "passed"
    duration: float = 0.0
    message: str = ""
    properties: dict[str, object] = field(default_factory=dict)


class HistoryRecorder:
    """Folds pytest reports into :class:`TestRecord`s and writes them as one run."""

    def __init__(self, directory: Path, *, batch: str, command: str, base_dir: Path,
                 session_context: dict[str, str] | None = None, keep: int | None = None,
                 keep_history: int | None = None) -> None:
        self.directory = directory
        self.keep = keep
        self.keep_history = keep_history
        # The session's device/profile/broker, for HIL tests that failed before their
        # fixtures recorded any context (a rig that did not start still lands in its cell).
        self.session_context = session_context or {}
        self.batch = batch
        self.command = command
        self.base_dir = base_dir
        self.started = time.time()
        self.status_line = ""
        self.failed_to_record = False
        self._pending: dict[str, _Pending] = {}

    # --- hooks (the recorder is registered as a plugin object) ----------------------------
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.add(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        # A module that fails to import would otherwise just vanish from the history.
        if report.failed:
            pending = self._pending.setdefault(report.nodeid or "<collection>", _Pending())
            pending.outcome = "error"
            pending.message = scrub(_crash_message(report))

    def pytest_sessionfinish(self, exitstatus: int) -> None:
        self.finish(int(exitstatus))

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.status_line:
            terminalreporter.write_line(self.status_line, red=self.failed_to_record)

    # --- the work ------------------------------------------------------------------------
    def add(self, report: pytest.TestReport) -> None:
        pending = self._pending.setdefault(report.nodeid, _Pending())
        pending.duration += float(report.duration)
        for name, value in report.user_properties:
            pending.properties[str(name)] = value
        outcome = _phase_outcome(report)
        if outcome is not None and _worse(outcome, pending.outcome):
            pending.outcome = outcome
            pending.message = scrub(_crash_message(report))

    def records(self) -> list[TestRecord]:
        return [self._record(nodeid, p) for nodeid, p in self._pending.items()]

    def finish(self, exit_status: int) -> None:
        run = RunRecord(
            started=self.started, finished=time.time(), batch=self.batch,
            exit_status=exit_status, harness_rev=_harness_rev(), host=socket.gethostname(),
            command=self.command,
        )
        records = self.records()
        retention = ""
        try:
            with History.for_writing(self.directory) as history:
                run_id = history.record_run(run, records)
                if self.keep is not None:
                    done = apply_retention(history, self.keep, self.keep_history)
                    retention = f"; {done.describe()}" if done.describe() else ""
        except HistoryError as exc:
            self.failed_to_record = True
            self.status_line = f"hil history: NOT recorded: {exc}"
            return
        self.status_line = (
            f"hil history: recorded {len(records)} results as run #{run_id} in {self.directory}"
            f"{retention}"
        )

    def _record(self, nodeid: str, pending: _Pending) -> TestRecord:
        props = pending.properties
        record = TestRecord(
            nodeid=nodeid, outcome=pending.outcome, duration=round(pending.duration, 6),
            message=pending.message,
        )
        for name in _CONTEXT_FIELDS:
            value = props.get(f"hil.{name}")
            if value is None and record.spec_item:
                value = self.session_context.get(name)
            if value is not None:
                setattr(record, name, str(value))
        for name, value in props.items():
            if name.startswith("hil.artifact.") and value:
                record.artifacts[name.removeprefix("hil.artifact.")] = self._absolute(value)
            elif name.startswith("hil.metric."):
                try:
                    record.metrics[name.removeprefix("hil.metric.")] = float(str(value))
                except ValueError:
                    continue  # a non-numeric metric is a test bug, not worth losing the run
        return record

    def _absolute(self, value: object) -> str:
        path = Path(str(value))
        return str(path if path.is_absolute() else self.base_dir / path)


# Which outcome wins when phases disagree: an error in teardown spoils a pass, a failure stays.
_RANK = {"passed": 0, "skipped": 1, "xfailed": 2, "error": 3, "failed": 4}


def _worse(new: str, old: str) -> bool:
    return _RANK[new] > _RANK[old]


def _phase_outcome(report: pytest.TestReport) -> str | None:
    xfail = hasattr(report, "wasxfail")
    if report.when == "call":
        if report.skipped:
            return "xfailed" if xfail else "skipped"
        return "failed" if report.failed else "passed"
    if report.failed:
        return "error"
    if report.skipped:
        return "xfailed" if xfail else "skipped"
    return None


def _crash_message(report: pytest.TestReport | pytest.CollectReport) -> str:
    if report.passed:
        return ""
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        text = str(crash.message)
    elif isinstance(report.longrepr, tuple):  # a skip: (path, line, reason)
        text = str(report.longrepr[-1])
    else:
        text = report.longreprtext.strip().splitlines()[-1] if report.longreprtext else ""
    # pytest.fail() puts "Failed: " before the check's own first line, pytest.skip()
    # "Skipped: " before the reason (which may say "not applicable: …").
    text = "\n".join(line.rstrip() for line in text.strip().splitlines())
    text = text.removeprefix("Failed: ").removeprefix(PYTEST_SKIPPED)
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"


def _rounds(config: pytest.Config, name: str, env: str) -> int | None:
    """A round count option (CLI, env, ini), checked: a whole number of at least 1."""
    value = config.getoption(name, None) or os.environ.get(env) or config.getini(name) or None
    if value is None:
        return None
    flag = "--" + name.replace("_", "-")
    try:
        rounds = int(str(value))
    except ValueError:
        rounds = 0
    if rounds < 1:
        raise pytest.UsageError(f"{flag} {value!r} is not a number of rounds; give a whole "
                                f"number of at least 1, e.g. {flag} 30")
    return rounds


def _option(config: pytest.Config, name: str) -> str | None:
    """An option of the lead's plugin the way it resolves them: CLI, env, ini."""
    value = config.getoption(name, None) or os.environ.get(name.upper())
    if value is None:
        try:
            value = config.getini(name) or None
        except ValueError:  # the HIL plugin is not loaded: no such ini key
            return None
    return None if value is None else str(value)


def _session_context(config: pytest.Config) -> dict[str, str]:
    device = _option(config, "hil_device")
    if device is None:
        return {}
    from harness.device.backends import factory_for

    try:
        factory = factory_for(device)
    except HarnessError:
        return {}
    context = {"backend": factory.name, "device": device}
    profile = _option(config, "hil_profile")
    if profile:
        context["profile"] = profile if factory.runs_profiles else "flashed"
    broker = _option(config, "hil_broker")
    if broker:
        context["broker"] = broker.split("://")[0]
    return context


def scrub(text: str) -> str:
    """Mask secrets before they reach the history: the values of secret-named environment
    variables (HIL_WIFI_PASSWORD, …) and passwords inside URLs."""
    secrets = [value for name, value in os.environ.items() if _SECRET_OPTION.search(name)]
    return _URL_PASSWORD.sub(r"\1***@", redact(text, secrets))


def _redacted_command(args: tuple[str, ...]) -> str:
    """The pytest command line, with the values of secret-looking options masked."""
    out: list[str] = []
    mask_next = False
    for arg in args:
        if mask_next:
            out.append("***")
            mask_next = False
        elif arg.startswith("-") and _SECRET_OPTION.search(arg):
            if "=" in arg:
                out.append(arg.split("=", 1)[0] + "=***")
            else:
                out.append(arg)
                mask_next = True
        else:
            out.append(arg)
    return scrub(shlex.join(["pytest", *out]))


def _harness_rev() -> str:
    """The git revision of the harness checkout, or "" outside a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        done = lifetime.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=here, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, timeout=10,
            check=False,
        )
    except (OSError, ProcessFailed):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""

