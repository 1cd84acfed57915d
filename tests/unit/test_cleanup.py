"""H8: no orphan processes after a HIL run that ends by Ctrl-C or by a timeout.

The suite runs in a subprocess whose environment carries a unique tag; every process it
starts (emulated board supervisor, MicroPython interpreter, mosquitto) inherits the tag,
so after the run ends we can find any that survived by scanning /proc."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from harness import lifetime
from harness.deadline import Deadline

pytestmark = [
    pytest.mark.unit,
    pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc"),
]
REPO = Path(__file__).resolve().parents[2]


def tagged_processes(tag: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if tag.encode() in (entry / "environ").read_bytes():
                found.append(f"{entry.name}: {(entry / 'cmdline').read_bytes()!r}")
        except OSError:
            continue
    return found


def start_suite(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    tag = f"HIL_CLEANUP_TAG={uuid.uuid4().hex}"
    env = {**os.environ, "HIL_CLEANUP_TAG": tag.split("=")[1]}
    process = lifetime.spawn(
        [sys.executable, "-m", "pytest", str(REPO / "tests" / "hil" / "test_messaging.py"),
         "-m", "hil", "-p", "no:cacheprovider", f"--hil-results={tmp_path}",
         f"--hil-device-src={REPO / 'device_src'}", "--hil-broker=mosquitto", *extra],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return process, tag.split("=")[1]


def wait_for_board(tmp_path: Path, process: subprocess.Popen[bytes]) -> None:
    """Until the device's first scenario run has started (its run folder exists)."""
    Deadline(60, "the HIL run to start a scenario").poll(
        lambda: True if (tmp_path / "runs").is_dir() or process.poll() is not None else None,
        interval=0.05)
    assert process.poll() is None, process.communicate()[0].decode()[-2000:]


@pytest.mark.mosquitto
def test_ctrl_c_mid_run_leaves_no_process_behind(tmp_path: Path) -> None:
    process, tag = start_suite(tmp_path)
    wait_for_board(tmp_path, process)
    assert tagged_processes(tag), "the run started no tagged child processes?"
    process.send_signal(signal.SIGINT)
    output = process.communicate(timeout=60)[0].decode()
    # pytest's own verdict, not a word in its output: the run stopped because of Ctrl-C.
    assert process.returncode == pytest.ExitCode.INTERRUPTED, (
        f"pytest exited {process.returncode}, not interrupted: {output[-2000:]}")
    leftovers = Deadline(10, "children to exit").poll(
        lambda: [] if not tagged_processes(tag) else None, interval=0.1)
    assert leftovers == []


@pytest.mark.mosquitto
@pytest.mark.hil_duration(8)
def test_timeout_mid_run_leaves_no_process_behind(tmp_path: Path) -> None:
    # -x: the session ends at its first timeout; every later test timing out too would
    # prove nothing more (12 s of them).
    process, tag = start_suite(tmp_path, "--timeout=3", "-x")
    output = process.communicate(timeout=180)[0].decode()
    assert "Timeout" in output, output[-2000:]
    leftovers = Deadline(10, "children to exit").poll(
        lambda: [] if not tagged_processes(tag) else None, interval=0.1)
    assert leftovers == []


@pytest.mark.mosquitto
def test_sigterm_to_the_main_job_ends_it_like_ctrl_c(tmp_path: Path) -> None:
    """A CI runner cancelling `./hil run` sends SIGTERM to the main job alone; it passes it
    on, pytest tears down (mosquitto and the board stop) and writes its JUnit XML."""
    tag = uuid.uuid4().hex
    process = lifetime.spawn(
        [sys.executable, "-m", "harness", "run", "--results", str(tmp_path), "--broker",
         "mosquitto"], cwd=REPO, env={**os.environ, "HIL_CLEANUP_TAG": tag},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    wait_for_board(tmp_path, process)
    assert tagged_processes(tag), "the run started no tagged child processes?"
    process.send_signal(signal.SIGTERM)
    ending = Deadline(20, "the main job to end after SIGTERM")
    output = process.communicate(timeout=60)[0].decode()
    assert not ending.expired, "SIGTERM was not passed on: the job waited out its grace period"
    assert process.returncode == 130, output[-2000:]
    assert (tmp_path / "junit.xml").is_file(), output[-2000:]
    leftovers = Deadline(10, "children to exit").poll(
        lambda: [] if not tagged_processes(tag) else None, interval=0.1)
    assert leftovers == []


def test_sigkill_leaves_no_private_folder_with_secrets_behind(tmp_path: Path) -> None:
    """The session's private folder (keys, the flash whose settings.json holds passwords)
    is removed even when the owner is killed outright, with no chance to clean up."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    results = tmp_path / "results"
    process = lifetime.spawn(
        [sys.executable, "-m", "pytest", str(REPO / "tests" / "hil" / "test_messaging.py"),
         "-m", "hil", "-p", "no:cacheprovider", f"--hil-results={results}",
         f"--hil-device-src={REPO / 'device_src'}"],
        cwd=tmp_path, env={**os.environ, "TMPDIR": str(scratch)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    wait_for_board(results, process)
    assert list(scratch.glob("hil-session-*")), "the session made no private folder?"
    process.kill()
    process.wait(timeout=10)
    left = Deadline(10, "the reaper to remove the private folder").poll(
        lambda: [] if not list(scratch.glob("hil-session-*")) else None, interval=0.1)
    assert left == []
