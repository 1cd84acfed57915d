"""``python -m harness emulate``: run one emulated ESP32 until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from harness.emulator.board import DEFAULT_HEAP_KIB, EmulatedBoard
from harness.emulator.profiles import DEFAULT_PROFILE, list_profiles
from harness.emulator.umqtt_source import PackageSources
from harness.env import MICROPYTHON_LIB, HarnessEnv
from harness.errors import ConfigError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--flash", type=Path, required=True, metavar="DIR",
                        help="host directory that becomes the board's flash filesystem")
    parser.add_argument("--profile", default=DEFAULT_PROFILE,
                        help=f"firmware profile ({', '.join(list_profiles())})")
    parser.add_argument("--port-file", type=Path, metavar="FILE",
                        help="write the serial port path here once the board is ready")
    parser.add_argument("--rfc2217", type=int, metavar="PORT",
                        help="also serve the serial line over RFC2217 on 127.0.0.1:PORT")
    parser.add_argument("--erase", action="store_true", help="wipe the flash directory first")
    parser.add_argument("--heap-kib", type=int, default=None,
                        help="the board's Python heap in ESP32 (32-bit) KiB; the 64-bit "
                        f"interpreter gets it scaled (default: the profile's, {DEFAULT_HEAP_KIB})")
    parser.add_argument("--micropython-lib", type=Path, metavar="DIR",
                        help="micropython-lib checkout for profiles newer than v1.22 "
                        f"(default: ${MICROPYTHON_LIB})")
    parser.add_argument("--baud", type=int, metavar="RATE",
                        help="pace the serial line at this baud rate (8N1), as a real UART "
                             "runs; default: as fast as both ends take bytes")
    parser.add_argument("--boot-button", action="store_true",
                        help="hold IO0 low (BOOT pressed): every reset enters the ROM's "
                             "download mode, for esptool --before no-reset on the pty")
    parser.add_argument("--host", action="append", default=[], metavar="NAME=IP",
                        help="a name the device resolves, e.g. broker.test=127.0.0.1")
    parser.add_argument("--udp-port", action="append", default=[], metavar="PORT=REAL",
                        help="deliver the board's UDP datagrams for PORT to REAL on the same "
                        "host, e.g. 123=40123 for an NTP server on an unprivileged port")


def _hosts(pairs: list[str]) -> dict[str, str]:
    hosts = {}
    for pair in pairs:
        name, sep, address = pair.partition("=")
        if not sep or not name or not address:
            raise ConfigError(f"--host {pair!r} is not NAME=IP; e.g. --host broker.test=127.0.0.1")
        hosts[name] = address
    return hosts


def _udp_ports(pairs: list[str]) -> dict[int, int]:
    ports = {}
    for pair in pairs:
        port, sep, real = pair.partition("=")
        if not (sep and port.isdigit() and real.isdigit()
                and 0 < int(port) < 65536 and 0 < int(real) < 65536):
            raise ConfigError(f"--udp-port {pair!r} is not PORT=REAL; e.g. --udp-port 123=40123")
        ports[int(port)] = int(real)
    return ports


def run(args: argparse.Namespace) -> int:
    port_file: Path | None = args.port_file
    if port_file is not None and not port_file.parent.is_dir():
        raise ConfigError(f"the directory of --port-file {port_file} does not exist; "
                          "create it or give another path")
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    env = HarnessEnv.from_environ()
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    board = EmulatedBoard(args.flash, profile=args.profile, heap_kib=args.heap_kib,
                          rfc2217_port=args.rfc2217, erase=args.erase,
                          micropython_lib=args.micropython_lib or env.micropython_lib,
                          packages=PackageSources.from_env(env), hosts=_hosts(args.host),
                          baud=args.baud, boot_button=args.boot_button)
    board.set_udp_ports(_udp_ports(args.udp_port))
    try:
        board.start()
        if port_file is not None:
            partial = port_file.with_name(port_file.name + ".partial")
            partial.write_text(board.port + "\n", encoding="utf-8")
            partial.replace(port_file)
        where = f" and {board.rfc2217_url}" if board.rfc2217_url else ""
        print(f"emulated ESP32 ({args.profile}) on {board.port}{where}; Ctrl-C to stop",
              file=sys.stderr, flush=True)
        stop.wait()
    finally:
        board.stop()
        if port_file is not None:
            with contextlib.suppress(FileNotFoundError):
                port_file.unlink()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
