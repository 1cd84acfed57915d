"""Device backends: the registry picks a backend by what claims the spec, and the board pool
never lets two sessions (or xdist workers) hold one board."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.device import backends
from harness.device.backends import BoardRequest, factory_for, register_backend
from harness.device.backends.pool import BoardLock, claim_board
from harness.errors import ConfigError, PortBusy

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("spec", "name"), [
    ("emu", "emu"), ("/dev/ttyUSB0", "serial"), ("auto", "serial"), ("A50285BI", "serial"),
    ("/dev/ttyUSB0,/dev/ttyUSB1", "serial"), ("rfc2217://lab-pi:4000", "rfc2217"),
    ("rfc2217://a:1,rfc2217://b:2", "rfc2217"),
])
def test_each_spec_is_claimed_by_its_backend(spec: str, name: str) -> None:
    assert factory_for(spec).name == name


@pytest.mark.parametrize("spec", ["rfc2217://host-without-port", "rfc2217://a:1,nonsense://",
                                  "bad spec with spaces"])
def test_a_malformed_spec_is_one_line_naming_the_forms(spec: str) -> None:
    with pytest.raises(ConfigError) as caught:
        factory_for(spec)
    assert "is not understood" in str(caught.value)
    assert "rfc2217://host:port" in str(caught.value)
    assert "\n" not in str(caught.value)


class _FakeFactory:
    name = "fake"
    forms = "fake:NAME"
    runs_profiles = False

    def claims(self, spec: str) -> bool:
        return spec.startswith("fake:")

    def check(self, spec: str) -> None:
        return None

    def broker_bind(self, broker_host: str | None) -> str:
        return "127.0.0.1"

    def server_name(self, broker_host: str | None, broker_name: str | None,
                    default: str) -> str:
        return "fake-broker"

    def create(self, request: BoardRequest) -> backends.DeviceBackend:
        raise NotImplementedError


@pytest.fixture
def registry() -> Iterator[None]:
    saved = list(backends.factories())
    yield
    backends._REGISTRY[:] = saved


@pytest.mark.usefixtures("registry")
def test_a_registered_backend_claims_its_specs_before_the_catch_all() -> None:
    register_backend(_FakeFactory())
    assert factory_for("fake:bench-1").name == "fake"
    assert factory_for("/dev/ttyUSB0").name == "serial"  # the catch-all still last
    assert "fake:NAME" in backends.usage()


def test_the_emulated_backend_is_the_only_one_that_plays_the_access_point(
        tmp_path: Path) -> None:
    request = BoardRequest(spec="emu", profile="v1.22", workdir=tmp_path, hosts={},
                           wifi=None, worker="gw3", worker_count=4)
    emu = factory_for("emu").create(request)
    assert emu.controls_wifi and emu.board == "emu:gw3"
    real = factory_for("rfc2217://127.0.0.1:9").create(
        BoardRequest(spec="rfc2217://127.0.0.1:9", profile="v1.22", workdir=tmp_path,
                     hosts={}, wifi=None))
    assert not real.controls_wifi
    with pytest.raises(ConfigError, match="HIL_WIFI_SSID and HIL_WIFI_PASSWORD"), \
            contextlib.ExitStack() as stack:
        real.open(stack)


# --- the board pool ----------------------------------------------------------------------
def test_a_board_lock_is_exclusive_and_leaves_no_file(tmp_path: Path) -> None:
    first, second = BoardLock("/dev/ttyUSB0", tmp_path), BoardLock("/dev/ttyUSB0", tmp_path)
    assert first.try_acquire()
    assert not second.try_acquire()
    assert "pid" in second.holder()
    first.release()
    assert not first.path.exists()
    assert second.try_acquire()
    second.release()
    assert list(tmp_path.iterdir()) == []


def test_workers_get_distinct_boards(tmp_path: Path) -> None:
    boards = ["/dev/ttyUSB0", "/dev/ttyUSB1", "rfc2217://lab:4000"]
    claims = [claim_board(boards, worker_index=i, worker_count=3, wait_s=0, directory=tmp_path)
              for i in range(3)]
    assert sorted(c.board for c in claims) == sorted(boards)
    for claim in claims:
        claim.lock.release()


def test_fewer_boards_than_workers_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(PortBusy) as caught:
        claim_board(["/dev/ttyUSB0"], worker_index=1, worker_count=2, wait_s=0,
                    directory=tmp_path)
    assert "2 pytest-xdist workers but only 1 board(s) (/dev/ttyUSB0); run with -n 1" in str(
        caught.value)


def test_a_board_held_by_another_session_is_waited_for_then_named(tmp_path: Path) -> None:
    held = BoardLock("/dev/ttyUSB0", tmp_path)
    assert held.try_acquire()
    with pytest.raises(PortBusy, match=r"every board is in use .*/dev/ttyUSB0 held by pid"):
        claim_board(["/dev/ttyUSB0"], wait_s=0.3, directory=tmp_path)
    held.release()


def test_a_killed_holder_frees_its_board(tmp_path: Path) -> None:
    """The kernel drops an flock when its process dies, whatever kills it."""
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from harness.device.backends.pool import BoardLock
        lock = BoardLock("/dev/ttyUSB7", Path({str(tmp_path)!r}))
        assert lock.try_acquire()
        print("held", flush=True)
        time.sleep(60)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        assert not BoardLock("/dev/ttyUSB7", tmp_path).try_acquire()
        child.kill()
        child.wait(timeout=10)
        claim = claim_board(["/dev/ttyUSB7"], wait_s=2, directory=tmp_path)
        claim.lock.release()
    finally:
        child.kill()
        child.wait(timeout=10)


def test_auto_means_every_esp32_attached(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from harness.device.backends.serial_port import local_candidates
    from harness.hardware import discovery

    ports = [SimpleNamespace(device=f"/dev/ttyUSB{n}", vid=0x10C4, pid=0xEA60,
                             serial_number=f"SN{n}", location=f"1-1.{n}", description="CP2102")
             for n in (1, 0)]
    ports.append(SimpleNamespace(device="/dev/ttyS0", vid=None, pid=None, serial_number=None,
                                 location=None, description="UART"))
    monkeypatch.setattr(discovery, "system_ports", lambda: ports)
    assert local_candidates("auto") == ["/dev/ttyUSB0", "/dev/ttyUSB1"]
    assert local_candidates("SN1,auto") == ["/dev/ttyUSB1", "/dev/ttyUSB0"]  # no duplicates
