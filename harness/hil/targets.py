"""What the HIL suite runs against: a device side (emulated board, USB port or RFC2217
URL) and a broker side (PKI, broker, observer, and a per-run TLS front / wire tap).

:func:`open_target` turns the user's options into a started :class:`Target`; everything it
starts is stopped by :meth:`Target.close`, in reverse order, even when start-up fails half
way (an :class:`contextlib.ExitStack` holds each piece as soon as it exists).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.device.device import Device
from harness.errors import ConfigError
from harness.hil.scenario import Scenario

BROKER_NAME = "broker.test"  # the name the device uses for the broker (TLS SNI, SAN)
EMULATED_WIFI = ("hil-ap", "hil-wifi-secret", "192.168.4.23")


@dataclass
class TargetOptions:
    device: str = "emu"  # emu | serial path | auto | rfc2217://host:port
    profile: str = "v1.22"
    broker: str = "amqtt"  # amqtt | mosquitto | mqtt(s)://user:pass@host:port
    workdir: Path = field(default_factory=lambda: Path("hil-results"))
    username: str = "emqx"  # the seed's credentials, so the seed program runs unchanged
    password: str = "public"
    wifi_ssid: str | None = None  # real boards only; from the environment, never logged
    wifi_password: str | None = None
    broker_host: str | None = None  # address a real board reaches this machine on
    broker_name: str | None = None  # name the board uses for the broker (SNI, cert SAN)
    micropython_lib: Path | None = None
    firmware: Path | None = None


class Target:
    """A started device + broker side, ready for scenario runs."""

    def __init__(self, options: TargetOptions) -> None:
        self.options = options
        self._stack = contextlib.ExitStack()
        self.board: Any = None  # the EmulatedBoard when device == "emu"
        self.device: Device
        self.server_name = BROKER_NAME
        self.wifi_ssid, self.wifi_password, self.wifi_ip = EMULATED_WIFI
        self.backend = "emu"

    # --- start / stop -------------------------------------------------------------
    def start(self) -> Target:
        try:
            self._start_broker_side()
            self._start_device_side()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> Target:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _start_broker_side(self) -> None:
        from harness.broker import Observer, TestPki, open_broker

        opts = self.options
        bind = "127.0.0.1" if opts.device == "emu" else (opts.broker_host or "0.0.0.0")
        names = [BROKER_NAME, "localhost", "127.0.0.1"]
        for extra in (opts.broker_host, opts.broker_name):
            if extra and extra not in names and extra != "0.0.0.0":
                names.append(extra)
        self.pki = TestPki.create(opts.workdir / "pki", names=tuple(names))
        self.broker = open_broker(opts.broker, users={opts.username: opts.password},
                                  tls=self.pki.server, workdir=opts.workdir / "broker",
                                  host=bind)
        self.broker.start(timeout=15.0)
        self._stack.callback(self.broker.stop)
        self.observer = Observer(self.broker.host, self.broker.port, username=opts.username,
                                 password=opts.password, client_id="hil-observer")
        self.observer.start(timeout=10.0)
        self._stack.callback(self.observer.stop)
        self._bind = bind

    def _start_device_side(self) -> None:
        opts = self.options
        if opts.device == "emu":
            from harness.emulator import EmulatedBoard

            flash = opts.workdir / "board" / "flash"
            flash.mkdir(parents=True, exist_ok=True)
            self.board = EmulatedBoard(flash, profile=opts.profile,
                                       hosts={BROKER_NAME: "127.0.0.1"},
                                       micropython_lib=opts.micropython_lib)
            self._stack.callback(self.board.stop)
            self.board.start(timeout=15.0)
            board = self.board
            self.device = Device(board.port, hard_reset=lambda _line: board.hard_reset())
        else:
            from harness.hardware.discovery import resolve_port
            from harness.hardware.reset import hard_reset

            if not (opts.wifi_ssid and opts.wifi_password is not None):
                raise ConfigError("a real board needs Wi-Fi settings: set HIL_WIFI_SSID and "
                                  "HIL_WIFI_PASSWORD in the environment")
            port = resolve_port(opts.device)
            self.backend = "rfc2217" if port.startswith("rfc2217://") else "serial"
            self.wifi_ssid, self.wifi_password = opts.wifi_ssid, opts.wifi_password
            self.wifi_ip = ""
            self.server_name = opts.broker_name or opts.broker_host or BROKER_NAME
            if opts.firmware is not None:
                from harness.hardware.flashing import flash_firmware

                result = flash_firmware(port, opts.firmware, progress=_progress)
                _progress(f"firmware: {result.banner or 'flashed'}"
                          f"{' (already on the board, skipped)' if result.skipped else ''}")
            self.device = Device(port, hard_reset=hard_reset)
        self.device.log.add_secret(self.wifi_password)
        self.device.log.add_secret(self.options.password)
        self.device.open()
        self._stack.callback(self.device.close)

    # --- per run ------------------------------------------------------------------
    @contextlib.contextmanager
    def tap_for(self, scenario: Scenario, record_path: Path) -> Iterator[Any]:
        """A fresh TLS front / wire tap in front of the broker, set up for ``scenario``."""
        from harness.broker import Tap, TapTls

        tls = None
        if scenario.tls:
            tls = TapTls(cert=getattr(self.pki, scenario.server_cert),
                         require_sni=self.server_name if scenario.require_sni else None)
        tap = Tap(upstream=(self.broker.host, self.broker.port), tls=tls,
                  record_path=record_path, listen_host=self._bind,
                  secrets=(self.options.password, self.wifi_password or ""),
                  retained_before_suback=scenario.retained,
                  connack_delay_s=scenario.connack_delay)
        tap.start(timeout=10.0)
        try:
            yield tap
        finally:
            tap.stop()

    def prepare_wifi(self, delay: float) -> None:
        """Set the emulated access point up for the next boot (no-op on a real board)."""
        if self.board is None:
            return
        from harness.emulator import AccessPoint, WifiScenario

        self.board.set_wifi(WifiScenario(
            access_points=[AccessPoint(ssid=self.wifi_ssid, password=self.wifi_password,
                                       ip=self.wifi_ip)],
            association_delay_s=delay))

    @property
    def ca_pem(self) -> bytes:
        return Path(self.pki.ca_pem).read_bytes()

    @property
    def broker_log(self) -> Path | None:
        path = getattr(self.broker, "log_path", None)
        return Path(path) if path else None


def _progress(message: str) -> None:
    """Long steps (flashing) report progress on the terminal, outside pytest's capture."""
    if sys.__stderr__ is not None:
        sys.__stderr__.write(f"[hil] {message}\n")


def options_from_env(options: TargetOptions) -> TargetOptions:
    """Fill Wi-Fi credentials for real boards from the environment (never from argv, so
    they stay out of shell history and CI logs)."""
    options.wifi_ssid = options.wifi_ssid or os.environ.get("HIL_WIFI_SSID")
    options.wifi_password = options.wifi_password or os.environ.get("HIL_WIFI_PASSWORD")
    return options
