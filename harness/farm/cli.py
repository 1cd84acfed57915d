"""``python -m harness farm``: a labgrid farm of emulated ESP32s on this machine, until
Ctrl-C or SIGTERM. Point a test run at it with the ``LG_COORDINATOR`` it prints."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from harness.emulator.umqtt_source import PackageSources
from harness.env import HarnessEnv
from harness.errors import ConfigError
from harness.farm import DEFAULT_TAGS, Farm


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--boards", type=int, default=2, metavar="N",
                        help="how many emulated boards (places) to export (default 2)")
    parser.add_argument("--profile", default="v1.22", help="firmware profile of the boards")
    parser.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE",
                        help="tags on every place (default board=esp32)")
    parser.add_argument("--workdir", type=Path, metavar="DIR",
                        help="keep the farm's files (logs, exporter config) here instead of a "
                        "temporary folder")
    parser.add_argument("--env-file", type=Path, metavar="FILE",
                        help="write LG_COORDINATOR=… here once the farm is up (removed at exit)")


def _tags(pairs: list[str]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or not value:
            raise ConfigError(f"--tag {pair!r} is not KEY=VALUE; e.g. --tag board=esp32")
        tags[key] = value
    return tags or dict(DEFAULT_TAGS)


def run(args: argparse.Namespace) -> int:
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    env_file: Path | None = args.env_file
    try:
        env = HarnessEnv.from_environ()
        with Farm(args.workdir, boards=args.boards, profile=args.profile,
                  tags=_tags(args.tag), micropython_lib=env.micropython_lib,
                  packages=PackageSources.from_env(env)) as farm:
            lines = [f"export LG_COORDINATOR={farm.address}"]
            if env_file is not None:
                env_file.write_text(lines[0].removeprefix("export ") + "\n", encoding="utf-8")
            print(f"labgrid farm up: coordinator {farm.address}, exporter hil-farm", flush=True)
            for board in farm.boards:
                tags = ",".join(f"{k}={v}" for k, v in farm.tags.items())
                print(f"  place {board.place} [{tags}]: NetworkSerialPort {board.url}",
                      flush=True)
            print("\n".join(lines), flush=True)
            print("run e.g.: HIL_WIFI_SSID=hil-ap HIL_WIFI_PASSWORD=hil-password pytest -m "
                  "hil --hil-device labgrid:board=esp32 --hil-broker-host 127.0.0.1 "
                  "--hil-broker-name broker.test; Ctrl-C stops the farm", file=sys.stderr,
                  flush=True)
            stop.wait()
    finally:
        if env_file is not None:
            env_file.unlink(missing_ok=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
