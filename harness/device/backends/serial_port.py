"""Real boards as device backends: a local serial port (path, ``auto``, USB serial number or
location) or a pyserial URL (``rfc2217://host:port``, as ser2net and labgrid exporters
serve boards). A spec may list several boards (``PORT1,PORT2``); ``auto`` means every
ESP32 attached. Each session locks the board it takes (see :mod:`.pool`), so parallel
sessions and pytest-xdist workers each get a board of their own."""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from harness.device.backends import BoardRequest, WifiNetwork
from harness.device.backends.pool import claim_board, lock_dir
from harness.device.device import Device
from harness.env import WIFI_PASSWORD, WIFI_SSID
from harness.errors import ConfigError

URL_FORM = re.compile(r"^(rfc2217|socket)://[^:/,]+:\d+$")
URL_SCHEMES = ("rfc2217://", "socket://")
_LOCAL_FORM = re.compile(r"^(auto|/.+|COM\d+|[A-Za-z0-9_.:-]+)$")
ANY_INTERFACE = "0.0.0.0"


def split_spec(spec: str) -> list[str]:
    return [part.strip() for part in spec.split(",") if part.strip()]


def require_wifi(request: BoardRequest) -> WifiNetwork:
    if request.wifi is None:
        raise ConfigError(f"a real board needs Wi-Fi settings: set {WIFI_SSID} and "
                          f"{WIFI_PASSWORD} in the environment")
    return request.wifi


@dataclass
class RealBoard:
    """A board on a serial line this machine opens (a local port or an RFC2217 URL)."""

    request: BoardRequest
    candidates: Callable[[], list[str]]  # resolved when the session starts
    controls_wifi: bool = False
    reset_at_start: bool = True
    board: str = field(init=False)
    wifi: WifiNetwork = field(init=False)

    def __post_init__(self) -> None:
        self.board = self.request.spec
        self.wifi = WifiNetwork("", "")

    def open(self, stack: contextlib.ExitStack) -> Device:
        from harness.hardware.reset import hard_reset

        self.wifi = require_wifi(self.request)
        claim = claim_board(self.candidates(), worker_index=_index(self.request.worker),
                            worker_count=self.request.worker_count,
                            wait_s=self.request.env.board_wait_s,
                            directory=lock_dir(self.request.env.lock_dir))
        stack.callback(claim.lock.release)
        self.board = claim.board
        return open_port(claim.board, self.request, hard_reset)

    def prepare_wifi(self, delay: float, *, link_control: bool = False) -> None:
        return None  # a real access point associates when it does

    def set_link(self, *, down: bool, ip: str | None = None) -> None:
        from harness.faults import FaultNotApplicable

        raise FaultNotApplicable("a real board's Wi-Fi is not the harness's to drop")


def open_port(port: str, request: BoardRequest,
              reset: Callable[..., None]) -> Device:
    """Flash the firmware if one was given, then the board's :class:`Device`."""
    if request.firmware is not None:
        from harness.hardware.flashing import flash_firmware

        result = flash_firmware(port, request.firmware, progress=_progress)
        _progress(f"firmware on {port}: {result.banner or 'flashed'}"
                  f"{' (already on the board, skipped)' if result.skipped else ''}")
    return Device(port, hard_reset=reset)


class _RealFactory:
    runs_profiles = False

    def broker_bind(self, broker_host: str | None) -> str:
        return broker_host or ANY_INTERFACE

    def server_name(self, broker_host: str | None, broker_name: str | None,
                    default: str) -> str:
        return broker_name or broker_host or default


class UrlFactory(_RealFactory):
    name = "rfc2217"
    forms = "rfc2217://host:port (several: URL1,URL2)"

    def claims(self, spec: str) -> bool:
        return spec.startswith(URL_SCHEMES)

    def check(self, spec: str) -> None:
        for part in split_spec(spec):
            if not URL_FORM.match(part):
                raise ConfigError(f"--hil-device {part!r} is not understood; use "
                                  "rfc2217://host:port (e.g. rfc2217://lab-pi:4000)")

    def create(self, request: BoardRequest) -> RealBoard:
        return RealBoard(request, lambda: split_spec(request.spec))


class SerialFactory(_RealFactory):
    name = "serial"
    forms = ("auto, a port path such as /dev/ttyUSB0, a USB serial number or location "
             "(several: PORT1,PORT2)")

    def claims(self, spec: str) -> bool:
        return bool(spec)

    def check(self, spec: str) -> None:
        parts = split_spec(spec)
        if not parts or not all(_LOCAL_FORM.match(p) or URL_FORM.match(p) for p in parts):
            raise ConfigError(f"--hil-device {spec!r} is not understood; use emu, auto, a "
                              "port path such as /dev/ttyUSB0, a USB serial number or "
                              "location, rfc2217://host:port or labgrid:PLACE")

    def create(self, request: BoardRequest) -> RealBoard:
        return RealBoard(request, lambda: local_candidates(request.spec))


def local_candidates(spec: str) -> list[str]:
    """Every port the spec names; ``auto`` is each ESP32 attached (at least one)."""
    from harness.hardware.discovery import list_boards, resolve_port

    ports: list[str] = []
    for part in split_spec(spec):
        boards = list_boards() if part == "auto" else []
        found = [board.device for board in boards] or [resolve_port(part)]
        ports.extend(port for port in found if port not in ports)
    return ports


def _index(worker: str) -> int:
    digits = worker.removeprefix("gw")
    return int(digits) if digits.isdigit() else 0


def _progress(message: str) -> None:
    """Long steps (flashing) report progress on the terminal, outside pytest's capture."""
    if sys.__stderr__ is not None:
        sys.__stderr__.write(f"[hil] {message}\n")
