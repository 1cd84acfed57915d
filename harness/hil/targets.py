"""What the HIL suite runs against: a device side (a board from a device backend: the
emulated ESP32, a USB port, an RFC2217 URL, a labgrid place) and a broker side (PKI,
broker, observer, and a per-run TLS front / wire tap).

:class:`Target` turns the user's options into a started device + broker side; everything it
starts is stopped by :meth:`Target.close`, in reverse order, even when start-up fails half
way (an :class:`contextlib.ExitStack` holds each piece as soon as it exists). What differs
between kinds of board lives behind :mod:`harness.device.backends`.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import lifetime
from harness.device.backends import (
    BackendFactory,
    BoardRequest,
    DeviceBackend,
    WifiNetwork,
    factory_for,
)
from harness.device.device import Device
from harness.env import HarnessEnv
from harness.errors import BrokerError, DeviceCodeRaised
from harness.hil.scenario import Scenario

BROKER_NAME = "broker.test"  # the name the device uses for the broker (TLS SNI, SAN)
LOOPBACK = "127.0.0.1"
# ESP32 firmware checks certificate dates from this release on (esp32: "Enable mbedtls
# cert time validation", v1.22.0); harness.emulator.profiles says so per profile.
CERT_DATES_CHECKED_SINCE = (1, 22)


@dataclass
class TargetOptions:
    device: str = "emu"  # a --hil-device spec: emu | port | auto | rfc2217://… | labgrid:…
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
    worker: str = ""  # pytest-xdist worker id ("gw0"); "" in a plain session
    worker_count: int = 1
    # UDP port of the rig's NTP server: None = any free port for the emulated board (its
    # network maps port 123 there), 123 for a real board (ntptime always asks port 123).
    ntp_port: int | None = None
    # What the environment configures (harness.env), read once by the caller's edge; the
    # defaults without it.
    env: HarnessEnv = field(default_factory=HarnessEnv)


class Target:
    """A started device + broker side, ready for scenario runs."""

    def __init__(self, options: TargetOptions) -> None:
        self.options = options
        self.factory: BackendFactory = factory_for(options.device)
        self._stack = contextlib.ExitStack()
        self.backend: DeviceBackend
        self.device: Device
        self.server_name = self.factory.server_name(options.broker_host, options.broker_name,
                                                    BROKER_NAME)
        self.firmware_release: tuple[int, ...] | None = None
        self.ntp_note: str | None = None

    # --- what the rig and the reports read ------------------------------------------
    @property
    def backend_name(self) -> str:
        return self.factory.name

    @property
    def profile_label(self) -> str:
        """The firmware profile for results: the emulated one, or "flashed" on real boards."""
        return self.options.profile if self.factory.runs_profiles else "flashed"

    @property
    def wifi(self) -> WifiNetwork:
        return self.backend.wifi

    @property
    def wifi_ssid(self) -> str:
        return self.backend.wifi.ssid

    @property
    def wifi_password(self) -> str:
        return self.backend.wifi.password

    @property
    def wifi_ip(self) -> str:
        return self.backend.wifi.ip

    # --- start / stop -------------------------------------------------------------
    def start(self) -> Target:
        try:
            self._make_private_folder()
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

    def _make_private_folder(self) -> None:
        """Keys and the board's flash (its settings file holds the MQTT and Wi-Fi passwords)
        live in a 0700 temp folder removed on every exit path (SIGTERM included), never in
        the results folder that CI uploads."""
        self.private = lifetime.temp_dir("hil-session-")  # the reaper removes it on SIGKILL
        self._stack.callback(lifetime.remove_dir, self.private)

    def _start_broker_side(self) -> None:
        from harness.broker import Observer, TestPki, open_broker

        opts = self.options
        bind = self.factory.broker_bind(opts.broker_host)
        names = [BROKER_NAME, "localhost", LOOPBACK]
        for extra in (opts.broker_host, opts.broker_name):
            if extra and extra not in names and extra != "0.0.0.0":
                names.append(extra)
        self.pki = TestPki.create(self.private / "pki", names=tuple(names))
        self.broker = open_broker(opts.broker, users={opts.username: opts.password},
                                  tls=self.pki.server, workdir=opts.workdir / "broker",
                                  host=bind)
        # An external broker's URL may carry its own user (mqtt://alice:pw@host): the device,
        # the observer and the tap's redaction then all use that one, never the built-in.
        if self.broker.username is not None:
            opts.username, opts.password = self.broker.username, self.broker.password or ""
        self.broker.start(timeout=15.0)
        self._stack.callback(self.broker.stop)
        self.observer = Observer(self.broker.host, self.broker.port, username=opts.username,
                                 password=opts.password,
                                 # Unique: on a shared (external) broker a second session's
                                 # observer with the same id would take this one's session.
                                 client_id=f"hil-observer-{uuid.uuid4().hex[:8]}")
        self.observer.start(timeout=10.0)
        self._stack.callback(self.observer.stop)
        self._bind = bind
        from harness.broker.ntp import NTP_PORT, NtpServer

        ntp_port = opts.ntp_port
        if ntp_port is None:
            # A board the harness hosts has its port 123 mapped to any free port; a real
            # board's ntptime asks port 123 itself.
            ntp_port = 0 if self.factory.runs_profiles else NTP_PORT
        try:
            self.ntp: NtpServer | None = NtpServer(bind, ntp_port).start()
        except BrokerError as exc:
            if opts.ntp_port is not None or self.factory.runs_profiles:
                raise  # a port the user asked for, or a free one: a real problem
            # Port 123 is taken (another session's NTP server, or the system's) or not
            # ours to bind: the board gets its time from whoever answers there.
            self.ntp = None
            self.ntp_note = (f"the rig runs no NTP server ({exc.message}); the board sets its "
                             "clock from whatever answers on port 123")
        else:
            self._stack.callback(self.ntp.stop)

    def _start_device_side(self) -> None:
        from harness.broker.ntp import NTP_PORT

        opts = self.options
        wifi = (WifiNetwork(opts.wifi_ssid, opts.wifi_password)
                if opts.wifi_ssid and opts.wifi_password is not None else None)
        self.backend = self.factory.create(BoardRequest(
            spec=opts.device, profile=opts.profile, workdir=self.private,
            hosts={BROKER_NAME: LOOPBACK}, wifi=wifi, micropython_lib=opts.micropython_lib,
            firmware=opts.firmware, worker=opts.worker, worker_count=opts.worker_count,
            udp_ports={NTP_PORT: self.ntp.port} if self.ntp is not None else {},
            env=opts.env))
        self.device = self.backend.open(self._stack)
        self.device.log.add_secret(self.wifi_password)
        self.device.log.add_secret(self.options.password)
        self.device.open()
        self._stack.callback(self.device.close)
        self.firmware_release = self._firmware_release()

    def _firmware_release(self) -> tuple[int, ...] | None:
        """``sys.implementation.version`` of the firmware on the board, if it says (None
        when the query raises on the board or prints no version). A board with no REPL
        raises here, at once: asking it again to deploy would only wait a second time."""
        try:
            out = self.device.exec("import sys\nprint(sys.implementation.version[:3])")
        except DeviceCodeRaised:
            return None
        lines = out.strip().splitlines()
        numbers = lines[-1].strip("()").split(",") if lines else []
        try:
            return tuple(int(n) for n in numbers if n.strip()) or None
        except ValueError:
            return None

    @property
    def checks_cert_dates(self) -> bool | None:
        """Whether the firmware checks certificate dates (ESP32 port, v1.22.0 and later);
        None when the board did not say which firmware it runs."""
        if self.firmware_release is None:
            return None
        return self.firmware_release[:2] >= CERT_DATES_CHECKED_SINCE

    @property
    def ntp_server_name(self) -> str:
        """The name the device asks for the time (the broker host runs the NTP server)."""
        return self.server_name

    def prepare_ntp(self, mode: Any) -> bool:
        """What the rig's NTP server answers during the next run (an NtpMode); False when
        the rig runs none (port 123 was not free)."""
        if self.ntp is None:
            return False
        self.ntp.mode = mode
        return True

    def ntp_requests(self, since: float) -> list[float]:
        """When NTP requests reached the rig's server since ``since`` (time.time())."""
        return [] if self.ntp is None else [r.time for r in self.ntp.requests(since)]

    # --- per run ------------------------------------------------------------------
    @contextlib.contextmanager
    def tap_for(self, scenario: Scenario, record_path: Path) -> Iterator[Any]:
        """A fresh TLS front / wire tap in front of the broker, set up for ``scenario``."""
        from harness.broker import Tap, TapTls

        tls = None
        if scenario.tls:
            tls = TapTls(cert=self.pki.cert(scenario.server_cert),
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

    def prepare_wifi(self, delay: float, *, link_control: bool = False) -> None:
        """Set the access point up for the next boot (the backend knows whether it can)."""
        self.backend.prepare_wifi(delay, link_control=link_control)

    @property
    def ca_pem(self) -> bytes:
        return Path(self.pki.ca_pem).read_bytes()

    @property
    def broker_log(self) -> Path | None:
        path = getattr(self.broker, "log_path", None)
        return Path(path) if path else None
