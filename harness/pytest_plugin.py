"""pytest plugin (registered through the ``pytest11`` entry point).

Fixtures stay thin: they read options, build the plain harness objects (``Target``,
``Rig``), yield them and clean up. The work happens in ``harness.hil``, ``harness.device``,
``harness.broker`` and ``harness.emulator``.

Every option has an ini key and an environment variable (``--hil-device`` = ini
``hil_device`` = env ``HIL_DEVICE``); the command line wins, then the environment, then
the ini file, then the default.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from harness import parallel
from harness.checks.findings import Finding
from harness.device.backends import factory_for

# Emulated boards as fixtures for tests of your own (many at once, all stopped at the end).
from harness.emulator.fixtures import board_factory, emulated_board  # noqa: F401
from harness.env import HarnessEnv
from harness.errors import ConfigError, DeviceLost, HarnessError
from harness.faults import FaultPlan
from harness.hil.programs import DeviceProgram, open_program, seed_program
from harness.hil.rig import NotApplicable, Rig, RunResult
from harness.hil.scenario import Scenario
from harness.hil.targets import TargetOptions
from harness.lifetime import SigtermAsInterrupt
from harness.pytest_guards import check_settings_loaded
from harness.spec_items import NOT_APPLICABLE, item_of_test

pytest_plugins = ["harness.report.pytest_history", "harness.parallel", "harness.pytest_soak"]

DEFAULT_PROFILE = "v1.22"
SEED_DOCUMENT_DEFAULT = "../shared/seeds/000_1d65173659e48ce4.txt"


@dataclass(frozen=True)
class _Option:
    name: str
    default: str | None
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return self.name.upper()


OPTIONS = [
    _Option("hil_device", "emu", "device under test: emu (the emulated ESP32), a serial port "
            "path, auto, a USB serial number or location, rfc2217://host:port, or several "
            "boards as PORT1,PORT2 (one per pytest-xdist worker)"),
    _Option("hil_profile", "v1.22", "firmware profile of the emulated board (v1.22, v1.23, "
            "v1.25, ...)"),
    _Option("hil_broker", "amqtt", "broker: amqtt (embedded), mosquitto, or a URL such as "
            "mqtts://user:pass@host:8883"),
    _Option("hil_device_src", "device_src", "device program folder (must hold main.py), or "
            "'seed[:PATH]' for the seed guide's own program"),
    _Option("hil_firmware", None, "firmware image to flash before the session (real boards "
            "and RFC2217; skipped when the board already has it)"),
    _Option("hil_results", "hil-results", "folder for artifacts: serial logs, tap traces, "
            "broker logs"),
    _Option("hil_broker_host", None, "address of this machine that a real board can reach "
            "(the broker binds there)"),
    _Option("hil_broker_name", None, "name a real board uses for the broker: its SNI and "
            "certificate name (default: --hil-broker-host; the emulated board uses "
            "broker.test)"),
    _Option("hil_micropython_lib", None, "micropython-lib checkout providing umqtt.simple for "
            "emulated profiles v1.23 and newer"),
    _Option("hil_ntp_port", None, "UDP port of the rig's NTP server on the broker host "
            "(default: a free port the emulated board is pointed at; 123 for a real board, "
            "which needs root or CAP_NET_BIND_SERVICE)"),
]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hil", "ESP32 MicroPython MQTT hardware-in-the-loop")
    for option in OPTIONS:
        group.addoption(option.flag, dest=option.name, default=None,
                        help=f"{option.help} (ini {option.name}, env {option.env}; "
                        f"default {option.default or 'none'})")
        parser.addini(option.name, option.help, default=option.default)


def option_value(config: pytest.Config, name: str) -> str | None:
    value = config.getoption(name)
    if value is None:
        value = os.environ.get(name.upper())
    if value is None:
        value = config.getini(name) or None
    return str(value) if value is not None else None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "hil: a hardware-in-the-loop spec check (an S or R item)")
    config.addinivalue_line("markers", "unit: a fast test of the harness's own parts")
    try:  # the environment, read once for the session (harness.env lists what is read)
        config.stash[_ENV_KEY] = HarnessEnv.from_environ()
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    _validate_device_option(option_value(config, "hil_device") or "emu")
    _validate_firmware_option(config)
    _validate_path_options(config)
    check_settings_loaded(config)
    sigterm = SigtermAsInterrupt()
    sigterm.install()
    config.stash[_SIGTERM_KEY] = sigterm


def pytest_unconfigure(config: pytest.Config) -> None:
    sigterm = config.stash.get(_SIGTERM_KEY, None)
    if sigterm is not None:
        sigterm.uninstall()


_SIGTERM_KEY = pytest.StashKey[SigtermAsInterrupt]()
_ENV_KEY = pytest.StashKey[HarnessEnv]()


def session_env(config: pytest.Config) -> HarnessEnv:
    """The environment as read when the session was configured."""
    return config.stash[_ENV_KEY]


# Options naming something that must already exist: (option, what it must be).
_INPUT_PATHS = (("hil_micropython_lib", "a micropython-lib checkout folder"),
                ("hil_device_src", "a device program folder (or seed[:PATH])"))


def _validate_path_options(config: pytest.Config) -> None:
    """A path option that points nowhere is a usage error, not a run of skips. Only values
    the user gave are checked (the defaults may not exist where pytest runs)."""
    root = config.invocation_params.dir
    for name, what in _INPUT_PATHS:
        value = config.getoption(name) or os.environ.get(name.upper())
        if not value or (name == "hil_device_src" and (value == "seed"
                                                       or value.startswith("seed:"))):
            continue
        path = _resolve(root, str(value))
        if not path.exists():
            flag = "--" + name.replace("_", "-")
            raise pytest.UsageError(f"{flag} {value}: {path} does not exist; give {what}")


def _validate_device_option(value: str) -> None:
    try:
        factory_for(value)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None


def _validate_firmware_option(config: pytest.Config) -> None:
    firmware = option_value(config, "hil_firmware")
    if firmware is None:
        return
    device = option_value(config, "hil_device") or "emu"
    if factory_for(device).runs_profiles:
        raise pytest.UsageError(
            f"--hil-firmware {firmware} cannot apply to --hil-device {device}: the emulated "
            "board runs a firmware profile; choose it with --hil-profile, or drop --hil-firmware")
    if not _resolve(config.invocation_params.dir, firmware).is_file():
        raise pytest.UsageError(f"--hil-firmware {firmware} does not exist; give the path of "
                                "a MicroPython .bin image")


# --- session objects --------------------------------------------------------------
def _program(config: pytest.Config) -> DeviceProgram:
    value = option_value(config, "hil_device_src") or "device_src"
    root = config.invocation_params.dir
    if value == "seed" or value.startswith("seed:"):
        path = value.partition(":")[2] or SEED_DOCUMENT_DEFAULT
        return seed_program(_resolve(root, path))
    return open_program(_resolve(root, value))


def _resolve(root: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (root / path).resolve()


def target_options(config: pytest.Config, **overrides: object) -> TargetOptions:
    results = _resolve(config.invocation_params.dir,
                       option_value(config, "hil_results") or "hil-results")
    lib = option_value(config, "hil_micropython_lib")
    firmware = option_value(config, "hil_firmware")
    ntp_port = option_value(config, "hil_ntp_port")
    if ntp_port is not None and not (ntp_port.isdigit() and 0 < int(ntp_port) < 65536):
        raise pytest.UsageError(f"--hil-ntp-port {ntp_port!r} is not a UDP port number; give "
                                "1..65535 (123 is what a real board's ntptime asks)")
    env = session_env(config)
    options = TargetOptions(
        device=option_value(config, "hil_device") or "emu",
        profile=option_value(config, "hil_profile") or "v1.22",
        broker=option_value(config, "hil_broker") or "amqtt",
        workdir=results / _per_worker(config, "session"),
        broker_host=option_value(config, "hil_broker_host"),
        broker_name=option_value(config, "hil_broker_name"),
        micropython_lib=Path(lib) if lib else None,
        firmware=Path(firmware) if firmware else None,
        ntp_port=int(ntp_port) if ntp_port else None,
        env=env,
        # Real boards' Wi-Fi only from the environment: never on argv, in shell history
        # or CI logs.
        wifi_ssid=env.wifi_ssid,
        wifi_password=env.wifi_password,
    )
    options.worker = parallel.worker_id(config)
    options.worker_count = parallel.worker_count(config)
    for key, value in overrides.items():
        setattr(options, key, value)
    return options


def _per_worker(config: pytest.Config, name: str) -> str:
    """Each pytest-xdist worker's rig gets folders of its own (board flash, PKI, broker)."""
    worker = parallel.worker_id(config)
    return f"{name}-{worker}" if worker else name


def _session_dir(config: pytest.Config, runs: Path) -> Path:
    """The session's artifact folder, shared by every xdist worker (one subfolder each)."""
    folder = runs / parallel.session_name(config)
    worker = parallel.worker_id(config)
    return folder / worker if worker else folder


def session_profile(config: pytest.Config, program: DeviceProgram) -> str:
    """The firmware profile the user chose; without a choice, the default unless the
    program's manifest targets other generations, then the newest targeted one known."""
    ini = config.getini("hil_profile")
    given = (config.getoption("hil_profile") or os.environ.get("HIL_PROFILE")
             or (ini if ini != DEFAULT_PROFILE else None))
    if given:
        return str(given)
    manifest = program.manifest
    if manifest.targets(DEFAULT_PROFILE):
        return DEFAULT_PROFILE
    targeted = [profile for profile in known_profiles() if manifest.targets(profile)]
    return targeted[-1] if targeted else DEFAULT_PROFILE


class _SessionRig:
    """Starts the rig on first use; a failed start is reported once, then skips the rest
    (a broken set-up is not retried for every test)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.rig: Rig | None = None
        self.error: str | None = None

    def get(self) -> Rig:
        if self.error is not None:
            pytest.skip(f"HIL rig unavailable: {self.error}")
        if self.rig is None:
            try:
                program = _program(self.config)
                options = target_options(self.config,
                                         profile=session_profile(self.config, program))
                runs = options.workdir.parent / "runs"
                self.rig = Rig.open(options, program, runs,
                                    session_dir=_session_dir(self.config, runs))
            except HarnessError as exc:
                self.error = str(exc)
            if self.error is not None:  # outside `except`: no chained traceback
                pytest.fail(f"HIL rig could not start: {self.error}", pytrace=False)
        assert self.rig is not None
        return self.rig

    def close(self) -> None:
        if self.rig is not None:
            self.rig.close()


@pytest.fixture(scope="session")
def hil_session(request: pytest.FixtureRequest) -> Iterator[_SessionRig]:
    session = _SessionRig(request.config)
    yield session
    session.close()


@pytest.fixture
def rig(hil_session: _SessionRig) -> Rig:
    """The started HIL rig: device (emulated or real), broker, PKI, observer. It is set up
    once per session; if that fails, the first test says why and the rest are skipped."""
    return hil_session.get()


@pytest.fixture
def hil_run(rig: Rig, request: pytest.FixtureRequest) -> HilRunner:
    """Run a scenario (once per session) and record its evidence on this test's report."""
    return HilRunner(rig, request.node)


@pytest.fixture
def hil_faults() -> FaultPlan:
    """Faults for this test's ``hil_run(scenario)``: add them first, e.g.
    ``hil_faults.black_hole(AfterEchoes(3), 5.0)``; each start and end is recorded in the
    run's evidence (``evidence.faults``) and tap trace, next to the packets."""
    return FaultPlan()


class HilRunner:
    def __init__(self, rig: Rig, item: pytest.Item) -> None:
        self.rig = rig
        self.item = item

    def __call__(self, scenario: Scenario) -> RunResult:
        plan = self.item.funcargs.get("hil_faults") if hasattr(self.item, "funcargs") else None
        if isinstance(plan, FaultPlan) and plan:
            # The test's own faults are part of the scenario, so of the run's key: a run of
            # its own, never the plain one.
            scenario = replace(scenario, faults=scenario.faults + tuple(plan.faults))
        if self.rig.lost is not None:
            pytest.skip(f"device lost earlier in this session: {self.rig.lost}")
        problem: str | None = None
        try:
            result = self.rig.run(scenario)
        except NotApplicable as exc:
            pytest.skip(f"{NOT_APPLICABLE}: {exc}")
        except DeviceLost as exc:
            # A vanished port will not come back by itself: the rest of the session is
            # skipped as lost instead of each test hanging on it.
            self.rig.lost = str(exc)
            problem = f"scenario {scenario.name!r} could not run: {exc}"
        except HarnessError as exc:
            problem = f"scenario {scenario.name!r} could not run: {exc}"
        if problem is not None:  # outside `except`: no chained traceback
            pytest.fail(problem, pytrace=False)
        self._record(result)
        return result

    def _record(self, result: RunResult) -> None:
        target = self.rig.target
        props = self.item.user_properties
        props.append(("hil.backend", target.backend_name))
        props.append(("hil.device", target.backend.board))
        props.append(("hil.profile", target.profile_label))
        props.append(("hil.broker", target.options.broker.split("://")[0]))
        props.append(("hil.transport", "tls" if result.scenario.tls else "plain"))
        props.append(("hil.device_rev", self.rig.program_revision))
        for name, path in result.evidence.artifacts.items():
            props.append((f"hil.artifact.{name.replace(' ', '_')}", str(path)))
        for name, value in result.metrics.items():
            props.append((f"hil.metric.{name}", value))


def assert_spec(finding: Finding) -> None:
    """Fail the test with the finding's message (spec item, expected, seen, artifacts), or
    skip it when the item cannot be judged on this program (and say why, with evidence)."""
    if finding.inapplicable is not None:
        pytest.skip(f"{NOT_APPLICABLE}: {finding.inapplicable}")
    if not finding.ok:
        pytest.fail(finding.message(), pytrace=False)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Record each HIL test's spec item (from its ``s<n>_`` or ``r<n>_`` name) for reports."""
    for item in items:
        spec_item = item_of_test(item.name)
        if spec_item and item.get_closest_marker("hil"):
            item.user_properties.append(("hil.spec_item", spec_item))


class _ProfileRigs:
    """Extra emulated rigs, one per firmware profile, for S12 (started on demand)."""

    def __init__(self, config: pytest.Config, session: _SessionRig) -> None:
        self.config = config
        self.session = session
        self.rigs: dict[str, Rig] = {}

    def get(self, profile: str) -> Rig:
        main = self.session.get()
        not_targeted = main.program.manifest.not_targeted(profile)
        if not_targeted is not None:
            pytest.skip(f"{NOT_APPLICABLE}: {not_targeted}")
        if not main.target.factory.runs_profiles:
            if profile != self.session_profile:
                pytest.skip(f"a real board runs the firmware it was flashed with; flash a "
                            f"{profile} image with --hil-firmware to check that generation")
            return main
        if profile == self.session_profile:
            return main
        if profile not in self.rigs:
            options = target_options(self.config, profile=profile)
            folder = _per_worker(self.config, f"session-{profile}")
            options.workdir = options.workdir.parent / folder
            runs = options.workdir.parent / f"runs-{profile}"
            try:
                self.rigs[profile] = Rig.open(options, main.program, runs,
                                              session_dir=_session_dir(self.config, runs))
            except HarnessError as exc:
                shutil.rmtree(options.workdir, ignore_errors=True)  # nothing worth keeping
                pytest.skip(f"firmware profile {profile} unavailable: {exc}")
        return self.rigs[profile]

    @property
    def session_profile(self) -> str:
        return self.session.get().target.options.profile

    def close(self) -> None:
        for rig in self.rigs.values():
            rig.close()


@pytest.fixture(scope="session")
def profile_rigs(request: pytest.FixtureRequest,
                 hil_session: _SessionRig) -> Iterator[_ProfileRigs]:
    rigs = _ProfileRigs(request.config, hil_session)
    yield rigs
    rigs.close()


def known_profiles() -> list[str]:
    """Firmware profiles the emulator knows (for parametrizing S12)."""
    from harness.emulator.profiles import list_profiles

    return list_profiles()
