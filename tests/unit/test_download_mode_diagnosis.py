"""A board sitting in its ROM download mode is recognised by what such a board does — it
answers esptool's SYNC — not only by a banner that scrolled past before we connected."""

from __future__ import annotations

import pytest
import serial

from harness.deadline import Deadline
from harness.device.device import Device
from harness.emulator.fixtures import BoardFactory, board_factory
from harness.errors import BootloaderStuck
from harness.hardware.reset import enter_bootloader, hard_reset

pytestmark = [pytest.mark.unit,
              pytest.mark.filterwarnings("ignore::DeprecationWarning:serial.rfc2217")]
__all__ = ["board_factory"]


def _read_until(port: serial.SerialBase, marker: bytes) -> None:
    seen = bytearray()
    deadline = Deadline(15, f"{marker!r} from the board")
    while marker not in seen:
        if deadline.expired:
            raise deadline.fail(repr(bytes(seen[-200:])))
        seen += port.read(max(1, port.in_waiting))


def test_a_board_left_in_download_mode_is_diagnosed_as_such(board_factory: BoardFactory) -> None:
    board = board_factory(rfc2217_port=0)
    assert board.rfc2217_url is not None
    first = serial.serial_for_url(board.rfc2217_url, timeout=0.05)
    try:
        enter_bootloader(first)  # as a flashing tool that died half way leaves it
        _read_until(first, b"waiting for download")
    finally:
        first.close()
    device = Deadline(10, "the port to be free again").poll(
        lambda: Device(board.rfc2217_url or "", hard_reset=hard_reset))
    device.open()
    try:
        deadline = Deadline(8, "the diagnosis")
        with pytest.raises(BootloaderStuck) as caught:
            device.exec("print(1)")
        assert not deadline.expired, "the diagnosis took the whole REPL timeout"
    finally:
        device.close()
    text = str(caught.value)
    assert "\n" not in text
    assert "in its ROM bootloader (download mode)" in text
    assert "answers esptool's SYNC" in text


def test_a_running_micropython_is_not_mistaken_for_the_rom(board_factory: BoardFactory) -> None:
    board = board_factory(rfc2217_port=0)
    assert board.rfc2217_url is not None
    device = Device(board.rfc2217_url, hard_reset=hard_reset).open()
    try:
        assert device.exec("print(6 * 7)").strip() == "42"
    finally:
        device.close()
