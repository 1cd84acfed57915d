"""DTR/RTS reset sequences, judged by what the ESP32 auto-reset circuit does with them."""

from __future__ import annotations

import os
import pty
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from harness.deadline import Deadline
from harness.emulator.rfc2217 import Rfc2217Server
from harness.emulator.rom_board import RomBoard
from harness.hardware.reset import (
    ModemLinesUnsupported,
    ResetMethod,
    enter_bootloader,
    hard_reset,
)

pytestmark = [
    pytest.mark.unit,
    # pyserial 3.5's RFC2217 client thread uses setDaemon()/setName(); not ours to fix
    pytest.mark.filterwarnings("ignore::DeprecationWarning:serial.rfc2217"),
]


class RecordingLine:
    """A serial port that records each (DTR, RTS) state the circuit sees."""

    def __init__(self, name: str = "COM7") -> None:
        self.name = name
        self.is_open = True
        self._dtr = self._rts = True  # pyserial's state right after open
        self.states: list[tuple[bool, bool]] = []
        self.times: list[float] = []

    @property
    def dtr(self) -> bool:
        return self._dtr

    @dtr.setter
    def dtr(self, value: bool) -> None:
        self._dtr = value
        self._record()

    @property
    def rts(self) -> bool:
        return self._rts

    @rts.setter
    def rts(self, value: bool) -> None:
        self._rts = value
        self._record()

    def _record(self) -> None:
        self.states.append((self._dtr, self._rts))
        self.times.append(time.monotonic())


def en_low(state: tuple[bool, bool]) -> bool:
    dtr, rts = state
    return rts and not dtr


def io0_low(state: tuple[bool, bool]) -> bool:
    dtr, rts = state
    return dtr and not rts


EN_MIN_LOW_S = 0.005  # shorter EN dips (between two line writes) are filtered by the RC


def boots(line: RecordingLine) -> list[str]:
    """What the classic circuit boots at each EN rise after a real EN-low pulse. The RC
    delay on EN outlasts the gap between the two line writes of one step, so the chip
    samples IO0 one write later."""
    states, times = line.states, line.times
    result = []
    low_since: float | None = None
    for index, state in enumerate(states):
        if en_low(state):
            low_since = times[index] if low_since is None else low_since
            continue
        if low_since is not None and times[index] - low_since >= EN_MIN_LOW_S:
            after = states[index + 1] if index + 1 < len(states) else state
            sample = state if en_low(after) else after
            result.append("download" if io0_low(sample) else "flash")
        low_since = None
    return result


def test_hard_reset_pulses_en_with_io0_high() -> None:
    line = RecordingLine()
    hard_reset(line)
    assert (False, True) in line.states  # EN held low
    assert line.states[-1] == (False, False)  # released, run
    assert boots(line) == ["flash"]


def test_hard_reset_works_even_when_dtr_was_asserted() -> None:
    # (DTR on, RTS on) is "run" on the transistor circuit; RTS alone must not be relied on
    line = RecordingLine()
    line._dtr = line._rts = True
    hard_reset(line)
    assert boots(line) == ["flash"]


def test_classic_bootloader_entry_releases_en_while_io0_is_low() -> None:
    line = RecordingLine()
    enter_bootloader(line, method=ResetMethod.CLASSIC)
    assert boots(line) == ["download"]
    assert line.states[-1] == (False, False)  # IO0 released afterwards


def test_usb_jtag_sequence_follows_esptool_order() -> None:
    line = RecordingLine()
    enter_bootloader(line, usb_jtag=True)
    # idle, IO0 low, reset (entered through (on, on), never (off, off)), release
    assert line.states[:4] == [(False, True), (False, False), (True, False), (True, False)]
    assert line.states[4:6] == [(True, True), (False, True)]
    assert line.states[-1] == (False, False)


def test_a_socket_port_cannot_reset_and_says_so() -> None:
    line = RecordingLine("socket://127.0.0.1:9")
    with pytest.raises(ModemLinesUnsupported, match="raw TCP socket without DTR/RTS"):
        hard_reset(line)
    assert line.states == []


def test_a_pty_without_modem_lines_gives_one_clear_line() -> None:
    controller, device = pty.openpty()
    try:
        line = serial.Serial(os.ttyname(device), timeout=0.1)
        try:
            with pytest.raises(ModemLinesUnsupported, match="cannot drive DTR/RTS"):
                enter_bootloader(line)  # local port: the one-ioctl "tight" sequence
        finally:
            line.close()
    finally:
        os.close(device)
        os.close(controller)


@pytest.fixture
def remote_board(tmp_path: Path) -> Iterator[tuple[RomBoard, str]]:
    board = RomBoard(tmp_path)
    with Rfc2217Server(board) as server:
        yield board, server.url


def test_over_rfc2217_hard_reset_boots_flash_and_bootloader_entry_downloads(
    remote_board: tuple[RomBoard, str],
) -> None:
    board, url = remote_board
    line = serial.serial_for_url(url, timeout=0.1)
    try:
        hard_reset(line)
        Deadline(10, "a flash boot").poll(lambda: board.boots or None,
                                          seen=lambda: str(board.boots))
        assert board.boots == ["flash"]
        enter_bootloader(line)
        Deadline(10, "a second boot").poll(lambda: len(board.boots) == 2 or None,
                                           seen=lambda: str(board.boots))
        assert board.boots == ["flash", "download"]
        seen = b""

        def banner() -> bool | None:
            nonlocal seen
            seen += line.read(256)
            return True if b"waiting for download" in seen else None

        Deadline(10, "the ROM download banner").poll(banner, seen=lambda: repr(seen))
    finally:
        line.close()
