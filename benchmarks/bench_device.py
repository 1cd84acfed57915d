"""Device program over a long run: free heap (gc.mem_free() after gc.collect()) sampled
every 100 messages, and the loop rate, on the real MicroPython interpreter with a 64 KiB
heap against mosquitto, publish_interval 0.

    .venv/bin/python benchmarks/bench_device.py [messages]
"""

from __future__ import annotations

import itertools
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.unit.test_device_program_rig import Flash, Mosquitto, running, umqtt_134

EVERY = 100


def main(messages: int) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-device-") as tmp:
        broker = Mosquitto(Path(tmp) / "broker")
        try:
            flash = Flash(Path(tmp) / "flash", umqtt_134())
            flash.write_settings({"server": "127.0.0.1", "port": broker.port,
                                  "topic": "bench/device", "wifi_ssid": "lab",
                                  "wifi_password": "lab-secret", "publish_interval": 0,
                                  "mem_log_every": EVERY})
            stamps: list[float] = []
            with running(flash, heap="64K") as device:
                for count in range(EVERY, messages + 1, EVERY):
                    device.expect(rf"^Memory free: \d+ bytes after {count} messages",
                                  seconds=120)
                    stamps.append(time.monotonic())
        finally:
            broker.stop()
    free = [int(m[1]) for line in device.lines
            if (m := re.match(r"^Memory free: (\d+) bytes", line))]
    per_message_ms = [(b - a) * 1000 / EVERY for a, b in itertools.pairwise(stamps)]
    print(f"messages: {messages} (64 KiB heap, publish_interval 0, plain TCP)")
    print(f"free heap, median of {len(free)} samples: {statistics.median(free)} bytes")
    print(f"free heap, first / last / min: {free[0]} / {free[-1]} / {min(free)} bytes")
    print(f"drift (last - first): {free[-1] - free[0]:+d} bytes")
    print(f"loop time per message (publish + echo), median: "
          f"{statistics.median(per_message_ms):.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000))
