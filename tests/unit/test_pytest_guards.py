"""The plugin's guards around pytest itself: settings that a space-form path option would
silently drop, and SIGTERM ending a run like Ctrl-C (teardown runs, JUnit is written)."""

from __future__ import annotations

import itertools
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness.deadline import Deadline
from harness.pytest_guards import hijacking_value

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]
PATH_OPTIONS = ("--hil-device", "--hil-results", "--hil-history", "--hil-device-src",
                "--hil-firmware", "--hil-micropython-lib")

TIMEOUT_PROBE = """
def test_probe(pytestconfig):
    print("TIMEOUT=" + str(pytestconfig.getini("timeout")))
"""


@pytest.fixture
def elsewhere(pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with settings, and a results folder outside it (as CI often passes)."""
    pytester.makepyprojecttoml("[tool.pytest.ini_options]\ntimeout = 77\n")
    pytester.makepyfile(TIMEOUT_PROBE)
    return tmp_path_factory.mktemp("results-outside-the-project")


def test_space_form_path_option_that_drops_the_ini_file_is_a_usage_error(
        pytester: pytest.Pytester, elsewhere: Path) -> None:
    result = pytester.runpytest_subprocess("--hil-results", str(elsewhere), "-s")
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    text = result.stderr.str()
    assert f"write --hil-results={elsewhere} instead" in text, text
    assert "pyproject.toml" in text
    assert "Traceback" not in text


def test_equals_form_keeps_the_project_settings(pytester: pytest.Pytester,
                                                elsewhere: Path) -> None:
    result = pytester.runpytest_subprocess(f"--hil-results={elsewhere}", "-s")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    assert "TIMEOUT=77" in result.stdout.str()


def test_an_explicit_config_file_is_respected(pytester: pytest.Pytester,
                                              elsewhere: Path) -> None:
    result = pytester.runpytest_subprocess("-c", str(pytester.path / "pyproject.toml"),
                                           "--hil-results", str(elsewhere), "-s")
    assert result.ret == 0, result.stderr.str()
    assert "TIMEOUT=77" in result.stdout.str()


def test_readme_commands_keep_the_project_settings() -> None:
    """Every pytest/./hil command README shows passes path values in the `=` form, the one
    that does not depend on pytest's rootdir detection."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    commands = [line for line in re.findall(r"(?:\bpytest|\./hil test) -[^`\n]*", readme)
                if "--hil-" in line]
    assert commands, "README shows no pytest command with --hil- options"
    for command in commands:
        text = command.split(" #")[0].replace("\\", " ")  # a shell comment is no option
        try:
            words = shlex.split(text)
        except ValueError:  # prose quoting around an inline command
            words = text.split()
        for flag, value in itertools.pairwise(words):
            assert not (flag in PATH_OPTIONS and not value.startswith("-")), \
                f"README command passes {flag} {value} in the space form: {command}"


def test_hijacking_value_finds_only_existing_paths(tmp_path: Path) -> None:
    assert hijacking_value(["--hil-results", str(tmp_path)]) == ("--hil-results", str(tmp_path))
    assert hijacking_value([f"--hil-results={tmp_path}"]) is None
    assert hijacking_value(["--hil-results", str(tmp_path / "absent")]) is None
    assert hijacking_value(["-k", str(tmp_path)]) is None


SLOW_SESSION = """
import time, pytest
from pathlib import Path

@pytest.fixture(scope="session")
def resource():
    Path("started").write_text("yes")
    yield
    Path("torn-down").write_text("yes")

def test_long(resource):
    time.sleep(60)
"""


def test_sigterm_ends_a_run_like_ctrl_c(tmp_path: Path) -> None:
    (tmp_path / "test_slow.py").write_text(SLOW_SESSION)
    (tmp_path / "pyproject.toml").write_text("[tool.pytest.ini_options]\n")
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--junitxml=junit.xml",
         "test_slow.py"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    try:
        Deadline(60, "the test session to start its fixture").poll(
            lambda: True if (tmp_path / "started").exists() else None, interval=0.05)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = output.decode(errors="replace")
    assert (tmp_path / "torn-down").exists(), text
    assert (tmp_path / "junit.xml").exists(), text
    assert "terminated by signal 15" in text, text
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, text
