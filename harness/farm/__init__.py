"""A labgrid board farm on this machine, made of emulated ESP32s.

:class:`Farm` starts a real ``labgrid-coordinator``, N emulated boards each serving its
serial line over RFC2217 (as ser2net serves a USB board), and a real ``labgrid-exporter``
whose resource file publishes those ports as ``NetworkSerialPort`` resources. Each board
becomes a place (``esp32-emu-1`` …) tagged ``board=esp32``, so ``--hil-device
labgrid:esp32-emu-1`` and ``--hil-device labgrid:board=esp32`` work against it exactly
as against a lab. Everything it starts ends with :meth:`Farm.stop`, and, through
:mod:`harness.lifetime`, with its owner however that ends.

``python -m harness farm`` runs one until Ctrl-C (see :mod:`harness.farm.cli`).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import lifetime
from harness.broker.base import pick_free_port
from harness.deadline import Deadline
from harness.device.backends.labgrid_place import ENV_COORDINATOR, LabgridClient
from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.emulator.umqtt_source import PackageSources

HOST = "127.0.0.1"
EXPORTER_NAME = "hil-farm"
PLACE_PREFIX = "esp32-emu-"
DEFAULT_TAGS = {"board": "esp32"}
START_TIMEOUT_S = 60.0


def _listening(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


class FarmError(HarnessError):
    """The farm's coordinator, exporter or boards did not come up."""


@dataclass
class FarmBoard:
    place: str
    url: str  # the board's own RFC2217 port, as the exporter publishes it
    board: Any = field(repr=False)  # the EmulatedBoard


class Farm:
    """Coordinator + exporter + N emulated boards, as places of a labgrid farm."""

    def __init__(self, workdir: Path | None = None, boards: int = 2, *,
                 profile: str = "v1.22", tags: dict[str, str] | None = None,
                 micropython_lib: Path | None = None,
                 packages: PackageSources | None = None) -> None:
        if boards < 1:
            raise FarmError(f"a farm needs at least one board, not {boards}")
        self.count = boards
        self.profile = profile
        self.tags = dict(DEFAULT_TAGS if tags is None else tags)
        self.micropython_lib = micropython_lib
        self.packages = packages  # the boards' PackageSources (None: the defaults)
        self._workdir = workdir
        self.address = ""
        self.boards: list[FarmBoard] = []
        self._stack = contextlib.ExitStack()
        self._processes: dict[str, subprocess.Popen[Any]] = {}

    # --- lifecycle ---------------------------------------------------------------------
    def start(self, timeout: float = START_TIMEOUT_S) -> Farm:
        deadline = Deadline(timeout, "the labgrid farm to come up")
        try:
            self.dir = self._make_dir()
            self._start_coordinator(deadline)
            self._start_boards()
            self._start_exporter()
            self._create_places(deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Idempotent: exporter, boards, coordinator, folder — in reverse order."""
        self._stack.close()

    def __enter__(self) -> Farm:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def client_env(self) -> dict[str, str]:
        """The environment a labgrid client (or ``pytest --hil-device labgrid:…``) needs."""
        return {ENV_COORDINATOR: self.address}

    def places(self) -> list[str]:
        return [board.place for board in self.boards]

    # --- for tests: trouble on purpose -------------------------------------------------
    def lose_board(self, index: int) -> None:
        """The board disappears (unplugged, or its ser2net died): its port closes."""
        self.boards[index].board.stop()

    def stop_coordinator(self) -> None:
        lifetime.stop(self._processes["coordinator"])

    def time_acquire_release(self, place: str) -> float:
        """Seconds for one session's labgrid work: connect, reserve, acquire, look the
        port up, release, cancel, disconnect."""
        from harness.device.backends.labgrid_place import parse_filters

        started = time.perf_counter()
        with LabgridClient(self.address) as client:
            filters = parse_filters(f"labgrid:{place}")
            token = client.reserve(filters)
            client.acquire(client.wait_allocated(token, filters, 30.0))
            client.serial_url(place)
            client.release(place)
            client.cancel(token)
        return time.perf_counter() - started

    # --- the parts ---------------------------------------------------------------------
    def _make_dir(self) -> Path:
        if self._workdir is not None:
            self._workdir.mkdir(parents=True, exist_ok=True)
            return self._workdir
        folder = lifetime.temp_dir("hil-farm-")
        self._stack.callback(lifetime.remove_dir, folder)
        return folder

    def _spawn(self, name: str, argv: list[str], cwd: Path) -> subprocess.Popen[Any]:
        cwd.mkdir(parents=True, exist_ok=True)
        log = (self.dir / f"{name}.log").open("wb")
        self._stack.callback(log.close)
        process = lifetime.spawn(argv, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL)
        self._stack.callback(lifetime.stop, process)
        self._processes[name] = process
        return process

    def _check_running(self, name: str) -> None:
        process = self._processes[name]
        if process.poll() is not None:
            tail = (self.dir / f"{name}.log").read_text(errors="replace").strip()
            last = tail.splitlines()[-1] if tail else "no output"
            raise FarmError(f"labgrid-{name} exited with {process.returncode} at start: "
                            f"{last}")

    def _start_coordinator(self, deadline: Deadline) -> None:
        try:
            import labgrid  # noqa: F401
        except ImportError as exc:
            raise FarmError("the farm needs labgrid; pip install 'esp32-mqtt-hil[farm]'") from exc
        self.address = f"{HOST}:{pick_free_port(HOST)}"
        self._spawn("coordinator", [sys.executable, "-m", "labgrid.remote.coordinator",
                                    "--listen", self.address], self.dir / "coordinator")
        host, port = self.address.rsplit(":", 1)
        while not _listening(host, int(port)):  # before that, a client only logs errors
            self._check_running("coordinator")
            if deadline.expired:
                raise FarmError(f"labgrid-coordinator did not listen on {self.address} "
                                f"within {deadline.seconds:g} s")
            time.sleep(0.1)
        self._client = LabgridClient(self.address).connect(timeout=deadline.remaining() + 1)
        self._stack.callback(self._client.close)

    def _start_boards(self) -> None:
        from harness.emulator import EmulatedBoard
        from harness.hil.targets import BROKER_NAME

        for index in range(1, self.count + 1):
            flash = self.dir / f"board-{index}" / "flash"
            flash.mkdir(parents=True, exist_ok=True)
            board = EmulatedBoard(flash, profile=self.profile, hosts={BROKER_NAME: HOST},
                                  rfc2217_port=pick_free_port(HOST),
                                  micropython_lib=self.micropython_lib,
                                  packages=self.packages)
            self._stack.callback(board.stop)
            board.start(timeout=15.0)
            assert board.rfc2217_url is not None
            self.boards.append(FarmBoard(f"{PLACE_PREFIX}{index}", board.rfc2217_url, board))

    def exporter_config(self) -> str:
        """The exporter's resource file: one group per board, its RFC2217 port published
        as a NetworkSerialPort (a lab's ser2net ports look the same)."""
        lines = []
        for board in self.boards:
            port = board.url.rsplit(":", 1)[1]
            lines += [f"{board.place}:", "  NetworkSerialPort:", f"    host: {HOST}",
                      f"    port: {port}", "    speed: 115200", "    protocol: rfc2217"]
        return "\n".join(lines) + "\n"

    def _start_exporter(self) -> None:
        config = self.dir / "exporter.yaml"
        config.write_text(self.exporter_config(), encoding="utf-8")
        self._spawn("exporter", [sys.executable, "-m", "labgrid.remote.exporter",
                                 "--coordinator", self.address, "--name", EXPORTER_NAME,
                                 "--hostname", HOST, str(config)], self.dir / "exporter")

    def _create_places(self, deadline: Deadline) -> None:
        client = self._client
        for board in self.boards:
            client.create_place(board.place, f"{EXPORTER_NAME}/{board.place}/NetworkSerialPort",
                                self.tags)
        wanted = {board.place for board in self.boards}
        while True:
            self._check_running("exporter")
            groups = client.session.resources.get(EXPORTER_NAME, {})
            if wanted <= {name for name, group in groups.items()
                          if all(r.avail for r in group.values())}:
                return
            if deadline.expired:
                raise FarmError(f"labgrid-exporter did not publish {sorted(wanted)} within "
                                f"{deadline.seconds:g} s")
            client.sync()
            time.sleep(0.1)
