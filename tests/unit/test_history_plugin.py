"""The ``--hil-history`` pytest plugin, driven through pytester like a user would."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.report.cli import build_report
from harness.report.history import DB_NAME, History, TestRecord
from harness.report.pytest_history import _redacted_command, scrub

pytestmark = pytest.mark.unit

PLUGIN = ["-p", "harness.report.pytest_history"]

# A fake HIL suite: S7 fails when the "defect" environment variable is set, the way a device
# program with a defect would make the echo check fail.
FAKE_SUITE = """
import os
import pytest

CONTEXT = [("hil.backend", "emu"), ("hil.device", "emu"), ("hil.profile", "v1.22"),
           ("hil.broker", "amqtt"), ("hil.transport", "tls"), ("hil.device_rev", "rev-a")]

@pytest.fixture
def hil(record_property, tmp_path_factory):
    for name, value in CONTEXT:
        record_property(name, value)
    return record_property

def test_s2_connect(hil):
    hil("hil.spec_item", "S2")
    hil("hil.metric.connect_ms", 12.5)
    hil("hil.metric.tls_handshake_ms", "310.0")

def test_s7_echo(hil):
    hil("hil.spec_item", "S7")
    hil("hil.artifact.serial_log", "results/s7/serial.log")
    hil("hil.artifact.tap_trace", "results/s7/tap.txt")
    hil("hil.metric.messages_received", 10)
    assert not os.environ.get("DEFECT"), "S7 echo: no Received line for {'msg': 3} within 5 s"
"""

# Stand-ins for the lead plugin's options and its spec-item tagging by test name.
FAKE_HIL_OPTIONS = """
import re

def pytest_addoption(parser):
    group = parser.getgroup("hil")
    for name in ("--hil-device", "--hil-profile", "--hil-broker"):
        try:
            group.addoption(name, dest=name[2:].replace("-", "_"), default=None)
        except ValueError:
            pass  # the real plugin already has it

def pytest_collection_modifyitems(items):
    for item in items:
        match = re.search(r"test_s(\\d+)_", item.name)
        if match:
            item.user_properties.append(("hil.spec_item", "S" + match.group(1)))
"""

OUTCOME_SUITE = """
import pytest

@pytest.fixture
def broken_setup():
    raise RuntimeError("setup broke")

@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError("teardown broke")

def test_pass(): pass
def test_fail(): assert 1 == 2, "one is not two"
def test_setup_error(broken_setup): pass
def test_teardown_error(broken_teardown): pass
def test_fail_and_teardown_error(broken_teardown): assert False
def test_skip(): pytest.skip("no board")
@pytest.mark.xfail(reason="known")
def test_xfail(): assert False
"""


def _outcomes(history_dir: Path) -> dict[str, str]:
    with History.for_reading(history_dir) as history:
        loaded = history.load(10)
    latest = loaded.runs[-1]
    return {r.nodeid.split("::")[-1]: r.outcome for r in loaded.results[latest.run_id]}


def test_each_test_gets_one_outcome_from_its_phases(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_outcomes=OUTCOME_SUITE)
    history = pytester.path / "hist"
    result = pytester.runpytest(*PLUGIN, "--hil-history", str(history))
    result.stdout.fnmatch_lines(["*hil history: recorded 7 results as run #1 in*"])
    assert _outcomes(history) == {
        "test_pass": "passed", "test_fail": "failed", "test_setup_error": "error",
        "test_teardown_error": "error", "test_fail_and_teardown_error": "failed",
        "test_skip": "skipped", "test_xfail": "xfailed",
    }


def test_a_not_applicable_skip_is_recorded_as_such_from_a_test_or_a_fixture(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_na="""
import pytest

@pytest.fixture
def needs_reconnect():
    pytest.skip("not applicable: the program does not say it reconnects")

def test_in_body(): pytest.skip("not applicable: the program has no sni setting")
def test_in_fixture(needs_reconnect): pass
def test_plain_skip(): pytest.skip("no board")
""")
    history = pytester.path / "hist"
    pytester.runpytest(*PLUGIN, "--hil-history", str(history)).assert_outcomes(skipped=3)
    with History.for_reading(history) as h:
        loaded = h.load(5)
    records = {r.nodeid.split("::")[-1]: r for r in loaded.results[loaded.runs[0].run_id]}
    assert records["test_in_body"].message == "not applicable: the program has no sni setting"
    assert {name: r.status for name, r in records.items()} == {
        "test_in_body": "n/a", "test_in_fixture": "n/a", "test_plain_skip": "skipped"}
    # A history recorded with pytest's prefix still reads as not applicable.
    old = TestRecord("t", "skipped", message="Skipped: not applicable: no reconnect")
    assert (old.status, old.first_line) == ("n/a", "not applicable: no reconnect")


def test_a_module_that_fails_to_import_is_recorded_as_an_error(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_broken="import no_such_module_here\ndef test_x(): pass\n",
                        test_fine="def test_ok(): pass\n")
    pytester.runpytest(*PLUGIN, "--hil-history", "hist", "--continue-on-collection-errors")
    assert _outcomes(pytester.path / "hist") == {"test_broken.py": "error", "test_ok": "passed"}


def test_user_properties_become_context_metrics_and_artifacts(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_fake_hil=FAKE_SUITE)
    history = pytester.path / "hist"
    pytester.runpytest(*PLUGIN, "--hil-history", str(history)).assert_outcomes(passed=2)
    with History.for_reading(history) as h:
        loaded = h.load(5)
    records = {r.spec_item: r for r in loaded.results[loaded.runs[0].run_id]}
    s2, s7 = records["S2"], records["S7"]
    assert (s2.backend, s2.profile, s2.broker, s2.transport, s2.device_rev) == (
        "emu", "v1.22", "amqtt", "tls", "rev-a")
    assert s2.metrics == {"connect_ms": 12.5, "tls_handshake_ms": 310.0}
    # Relative artifact paths are anchored at the invocation directory.
    assert s7.artifacts["serial_log"] == str(pytester.path / "results/s7/serial.log")
    assert loaded.runs[0].command.startswith("pytest ")


def test_a_second_run_with_a_defect_shows_a_new_failure_with_its_log_link(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_fake_hil=FAKE_SUITE)
    history = pytester.path / "hist"
    pytester.runpytest(*PLUGIN, "--hil-history", str(history)).assert_outcomes(passed=2)
    monkeypatch.setenv("DEFECT", "1")
    pytester.runpytest(*PLUGIN, "--hil-history", str(history)).assert_outcomes(
        passed=1, failed=1)

    (pytester.path / "results" / "s7").mkdir(parents=True)
    for name in ("serial.log", "tap.txt"):
        (pytester.path / "results" / "s7" / name).write_text("")
    out = pytester.path / "report" / "index.html"
    outcome = build_report(history, out)
    assert outcome.model.regressed
    assert [c.record.spec_item for c in outcome.model.new_failures] == ["S7"]
    html = out.read_text()
    new_failures = html[html.index('id="new-failures"'):html.index("</section>",
                                                                  html.index('id="new-failures"'))]
    assert "S7" in new_failures
    assert 'href="../results/s7/serial.log"' in new_failures
    assert 'href="../results/s7/tap.txt"' in new_failures
    assert "no Received line" in new_failures


def test_env_variable_selects_the_history_dir(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_one="def test_ok(): pass")
    monkeypatch.setenv("HIL_HISTORY", str(pytester.path / "from-env"))
    pytester.runpytest(*PLUGIN).assert_outcomes(passed=1)
    assert (pytester.path / "from-env" / DB_NAME).is_file()


def test_without_a_history_dir_nothing_is_recorded(pytester: pytest.Pytester,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HIL_HISTORY", raising=False)
    pytester.makepyfile(test_one="def test_ok(): pass")
    result = pytester.runpytest(*PLUGIN)
    result.assert_outcomes(passed=1)
    assert "hil history" not in result.stdout.str()
    assert not list(pytester.path.rglob(DB_NAME))


def test_an_xdist_worker_does_not_write(pytester: pytest.Pytester) -> None:
    # The controller receives every worker's reports and records them; a worker never writes.
    pytester.makeconftest(
        "def pytest_configure(config):\n    config.workerinput = {'workerid': 'gw0'}\n"
    )
    pytester.makepyfile(test_one="def test_ok(): pass")
    pytester.runpytest(*PLUGIN, "--hil-history", "hist").assert_outcomes(passed=1)
    assert not (pytester.path / "hist" / DB_NAME).exists()


def test_an_unwritable_history_dir_is_one_usage_error(pytester: pytest.Pytester) -> None:
    (pytester.path / "blocker").write_text("a file, not a directory")
    pytester.makepyfile(test_one="def test_ok(): pass")
    result = pytester.runpytest(*PLUGIN, "--hil-history", "blocker/hist")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if "not writable" in line]
    assert len(errors) == 1 and "blocker/hist" in errors[0]
    assert "Traceback" not in result.stderr.str()


def test_a_corrupt_database_is_one_line_and_does_not_break_the_run(
    pytester: pytest.Pytester,
) -> None:
    (pytester.path / "hist").mkdir()
    (pytester.path / "hist" / DB_NAME).write_bytes(b"garbage" * 1000)
    pytester.makepyfile(test_one="def test_ok(): pass")
    result = pytester.runpytest(*PLUGIN, "--hil-history", "hist")
    result.assert_outcomes(passed=1)
    assert result.ret == 0
    lines = [line for line in result.stdout.lines if "hil history" in line]
    assert len(lines) == 1
    assert "NOT recorded" in lines[0] and "corrupt" in lines[0]


def test_secret_option_values_never_reach_the_recorded_command() -> None:
    command = _redacted_command(
        ("-m", "hil", "--hil-broker-password", "hunter2", "--wifi-psk=s3cr3t", "--hil-profile",
         "v1.22")
    )
    assert "hunter2" not in command and "s3cr3t" not in command
    assert "--hil-broker-password '***'" in command or "--hil-broker-password ***" in command
    assert "--hil-profile v1.22" in command


def test_secrets_in_urls_and_secret_env_values_are_scrubbed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HIL_WIFI_PASSWORD", "wifi-pass-123")
    text = scrub("connect to mqtts://bob:s3cret@broker:8883 failed; psk wifi-pass-123 rejected")
    assert "s3cret" not in text and "wifi-pass-123" not in text
    assert "mqtts://bob:***@broker:8883" in text


def test_a_failure_message_with_a_secret_is_stored_scrubbed(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HIL_BROKER_PASSWORD", "hunter2-secret")
    pytester.makepyfile(test_one=(
        "import os\n"
        "def test_auth():\n"
        "    assert False, 'rejected password ' + os.environ['HIL_BROKER_PASSWORD']\n"
    ))
    pytester.runpytest(*PLUGIN, "--hil-history", "hist").assert_outcomes(failed=1)
    with History.for_reading(pytester.path / "hist") as history:
        loaded = history.load(1)
    [record] = loaded.results[loaded.runs[0].run_id]
    assert "rejected password ***" in record.message
    assert "hunter2-secret" not in record.message


def test_a_hil_test_that_fails_before_recording_context_lands_in_the_session_cell(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(FAKE_HIL_OPTIONS)
    pytester.makepyfile(test_one=(
        "import pytest\n"
        "@pytest.fixture\n"
        "def rig():\n"
        "    raise RuntimeError('broker did not start')\n"
        "def test_s5_subscribe(record_property, rig):\n"
        "    pass\n"
        "def test_unit_thing(): pass\n"
    ))
    pytester.runpytest(*PLUGIN, "--hil-history", "hist", "--hil-device", "emu",
                       "--hil-profile", "v1.24", "--hil-broker", "mqtts://u:p@h:8883",
                       ).assert_outcomes(errors=1, passed=1)
    with History.for_reading(pytester.path / "hist") as history:
        loaded = history.load(1)
    records = {r.nodeid.split("::")[-1]: r for r in loaded.results[loaded.runs[0].run_id]}
    assert records["test_s5_subscribe"].cell == "emu/v1.24/mqtts"
    assert records["test_s5_subscribe"].outcome == "error"
    assert records["test_unit_thing"].cell == ""  # no spec item: not a HIL test


def test_under_xdist_the_controller_records_every_workers_tests_once(
    pytester: pytest.Pytester,
) -> None:
    pytest.importorskip("xdist")  # a test dependency (pyproject [test] extra)
    pytester.makepyfile(test_many=(
        "import pytest\n"
        "@pytest.mark.parametrize('n', range(12))\n"
        "def test_s6_case(n, record_property):\n"
        "    record_property('hil.spec_item', 'S6')\n"
        "    record_property('hil.metric.connect_ms', float(n))\n"
        "    assert n != 5\n"
    ))
    result = pytester.runpytest_subprocess(*PLUGIN, "-n", "3", "--hil-history", "hist")
    result.assert_outcomes(passed=11, failed=1)
    with History.for_reading(pytester.path / "hist") as history:
        loaded = history.load(5)
    assert len(loaded.runs) == 1  # one run, not one per worker
    records = loaded.results[loaded.runs[0].run_id]
    assert len(records) == 12 and len({r.nodeid for r in records}) == 12
    assert sorted(r.metrics["connect_ms"] for r in records) == [float(n) for n in range(12)]
    assert [r.nodeid.split("[")[-1] for r in records if r.outcome == "failed"] == ["5]"]
