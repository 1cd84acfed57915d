"""``python -m harness ports``: list attached ESP32 boards and whether MicroPython answers."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable

from harness.errors import HarnessError
from harness.hardware.discovery import BoardPort, PortInfo, list_boards
from harness.hardware.serial_port import ProbeResult, open_serial, probe_micropython

NO_BOARD = (
    "No ESP32 board found: no serial port with a CP210x, CH340/CH9102, FTDI or Espressif "
    "USB bridge is attached. Plug a board in (with a data cable), or give a remote one as "
    "--hil-device rfc2217://host:port."
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-probe", action="store_true",
                        help="do not talk to the boards (probing interrupts a running main.py)")
    parser.add_argument("--probe-timeout", type=float, default=2.0, metavar="SECONDS",
                        help="how long to wait for each board's REPL (default 2)")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead")


def probe(board: BoardPort, timeout: float) -> str:
    try:
        line = open_serial(board.device)
    except HarnessError as exc:
        return f"not probed: {exc.message}"
    try:
        result: ProbeResult = probe_micropython(line, timeout=timeout)
    finally:
        line.close()
    return result.describe()


def run(args: argparse.Namespace, *, ports: Iterable[PortInfo] | None = None,
        prober: Callable[[BoardPort, float], str] = probe) -> int:
    boards = list_boards(ports)
    if not boards:
        if args.json:
            print("[]")
        print(NO_BOARD, file=sys.stderr if args.json else sys.stdout)
        return 1
    rows = []
    for board in boards:
        status = "not probed" if args.no_probe else prober(board, args.probe_timeout)
        rows.append((board, status))
    if args.json:
        print(json.dumps([
            {"port": b.device, "vid_pid": b.vid_pid, "bridge": b.bridge,
             "serial_number": b.serial_number, "location": b.location, "micropython": status}
            for b, status in rows], indent=2))
        return 0
    headers = ("PORT", "VID:PID", "BRIDGE", "SERIAL", "LOCATION", "MICROPYTHON")
    table = [headers] + [
        (b.device, b.vid_pid, b.bridge, b.serial_number or "-", b.location or "-", status)
        for b, status in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
              .rstrip())
    if len(boards) > 1:
        print(f"\n{len(boards)} boards: pin one with --hil-device <port|serial|location>.")
    return 0
