"""Speed of the real-board path's pieces, on the ROM-level board double (no hardware).

Run: .venv/bin/python benchmarks/bench_hardware.py [--rounds N]
Prints medians. The RFC2217 figures are dominated by pyserial's RFC2217 client, which
polls every 50 ms for the server's acknowledgement of each setting change (esptool
changes the port timeout around most commands), so they stand for any RFC2217 server.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import serial

from harness.deadline import Deadline
from harness.emulator.firmware_image import build_app_image, build_merged_firmware
from harness.emulator.rfc2217 import Rfc2217Server
from harness.emulator.rom import FlashStore, RomBootloader
from harness.emulator.rom_board import RomBoard
from harness.esp32.image import parse_image
from harness.esp32.protocol import (
    Op,
    rom_checksum,
    slip_encode,
)
from harness.hardware.reset import enter_bootloader, hard_reset


def median_of(rounds: int, run: Callable[[], float]) -> float:
    return statistics.median(run() for _ in range(rounds))


def bench_parse_image() -> float:
    image = build_app_image("v1.22.2", filler_size=1_500_000)  # a MicroPython-sized app
    start = time.perf_counter()
    parse_image(image)
    return time.perf_counter() - start


def bench_rom_write(tmp: Path, size: int = 1 << 20) -> float:
    """Seconds for the ROM model to take ``size`` bytes in 1 KiB FLASH_DATA packets."""
    rom = RomBootloader(lambda _reply: None, FlashStore(tmp / "rom.bin"))
    block = bytes(range(256)) * 4
    packets = [slip_encode(struct.pack("<BBHI", 0, Op.FLASH_DATA, 16 + len(block),
                                       rom_checksum(block))
                           + struct.pack("<IIII", len(block), seq, 0, 0) + block)
               for seq in range(size // len(block))]
    begin = struct.pack("<IIII", size, len(packets), len(block), 0)
    start = time.perf_counter()
    rom.feed(slip_encode(struct.pack("<BBHI", 0, Op.FLASH_BEGIN, len(begin), 0) + begin))
    for packet in packets:
        rom.feed(packet)
    return time.perf_counter() - start


def bench_esptool_socket_write(tmp: Path) -> float:
    """Seconds for ``esptool --no-stub write-flash`` of a 256 KiB file over socket://."""
    flash = FlashStore(tmp / "socket.bin")
    listener = socket.create_server(("127.0.0.1", 0))
    url = f"socket://127.0.0.1:{listener.getsockname()[1]}"

    def serve() -> None:
        client, _ = listener.accept()
        with client:
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            rom = RomBootloader(client.sendall, flash)
            while data := client.recv(65536):
                rom.feed(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    blob = tmp / "blob.bin"
    blob.write_bytes(bytes(range(256)) * 1024)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "esptool", "--port", url, "--no-stub", "--after",
                    "no-reset", "write-flash", "0x0", str(blob)], check=True,
                   capture_output=True, timeout=300)
    elapsed = time.perf_counter() - start
    listener.close()
    thread.join(timeout=5)
    return elapsed


def bench_reset_over_rfc2217(tmp: Path, bootloader: bool) -> float:
    """Seconds from calling the reset until the board double has booted."""
    board = RomBoard(tmp)
    with Rfc2217Server(board) as server:
        line = serial.serial_for_url(server.url, timeout=0.1)
        try:
            start = time.perf_counter()
            (enter_bootloader if bootloader else hard_reset)(line)
            Deadline(10, "the board to boot").poll(lambda: board.boots or None, interval=0.002)
            return time.perf_counter() - start
        finally:
            line.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        build_merged_firmware()  # warm imports
        rows = [
            ("parse a 1.5 MB app image", median_of(rounds, bench_parse_image) * 1000, "ms"),
            ("ROM model: absorb 1 MiB of FLASH_DATA",
             median_of(rounds, lambda: bench_rom_write(tmp)) * 1000, "ms"),
            ("esptool --no-stub write-flash 256 KiB, socket://",
             median_of(max(1, rounds // 2), lambda: bench_esptool_socket_write(tmp)), "s"),
            ("hard reset over RFC2217 -> boot",
             median_of(rounds, lambda: bench_reset_over_rfc2217(tmp, False)) * 1000, "ms"),
            ("bootloader entry over RFC2217 -> download boot",
             median_of(rounds, lambda: bench_reset_over_rfc2217(tmp, True)) * 1000, "ms"),
        ]
    for label, value, unit in rows:
        print(f"{label:<52} median {value:8.1f} {unit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
