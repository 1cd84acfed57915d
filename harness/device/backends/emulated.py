"""The emulated ESP32 as a device backend (``--hil-device emu``).

Each session (each pytest-xdist worker) starts a board of its own on a pseudo-terminal;
the harness plays the access point, so the association delay a scenario asks for is
exactly what the device sees."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from harness.device.backends import BoardRequest, WifiNetwork
from harness.device.device import Device

EMULATED_WIFI = WifiNetwork("hil-ap", "hil-wifi-secret", "192.168.4.23")
SPEC = "emu"
_BOOT_TIMEOUT_S = 15.0


@dataclass
class EmulatedBackend:
    request: BoardRequest
    controls_wifi: bool = True
    reset_at_start: bool = False

    def __post_init__(self) -> None:
        self.wifi = EMULATED_WIFI
        self.board = f"{SPEC}:{self.request.worker}" if self.request.worker else SPEC
        self._board: Any = None

    def open(self, stack: contextlib.ExitStack) -> Device:
        from harness.emulator import EmulatedBoard
        from harness.emulator.umqtt_source import PackageSources

        flash = self.request.workdir / "board" / "flash"
        flash.mkdir(parents=True, exist_ok=True)
        board = EmulatedBoard(flash, profile=self.request.profile, hosts=self.request.hosts,
                              micropython_lib=self.request.micropython_lib,
                              packages=PackageSources.from_env(self.request.env))
        board.set_udp_ports(self.request.udp_ports)
        self._board = board
        stack.callback(board.stop)
        board.start(timeout=_BOOT_TIMEOUT_S)
        board.check_firmware()  # "no firmware: ..." in one line, not a REPL timeout
        return Device(board.port, hard_reset=lambda _line: board.hard_reset())

    def prepare_wifi(self, delay: float, *, link_control: bool = False) -> None:
        from harness.emulator import AccessPoint, WifiScenario

        self._board.set_wifi(WifiScenario(
            access_points=[AccessPoint(ssid=self.wifi.ssid, password=self.wifi.password,
                                       ip=self.wifi.ip)],
            association_delay_s=delay, link_control=link_control))

    def set_link(self, *, down: bool, ip: str | None = None) -> None:
        self._board.set_link(down=down, ip=ip)


class EmulatedFactory:
    name = "emu"
    forms = "emu"
    runs_profiles = True

    def claims(self, spec: str) -> bool:
        return spec == SPEC

    def check(self, spec: str) -> None:
        return None

    def broker_bind(self, broker_host: str | None) -> str:
        return "127.0.0.1"  # the emulated board lives on this machine

    def server_name(self, broker_host: str | None, broker_name: str | None,
                    default: str) -> str:
        return default

    def create(self, request: BoardRequest) -> EmulatedBackend:
        return EmulatedBackend(request)
