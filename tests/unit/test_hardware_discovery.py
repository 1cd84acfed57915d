"""Finding boards and resolving --hil-device specs; who holds a busy port."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import lifetime
from harness.deadline import Deadline
from harness.errors import PortNotFound
from harness.hardware.discovery import bridge_name, list_boards, port_holder, resolve_port

pytestmark = pytest.mark.unit


@dataclass
class FakePort:
    """The fields of pyserial's ListPortInfo, as list_ports.comports() yields them."""

    device: str
    vid: int | None = None
    pid: int | None = None
    serial_number: str | None = None
    location: str | None = None
    description: str = "n/a"


CP2102 = FakePort("/dev/ttyUSB0", 0x10C4, 0xEA60, "0001", "1-1.2", "CP2102 USB to UART")
CH9102 = FakePort("/dev/ttyACM0", 0x1A86, 0x55D4, "54E1023", "1-1.3", "USB Single Serial")
S3_JTAG = FakePort("/dev/ttyACM1", 0x303A, 0x1001, "F4:12:FA", "3-2", "USB JTAG/serial")
MOUSE_SERIAL = FakePort("/dev/ttyUSB9", 0x067B, 0x2303, "X1", "2-1", "PL2303 (not ESP32)")
BUILTIN_UART = FakePort("/dev/ttyS0")


@pytest.mark.parametrize(("vid", "pid", "name"), [
    (0x10C4, 0xEA60, "Silicon Labs CP210x"),
    (0x1A86, 0x7523, "WCH CH340"),
    (0x1A86, 0x55D4, "WCH CH9102"),
    (0x0403, 0x6001, "FTDI FT232R"),
    (0x303A, 0x1001, "Espressif USB-Serial/JTAG"),
    (0x303A, 0x4001, "Espressif native USB"),
    (0x067B, 0x2303, None),
    (None, None, None),
])
def test_known_esp32_bridges(vid: int | None, pid: int | None, name: str | None) -> None:
    assert bridge_name(vid, pid) == name


def test_list_boards_keeps_only_esp32_bridges() -> None:
    boards = list_boards([MOUSE_SERIAL, CP2102, BUILTIN_UART, S3_JTAG])
    assert [b.device for b in boards] == ["/dev/ttyACM1", "/dev/ttyUSB0"]
    assert boards[0].native_usb_jtag and not boards[1].native_usb_jtag
    assert boards[1].vid_pid == "10c4:ea60"


def test_auto_picks_the_single_board() -> None:
    assert resolve_port("auto", ports=[BUILTIN_UART, CP2102, MOUSE_SERIAL]) == "/dev/ttyUSB0"


def test_auto_with_no_board_says_so() -> None:
    with pytest.raises(PortNotFound, match="no ESP32 board found"):
        resolve_port("auto", ports=[BUILTIN_UART, MOUSE_SERIAL])


def test_auto_with_several_boards_lists_the_choices() -> None:
    with pytest.raises(PortNotFound) as caught:
        resolve_port("auto", ports=[CP2102, CH9102])
    message = str(caught.value)
    assert "2 ESP32 boards found" in message
    assert "serial 0001" in message and "location 1-1.3" in message


def test_pin_a_board_by_serial_number_or_usb_location() -> None:
    ports = [CP2102, CH9102]
    assert resolve_port("54E1023", ports=ports) == "/dev/ttyACM0"
    assert resolve_port("1-1.2", ports=ports) == "/dev/ttyUSB0"
    with pytest.raises(PortNotFound, match="no serial port has the USB serial number"):
        resolve_port("9-9", ports=ports)


def test_urls_pass_through_and_missing_paths_are_refused() -> None:
    assert resolve_port("rfc2217://lab-host:4000", ports=[]) == "rfc2217://lab-host:4000"
    with pytest.raises(PortNotFound, match="does not exist"):
        resolve_port("/dev/ttyUSB77", ports=[])


def test_port_holder_names_the_process_holding_a_port(tmp_path: Path) -> None:
    controller, device = pty.openpty()
    path = os.ttyname(device)
    os.close(device)
    ready = tmp_path / "ready"
    holder = lifetime.spawn(
        [sys.executable, "-c",
         "import sys,time,pathlib; f=open(sys.argv[1],'rb'); "
         "pathlib.Path(sys.argv[2]).touch(); time.sleep(60)", path, str(ready)])
    try:
        Deadline(20, "the holder process to open the pty").poll(
            lambda: True if ready.exists() else None)
        assert (port_holder(path) or "").startswith(f"pid {holder.pid} (python")
    finally:
        holder.kill()
        holder.wait()
        os.close(controller)
    assert port_holder(path) is None


def test_lsof_fallback_output_is_read_where_proc_is_missing() -> None:
    from harness.hardware.discovery import _ask_lsof

    calls: list[list[str]] = []

    def fake_lsof(argv: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, stdout="p4242\ncminicom\nf3\n", stderr="")

    assert _ask_lsof("/dev/cu.usbserial-0001", lsof="/usr/sbin/lsof",
                     run=fake_lsof) == "pid 4242 (minicom)"
    assert calls[0][-1] == "/dev/cu.usbserial-0001"


def test_a_rival_reader_without_a_lock_makes_the_device_refuse_the_port(tmp_path: Path) -> None:
    """`cat PORT` takes no lock; opening anyway would split the board's bytes between two
    readers. The board side of a pty (its master holder) is not a rival."""
    from harness.device.device import Device
    from harness.errors import PortBusy

    controller, device = pty.openpty()  # this process is the "board": it holds the master
    path = os.ttyname(device)
    os.close(device)
    assert port_holder(path) is None  # the board side alone is no rival
    rival = subprocess.Popen(["cat", path], stdout=subprocess.DEVNULL)
    try:
        Deadline(20, "cat to open the pty").poll(
            lambda: True if port_holder(path) else None, interval=0.02)
        with pytest.raises(PortBusy) as caught:
            Device(path, hard_reset=lambda _line: None).open()
        assert str(caught.value).startswith(f"serial port {path} is busy: held by pid "
                                            f"{rival.pid} (cat)")
    finally:
        rival.kill()
        rival.wait()
        os.close(controller)


def test_the_process_serving_a_pty_master_is_not_a_rival(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    board = subprocess.Popen(
        [sys.executable, "-c",
         "import os,sys,time,pathlib; m,s=os.openpty(); "
         "pathlib.Path(sys.argv[1]).write_text(os.ttyname(s)); time.sleep(60)", str(ready)])
    try:
        path = Deadline(20, "the board process to open its pty").poll(
            lambda: ready.read_text() if ready.exists() and ready.read_text() else None)
        assert port_holder(path) is None  # it holds master and slave: it is the board
    finally:
        board.kill()
        board.wait()
