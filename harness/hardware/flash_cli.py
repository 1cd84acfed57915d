"""``python -m harness flash FILE``: put a MicroPython firmware on a board, from a shell."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.hardware.discovery import resolve_port
from harness.hardware.flashing import flash_firmware


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("firmware", type=Path, help="the .bin (merged or app image)")
    parser.add_argument("--port", default="auto",
                        help="auto, a path, a USB serial number/location or rfc2217://host:port")
    parser.add_argument("--erase", action="store_true", help="erase the whole flash first")
    parser.add_argument("--no-stub", action="store_true",
                        help="talk to the ROM loader only (slower; for ROM-only targets)")
    parser.add_argument("--baud", type=int, default=460800)


def run(args: argparse.Namespace) -> int:
    port = resolve_port(args.port)
    result = flash_firmware(port, args.firmware, erase=args.erase, baud=args.baud,
                            use_stub=False if args.no_stub else None, progress=print)
    verb = "already had" if result.skipped else "now runs"
    print(f"{result.port} {verb} {result.image.name}: {result.banner or 'no banner seen'} "
          f"({result.seconds:.1f} s)")
    return 0
