"""Benchmarks of the emulated board's serial line and ROM (issue 12), side by side in one run.

    .venv/bin/python benchmarks/bench_serial.py [--quick]

* throughput, every byte counted (a run that loses one fails): device -> host and
  host -> device, on the pty and over RFC2217, MB/s (median of rounds);
* ``mpremote fs cp`` (host -> device) and ``fs cat`` (device -> host) of 100 KB, the CLI as a
  user runs it;
* ``esptool write-flash`` of 1 MiB of random data on the pty (BOOT button held,
  ``--before no-reset``): with the stub at 460800 baud and without it at 115200, on a line
  paced at the rate esptool asks for (``--baud``) against that line-rate floor (the bytes
  esptool must send, 10 bits each), and the same unpaced; plus the stub write over RFC2217
  (esptool's own DTR/RTS reset), whose per-command cost is pyserial's RFC2217 client.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import serial

from harness.deadline import Deadline
from harness.emulator import EmulatedBoard

MB = 1_000_000


def _raw_repl(port: serial.SerialBase) -> None:
    port.write(b"\r\x03")
    time.sleep(0.2)
    port.reset_input_buffer()
    port.write(b"\r\x01")
    _read_until(port, b"raw REPL; CTRL-B to exit\r\n>", "the raw REPL")


def _read_until(port: serial.SerialBase, marker: bytes, what: str,
                timeout: float = 60.0) -> bytes:
    # One byte at a time: what follows the marker stays in the port for the caller.
    deadline = Deadline(timeout, what)
    seen = bytearray()
    while not seen.endswith(marker):
        if deadline.expired:
            raise deadline.fail(repr(bytes(seen[-100:])))
        seen += port.read(1)
    return bytes(seen)


def device_to_host(url: str, size: int) -> float:
    port = serial.serial_for_url(url, 115200, timeout=0.5)
    try:
        _raw_repl(port)
        chunk = 1000
        code = (f"import sys\nb = b'z' * {chunk}\nw = sys.stdout.buffer.write\n"
                f"for _ in range({size // chunk}): w(b)\n")
        port.write(code.encode() + b"\x04")
        _read_until(port, b"OK", "OK")
        began = time.perf_counter()
        got = 0
        tail = b""
        deadline = Deadline(120, "the end of the burst")
        while not tail.endswith(b"\x04\x04>"):
            if deadline.expired:
                raise deadline.fail(f"{got} bytes so far")
            data = port.read(max(1, min(65536, port.in_waiting)))
            got += data.count(b"z")
            tail = (tail + data)[-8:]
        elapsed = time.perf_counter() - began
        if got != size:
            raise SystemExit(f"lost bytes: {got} of {size}")
        return size / elapsed / MB
    finally:
        port.close()


def host_to_device(url: str, size: int) -> float:
    port = serial.serial_for_url(url, 115200, timeout=0.5)
    try:
        _raw_repl(port)
        code = (f"import sys\nbuf = bytearray(4096)\nn = 0\nr = sys.stdin.buffer.readinto\n"
                f"while n < {size}: n += r(buf, min(4096, {size} - n))\nprint('got', n)\n")
        port.write(code.encode() + b"\x04")
        _read_until(port, b"OK", "OK")
        payload = b"y" * size
        began = time.perf_counter()
        port.write(payload)
        out = _read_until(port, b"\x04>", "the device's count")
        elapsed = time.perf_counter() - began
        if f"got {size}".encode() not in out:
            raise SystemExit(f"the device did not read all {size} bytes: {out[-80:]!r}")
        return size / elapsed / MB
    finally:
        port.close()


def mpremote(url: str, *args: str) -> float:
    began = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "mpremote", "connect", url, *args],
                            capture_output=True, timeout=300, check=False)
    if result.returncode:
        raise SystemExit(f"mpremote {args} failed: {result.stderr[-300:]!r}")
    return time.perf_counter() - began


def esptool(url: str, *args: str) -> tuple[float, str]:
    began = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "esptool", "--port", url, *args],
                            capture_output=True, text=True, timeout=900, check=False)
    if result.returncode or "Hash of data verified." not in result.stdout:
        raise SystemExit(f"esptool {args} failed: {result.stdout[-400:]}{result.stderr[-300:]}")
    return time.perf_counter() - began, result.stdout


def line_floor(payload: int, baud: int) -> float:
    return payload * 10 / baud


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="one round each")
    args = parser.parse_args()
    rounds = 1 if args.quick else 3
    root = Path(tempfile.mkdtemp(prefix="bench-serial-"))
    rows: list[tuple[str, str]] = []

    board = EmulatedBoard(root / "line" / "flash", rfc2217_port=0)
    board.start()
    try:
        assert board.rfc2217_url is not None
        for name, url in (("pty", board.port), ("RFC2217", board.rfc2217_url)):
            size = 4 * MB if name == "pty" else 2 * MB
            out = [device_to_host(url, size) for _ in range(rounds)]
            rows.append((f"{name}: device -> host, {size // MB} MB, 0 lost",
                         f"{statistics.median(out):.2f} MB/s"))
            size = 1 * MB
            into = [host_to_device(url, size) for _ in range(rounds)]
            rows.append((f"{name}: host -> device, {size // MB} MB, 0 lost",
                         f"{statistics.median(into):.2f} MB/s"))
        blob = root / "blob.bin"
        # text: `fs cat` prints the file, which must decode as UTF-8 (on a board as well)
        blob.write_bytes(b"".join(b"line %05d " % i + b"0123456789" * 9 + b"\n"
                                  for i in range(1000))[:100 * 1024])
        cp, cat = [], []
        for index in range(rounds):
            cp.append(mpremote(board.port, "fs", "cp", str(blob), f":b{index}.bin"))
            cat.append(mpremote(board.port, "fs", "cat", f":b{index}.bin"))
        rows.append(("mpremote fs cp 100 KB (CLI)", f"{statistics.median(cp):.2f} s"))
        rows.append(("mpremote fs cat 100 KB (CLI)", f"{statistics.median(cat):.2f} s"))
    finally:
        board.stop()

    firmware = root / "fw.bin"
    data = os.urandom(1024 * 1024)
    firmware.write_bytes(data)
    compressed = len(zlib.compress(data, 9))
    cases = [("stub, 460800", ["--baud", "460800"], 460800, compressed),
             ("no stub, 115200", ["--no-stub"], 115200, len(data))]
    for label, flags, baud, payload in cases:
        for paced in (True, False):
            flash = EmulatedBoard(root / f"rom-{baud}-{paced}" / "flash", boot_button=True,
                                  baud=115200 if paced else None)
            flash.start()
            try:
                seconds, _ = esptool(flash.port, "--before", "no-reset", "--after", "no-reset",
                                     *flags, "write-flash", "0x100000", str(firmware))
            finally:
                flash.stop()
            floor = line_floor(payload, baud)
            what = "paced" if paced else "unpaced"
            rows.append((f"esptool write-flash 1 MiB, {label}, pty {what}",
                         f"{seconds:.1f} s (line-rate floor {floor:.1f} s, "
                         f"x{seconds / floor:.2f})"))
    remote = EmulatedBoard(root / "rfc" / "flash", rfc2217_port=0)
    remote.start()
    try:
        assert remote.rfc2217_url is not None
        seconds, _ = esptool(remote.rfc2217_url, "--baud", "460800", "write-flash",
                             "0x100000", str(firmware))
        rows.append(("esptool write-flash 1 MiB, stub, 460800, RFC2217 (DTR/RTS reset)",
                     f"{seconds:.1f} s (floor {line_floor(compressed, 460800):.1f} s)"))
    finally:
        remote.stop()

    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
