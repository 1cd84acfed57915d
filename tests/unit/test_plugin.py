"""The pytest plugin as a user meets it (through pytester): options, markers, and bad
input that must end in one clear line, never a traceback of harness internals."""

from __future__ import annotations

import os
import pty
import threading
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]

HIL_TEST = """
import pytest
pytestmark = pytest.mark.hil

def test_s1_needs_the_rig(rig):
    pass
"""


def _one_line_failure(result: pytest.RunResult, needle: str) -> None:
    text = result.stdout.str() + result.stderr.str()
    assert needle in text, text
    assert "Traceback (most recent call last)" not in text, text
    assert "harness/" not in text.split(needle)[0].splitlines()[-1], text


def test_markers_are_registered_and_strict(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("import pytest\n@pytest.mark.hill\ndef test_typo():\n    pass\n")
    result = pytester.runpytest("--strict-markers")
    result.assert_outcomes(errors=1)
    assert "'hill' not found in `markers`" in result.stdout.str()
    assert "hil: a hardware-in-the-loop spec check" in pytester.runpytest(
        "--markers").stdout.str()


def test_options_are_listed_with_ini_and_environment_names(pytester: pytest.Pytester) -> None:
    help_text = pytester.runpytest("--help").stdout.str()
    for option, env in (("--hil-device", "HIL_DEVICE"), ("--hil-broker", "HIL_BROKER"),
                        ("--hil-device-src", "HIL_DEVICE_SRC"), ("--hil-history", "HIL_HISTORY")):
        assert option in help_text
        assert env in help_text


def test_bad_device_value_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(HIL_TEST)
    result = pytester.runpytest("--hil-device", "rfc2217://host-without-port")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    _one_line_failure(result, "--hil-device 'rfc2217://host-without-port' is not understood")


def test_firmware_with_the_emulated_board_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(HIL_TEST)
    image = pytester.path / "fw.bin"
    image.write_bytes(b"\xe9" + bytes(63))
    result = pytester.runpytest(f"--hil-firmware={image}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    _one_line_failure(result, f"--hil-firmware {image} cannot apply to --hil-device emu")


def test_missing_firmware_file_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(HIL_TEST)
    result = pytester.runpytest("--hil-firmware=/nope.bin", "--hil-device=rfc2217://h:1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    _one_line_failure(result, "--hil-firmware /nope.bin does not exist")


def test_environment_variable_sets_the_option(pytester: pytest.Pytester,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIL_DEVICE", "rfc2217://nope")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_a_malformed_environment_value_is_a_usage_error(pytester: pytest.Pytester,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIL_BOARD_WAIT", "soon")
    pytester.makepyfile(HIL_TEST)
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    _one_line_failure(result, "HIL_BOARD_WAIT='soon' is not a number of seconds")


def test_a_bare_labgrid_spec_without_a_place_says_to_set_lg_place(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LG_PLACE", raising=False)
    monkeypatch.setenv("HIL_WIFI_SSID", "lab")
    monkeypatch.setenv("HIL_WIFI_PASSWORD", "secret-wifi")
    pytester.makepyfile(HIL_TEST)
    result = pytester.runpytest("--hil-device=labgrid", f"--hil-device-src={REPO / 'device_src'}",
                                f"--hil-results={pytester.path / 'res'}")
    result.assert_outcomes(errors=1)
    _one_line_failure(result, "--hil-device 'labgrid' names no place")
    assert "set LG_PLACE" in result.stdout.str()


def test_device_src_without_main_py_fails_once_with_one_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a=HIL_TEST, test_b=HIL_TEST.replace("s1_", "s2_"))
    empty = pytester.mkdir("empty_program")
    result = pytester.runpytest("--hil-device-src", str(empty),
                                f"--hil-results={pytester.path / 'res'}")
    result.assert_outcomes(errors=1, skipped=1)  # set-up is not retried for every test
    _one_line_failure(result, f"device program folder {empty} has no main.py")


def test_missing_serial_port_fails_with_one_line(pytester: pytest.Pytester,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIL_WIFI_SSID", "lab")
    monkeypatch.setenv("HIL_WIFI_PASSWORD", "secret-wifi")
    pytester.makepyfile(HIL_TEST)
    result = pytester.runpytest("--hil-device=/dev/ttyUSB_does_not_exist",
                                f"--hil-device-src={REPO / 'device_src'}",
                                f"--hil-results={pytester.path / 'res'}")
    result.assert_outcomes(errors=1)
    _one_line_failure(result, "/dev/ttyUSB_does_not_exist")
    assert "secret-wifi" not in result.stdout.str()


def test_real_board_without_wifi_settings_says_which_variables(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HIL_WIFI_SSID", raising=False)
    monkeypatch.delenv("HIL_WIFI_PASSWORD", raising=False)
    pytester.makepyfile(HIL_TEST)
    result = pytester.runpytest("--hil-device=rfc2217://127.0.0.1:9",
                                f"--hil-device-src={REPO / 'device_src'}",
                                f"--hil-results={pytester.path / 'res'}")
    _one_line_failure(result, "set HIL_WIFI_SSID and HIL_WIFI_PASSWORD")


@pytest.fixture
def fake_port() -> Iterator[tuple[str, list[bytes], list[float]]]:
    """A pty whose far end prints whatever the test queues, ignoring input: a device that
    is not running MicroPython. Also yields when (monotonic) the harness sent it bytes."""
    master, slave = pty.openpty()
    tty.setraw(slave)
    outputs: list[bytes] = []
    heard: list[float] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                os.read(master, 1024)  # whatever the harness sends
            except OSError:
                return
            heard.append(time.monotonic())
            for chunk in outputs:
                os.write(master, chunk)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield os.ttyname(slave), outputs, heard
    stop.set()
    os.close(slave)
    os.close(master)
    thread.join(timeout=2)


@pytest.mark.parametrize(("printed", "needle"), [
    (b"\x00\xff\xfe garbage \x81\x99", "no MicroPython REPL answered"),
    (b"", "it printed nothing"),
    (b"rst:0x1 (POWERON_RESET),boot:0x3 (DOWNLOAD_BOOT(UART0/UART1/SDIO_REI_REO_V2))\r\n"
     b"waiting for download\r\n", "is in its ROM bootloader"),
])
def test_a_port_that_is_not_micropython_is_diagnosed(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
        fake_port: tuple[str, list[bytes], list[float]], printed: bytes, needle: str) -> None:
    port, outputs, heard = fake_port
    outputs.append(printed)
    monkeypatch.setenv("HIL_WIFI_SSID", "lab")
    monkeypatch.setenv("HIL_WIFI_PASSWORD", "secret-wifi")
    pytester.makepyfile(HIL_TEST)
    setup = SetupEnd()
    result = pytester.runpytest(f"--hil-device={port}", f"--hil-results={pytester.path / 'res'}",
                                f"--hil-device-src={REPO / 'device_src'}", "-p", "no:cacheprovider",
                                plugins=[setup])
    result.assert_outcomes(errors=1)
    _one_line_failure(result, needle)
    # Garbage or silence is diagnosed in about 2 s, not the 10 s REPL timeout. Timed from
    # the harness's first byte to the port until the set-up failed, so the session's broker
    # and PKI set-up (CPU-bound: slow on a loaded runner) is not counted.
    assert heard and setup.ended is not None, "the harness never wrote to the port"
    probing = setup.ended - heard[0]
    assert probing < 5, f"took {probing:.1f} s to decide the port is not MicroPython"


class SetupEnd:
    """A pytest plugin noting when (monotonic) the first test's set-up phase ended."""

    ended: float | None = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "setup" and self.ended is None:
            self.ended = time.monotonic()


def test_hil_outcome_carries_spec_item_and_artifacts_in_junit(
        pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile("""
        import pytest
        from harness.checks.connection import check_wifi
        from harness.hil import scenario
        from harness.pytest_plugin import assert_spec
        pytestmark = pytest.mark.hil

        def test_s1_wifi(hil_run):
            assert_spec(check_wifi(hil_run(scenario.DEFAULT_CLIENT_ID).evidence))
    """)
    junit = tmp_path / "junit.xml"
    result = pytester.runpytest("-p", "no:cacheprovider", f"--hil-results={tmp_path / 'res'}",
                                f"--hil-device-src={REPO / 'device_src'}",
                                f"--junitxml={junit}", "-o", "junit_family=xunit1")
    result.assert_outcomes(passed=1)
    xml = junit.read_text()
    assert 'name="hil.spec_item" value="S1"' in xml
    assert 'name="hil.artifact.serial_log"' in xml
    serial_logs = list((tmp_path / "res" / "runs").glob("*/01-default-client-id/serial.log"))
    assert len(serial_logs) == 1
    assert "public" not in serial_logs[0].read_text()
