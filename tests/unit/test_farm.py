"""A labgrid farm of emulated boards on loopback (real labgrid-coordinator and
labgrid-exporter): the HIL suite acquires, runs and releases places, waits under
contention without sharing, ends cleanly when a board disappears, releases on Ctrl-C, and
says in one line when the coordinator is down."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("labgrid", reason="labgrid is not installed (pip install '.[farm]')")

from harness import lifetime
from harness.broker.base import pick_free_port
from harness.device.backends.labgrid_place import (
    LabgridClient,
    parse_filters,
)
from harness.errors import ConfigError
from harness.farm import Farm

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
ENV_DROPPED = ("HIL_DEVICE", "HIL_BROKER", "HIL_PROFILE", "HIL_DEVICE_SRC", "HIL_RESULTS",
               "HIL_HISTORY", "PYTEST_ADDOPTS", "LG_PLACE", "LG_TOKEN", "LG_ENV")
WIFI = {"HIL_WIFI_SSID": "hil-ap", "HIL_WIFI_PASSWORD": "hil-password"}
# Four scenario runs, so up to four workers each hold a unit of work.
# Four plain-MQTT scenario runs: over TLS a board on the real-board path sets its clock
# from NTP on port 123, which only one of the concurrent sessions here can serve.
FOUR_RUNS = "s1_ or s2_default or s11_ or r5_"


def _command(device: str, results: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "tests/hil", "-m", "hil", "-q",
            "-p", "no:cacheprovider", "--hil-device", device, "--hil-results", str(results),
            "--hil-broker-host", "127.0.0.1", "--hil-broker-name", "broker.test", *args]


def _env(coordinator: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_DROPPED}
    return {**env, **WIFI, "LG_COORDINATOR": coordinator, "HIL_BOARD_WAIT": "120"}


def _run(farm_address: str, device: str, results: Path, *args: str,
         timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_command(device, results, *args), cwd=REPO, env=_env(farm_address),
                          capture_output=True, text=True, timeout=timeout, check=False)


def _idle(address: str) -> list[str]:
    """Problems left at the coordinator: acquired places and open reservations."""
    with LabgridClient(address) as client:
        client.sync()
        left = [f"{p.name} acquired by {p.acquired}" for p in client.session.places.values()
                if p.acquired]
        left += [f"{p.name} reserved" for p in client.session.places.values()
                 if p.reservation]
    return left


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    with Farm(tmp_path_factory.mktemp("farm"), boards=2) as started:
        yield started


def test_filters_from_the_device_spec() -> None:
    assert parse_filters("labgrid:esp32-emu-1") == {"name": "esp32-emu-1"}
    assert parse_filters("labgrid:board=esp32,lab=b2") == {"board": "esp32", "lab": "b2"}
    assert parse_filters("labgrid", "bench-3") == {"name": "bench-3"}  # LG_PLACE's place
    assert parse_filters("labgrid:esp32-emu-2", "bench-3") == {"name": "esp32-emu-2"}
    with pytest.raises(ConfigError, match=r"names no place.*LG_PLACE"):
        parse_filters("labgrid")
    with pytest.raises(ConfigError, match="is not a tag filter"):
        parse_filters("labgrid:Board=esp32")


@pytest.mark.hil_duration(15)
def test_a_session_acquires_runs_and_releases_a_place(farm: Farm, tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    done = _run(farm.address, "labgrid:esp32-emu-1", tmp_path / "results",
                "-k", "s9_tls_connects or s11_", "--junitxml", str(junit),
                "-o", "junit_family=xunit1")
    assert done.returncode == 0, done.stdout[-3000:]
    devices = {p.get("value") for p in ET.parse(junit).getroot().iter("property")
               if p.get("name") == "hil.device"}
    assert devices == {f"labgrid:esp32-emu-1 ({farm.boards[0].url})"}
    assert _idle(farm.address) == []


@pytest.mark.hil_duration(25)
def test_more_workers_than_places_wait_and_never_share(farm: Farm, tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    done = _run(farm.address, "labgrid:board=esp32", tmp_path / "results", "-n", "3",
                "-k", FOUR_RUNS, "--junitxml", str(junit), "-o", "junit_family=xunit1")
    # A shared place would fail to acquire (labgrid refuses a second holder) and error.
    assert done.returncode == 0, done.stdout[-3000:]
    assert "4 passed" in done.stdout
    workers = {p.name for p in (tmp_path / "results" / "runs").glob("*/gw*")}
    assert len(workers) == 3  # every worker ran, the third after a place came free
    places = {p.get("value", "").split()[0] for p in ET.parse(junit).getroot().iter("property")
              if p.get("name") == "hil.device"}
    assert places == {"labgrid:esp32-emu-1", "labgrid:esp32-emu-2"}
    assert _idle(farm.address) == []


def test_ctrl_c_releases_the_place(farm: Farm, tmp_path: Path) -> None:
    results = tmp_path / "results"
    # Through lifetime.spawn: the session must see the Ctrl-C even when this test runs with
    # SIGINT ignored (a background job), which a plain Popen child would inherit.
    process = lifetime.spawn(_command("labgrid:esp32-emu-2", results), cwd=REPO,
                             env=_env(farm.address), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for_first_run(results, process)
        os.killpg(process.pid, signal.SIGINT)
        output = process.communicate(timeout=60)[0].decode(errors="replace")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    # pytest's own verdict: the session stopped because of the Ctrl-C (it did not just end).
    assert process.returncode == pytest.ExitCode.INTERRUPTED, output[-2000:]
    assert _idle(farm.address) == []


@pytest.mark.hil_duration(12)
def test_a_board_lost_mid_run_ends_the_session_cleanly(tmp_path: Path) -> None:
    results = tmp_path / "results"
    with Farm(tmp_path / "farm", boards=1) as farm:
        process = subprocess.Popen(_command("labgrid:esp32-emu-1", results), cwd=REPO,
                                   env=_env(farm.address), stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            _wait_for_first_run(results, process)
            farm.lose_board(0)
            started = time.monotonic()
            output, _ = process.communicate(timeout=120)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        assert process.returncode == 1, output[-3000:]
        assert time.monotonic() - started < 60, "the session did not end promptly"
        assert "was lost" in output, output[-3000:]
        assert "device lost earlier in this session" in output, output[-3000:]
        assert "Traceback" not in output
        assert _idle(farm.address) == []


def test_a_coordinator_that_is_down_is_one_line(tmp_path: Path) -> None:
    nobody = f"127.0.0.1:{pick_free_port('127.0.0.1')}"
    started = time.monotonic()
    done = _run(nobody, "labgrid:board=esp32", tmp_path / "results", "-k", "s11_", timeout=60)
    assert done.returncode == 1
    assert time.monotonic() - started < 30
    lines = [line for line in done.stdout.splitlines()
             if f"cannot reach the labgrid coordinator at {nobody}" in line]
    assert lines, done.stdout[-3000:]
    assert "LG_COORDINATOR" in lines[0]
    assert "Traceback" not in done.stdout


def test_the_farm_leaves_no_process_behind(tmp_path: Path) -> None:
    farm = Farm(tmp_path / "farm", boards=1).start()
    processes = list(farm._processes.values())
    assert all(p.poll() is None for p in processes)
    farm.stop()
    assert all(p.poll() is not None for p in processes)


def _wait_for_first_run(results: Path, process: subprocess.Popen[str] | subprocess.Popen[bytes],
                        timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not list(results.glob("runs/*/01-*")):
        assert process.poll() is None, "the session ended before its first run"
        assert time.monotonic() < deadline, "no scenario run started"
        time.sleep(0.1)


def test_a_board_left_with_a_full_heap_is_soft_reset_before_deploying(
        farm: Farm, tmp_path: Path) -> None:
    """A shared board is as the last session left it: a program stopped at the REPL keeps
    its objects. The session starts from a soft reset, or the deploy runs out of memory."""
    from harness.device.device import Device

    board = farm.boards[1]
    with Device(board.url, hard_reset=lambda _line: board.board.hard_reset()) as device:
        # Fill the heap, then give back a little so the REPL itself still works.
        device.exec("hog = []\ntry:\n    while True:\n        hog.append(bytearray(512))\n"
                    "except MemoryError:\n    del hog[-2:]\n")
    done = _run(farm.address, board.url, tmp_path / "results", "-k", "s11_")
    assert done.returncode == 0, done.stdout[-3000:]
