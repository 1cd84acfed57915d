"""Opening ports (busy, missing) and probing for a MicroPython REPL, on real ptys."""

from __future__ import annotations

import argparse
import json
import os
import pty
import sys
import threading
import tty
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import lifetime
from harness.deadline import Deadline
from harness.errors import PortBusy, PortNotFound
from harness.hardware import cli
from harness.hardware.discovery import BoardPort
from harness.hardware.serial_port import open_serial, probe_micropython

pytestmark = pytest.mark.unit

BANNER = (b"MicroPython v1.22.2 on 2024-02-22; Generic ESP32 module with ESP32\r\n"
          b'Type "help()" for more information.\r\n>>> ')


@pytest.fixture
def fake_repl() -> Iterator[str]:
    """A pty whose far end answers like MicroPython's friendly REPL (Ctrl-B -> banner)."""
    controller, device = pty.openpty()
    tty.setraw(device)
    path = os.ttyname(device)
    stop = threading.Event()

    def answer() -> None:
        while not stop.is_set():
            try:
                data = os.read(controller, 1024)
            except OSError:
                return
            if b"\x03" in data:
                os.write(controller, b"\r\n>>> ")
            if b"\x02" in data:
                os.write(controller, b"\r\n" + BANNER)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    yield path
    stop.set()
    os.close(device)
    os.close(controller)
    thread.join(timeout=5)


def test_probe_reads_the_micropython_version(fake_repl: str) -> None:
    line = open_serial(fake_repl)
    try:
        result = probe_micropython(line, timeout=5)
    finally:
        line.close()
    assert result.answers and result.version == "v1.22.2"
    assert result.describe() == "MicroPython v1.22.2"


def test_probe_of_a_silent_port_says_no_answer() -> None:
    controller, device = pty.openpty()
    try:
        line = open_serial(os.ttyname(device))
        try:
            result = probe_micropython(line, timeout=0.5)
        finally:
            line.close()
        assert not result.answers and result.describe() == "no REPL answer"
    finally:
        os.close(device)
        os.close(controller)


def test_a_busy_port_names_the_process_holding_it(tmp_path: Path) -> None:
    controller, device = pty.openpty()
    path = os.ttyname(device)
    ready = tmp_path / "ready"
    holder = lifetime.spawn([
        sys.executable, "-c",
        "import sys,time,pathlib,serial; s=serial.Serial(sys.argv[1], exclusive=True); "
        "pathlib.Path(sys.argv[2]).touch(); time.sleep(60)", path, str(ready)])
    try:
        Deadline(20, "the other program to open the port").poll(
            lambda: True if ready.exists() else None)
        with pytest.raises(PortBusy, match=rf"serial port {path} is busy: held by pid "
                                           rf"{holder.pid} \(python"):
            open_serial(path)
    finally:
        holder.kill()
        holder.wait()
        os.close(device)
        os.close(controller)


def test_a_missing_port() -> None:
    with pytest.raises(PortNotFound, match="does not exist"):
        open_serial("/dev/ttyUSB-not-here")


def _args(**overrides: object) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.configure(parser)
    args = parser.parse_args([])
    for key, value in overrides.items():
        setattr(args, key, value)
    return args


def test_ports_with_no_board_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run(_args(), ports=[]) == 1
    assert "No ESP32 board found" in capsys.readouterr().out


@dataclass
class FakePort:
    device: str
    vid: int | None
    pid: int | None
    serial_number: str | None
    location: str | None
    description: str = "CP2102 USB to UART Bridge Controller"


def test_ports_lists_boards_with_identity_and_repl_status(
    capsys: pytest.CaptureFixture[str], fake_repl: str
) -> None:
    ports = [FakePort(fake_repl, 0x10C4, 0xEA60, "0001", "1-1.4"),
             FakePort("/dev/ttyS0", None, None, None, None, "builtin UART")]
    assert cli.run(_args(probe_timeout=5.0), ports=ports) == 0
    out = capsys.readouterr().out
    header, row = out.splitlines()[:2]
    assert header.split() == ["PORT", "VID:PID", "BRIDGE", "SERIAL", "LOCATION", "MICROPYTHON"]
    assert row.startswith(fake_repl)
    for cell in ("10c4:ea60", "Silicon Labs CP210x", "0001", "1-1.4", "MicroPython v1.22.2"):
        assert cell in row
    assert "/dev/ttyS0" not in out


def test_ports_json_without_probing(capsys: pytest.CaptureFixture[str]) -> None:
    ports = [FakePort("/dev/ttyACM0", 0x303A, 0x1001, "F4:12", "3-2")]
    seen: list[BoardPort] = []

    def prober(board: BoardPort, timeout: float) -> str:
        seen.append(board)
        return "probed"

    assert cli.run(_args(json=True, no_probe=True), ports=ports, prober=prober) == 0
    [entry] = json.loads(capsys.readouterr().out)
    assert entry == {"port": "/dev/ttyACM0", "vid_pid": "303a:1001",
                     "bridge": "Espressif USB-Serial/JTAG", "serial_number": "F4:12",
                     "location": "3-2", "micropython": "not probed"}
    assert seen == []  # --no-probe never touches the board


def test_ports_command_through_the_cli_dispatcher(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness import __main__ as entry
    from harness.hardware import discovery

    monkeypatch.setattr(discovery, "system_ports", lambda: [])
    assert entry.main(["ports"]) == 1
    assert capsys.readouterr().out.startswith("No ESP32 board found")
