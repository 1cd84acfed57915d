"""What a brand-new machine sees: optional tools that are missing make their tests skip
with the install hint, never error."""

from __future__ import annotations

import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness import lifetime
from harness.broker.mosquitto_broker import INSTALL_HINT

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]


def path_without(folder: Path, hidden_prefix: str) -> str:
    """A one-folder PATH with every program of the current PATH except those whose name
    starts with ``hidden_prefix`` (symlinks, so the rest of the machine stays usable)."""
    folder.mkdir(parents=True)
    for entry in os.environ.get("PATH", os.defpath).split(os.pathsep):
        if not entry or not Path(entry).is_dir():
            continue
        for program in Path(entry).iterdir():
            target = folder / program.name
            if program.name.startswith(hidden_prefix) or target.exists():
                continue
            if program.is_file() and os.access(program, os.X_OK):
                target.symlink_to(program)
    return str(folder)


def test_mosquitto_tests_skip_with_the_install_hint_when_mosquitto_is_hidden(
        tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    env = {**os.environ, "PATH": path_without(tmp_path / "bin", "mosquitto")}
    done = lifetime.run(
        [sys.executable, "-m", "pytest", "-m", "mosquitto", "-p", "no:cacheprovider", "-q",
         f"--junitxml={junit}", f"--basetemp={tmp_path / 'base'}", "tests/unit"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    summary = done.stdout.strip().splitlines()[-1:] or [done.stderr[-400:]]
    assert done.returncode == 0, "\n".join(done.stdout.splitlines()[-30:]) + done.stderr[-2000:]
    # A module skipped as a whole (an optional extra not installed) is no mosquitto test.
    cases = [case for case in ET.parse(junit).getroot().iter("testcase")
             if not any(child.get("message") == "collection skipped" for child in case)]
    outcomes = {f"{case.get('classname')}::{case.get('name')}": [child.tag for child in case]
                for case in cases}
    assert len(outcomes) >= 20, summary  # the rig's tests and every [mosquitto] backend case
    assert "tests.unit.test_device_program::test_reconnect_with_backoff_resumes_the_counter" \
        in outcomes
    assert any(name.endswith("[mosquitto]") for name in outcomes), sorted(outcomes)
    not_skipped = {name: tags for name, tags in outcomes.items() if tags != ["skipped"]}
    assert not_skipped == {}, summary
    reasons = {skipped.get("message", "") for case in cases for skipped in case}
    assert reasons == {f"mosquitto is not installed; {INSTALL_HINT}"}
