"""Device backends: the ways the harness reaches a board, behind one interface.

In the spirit of labgrid's resource/driver split: a :class:`BackendFactory` claims a
``--hil-device`` spec (``emu``, a port path, ``rfc2217://…``, ``labgrid:PLACE``) and
creates a :class:`DeviceBackend`, which knows everything specific to its kind of board:
how to start or reserve it, how to reset it, what Wi-Fi it joins, what its firmware
profile is called. The rig and the pytest plugin only talk to this interface; they never
compare backend names. A new backend is one :func:`register_backend` call.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from harness.device.device import Device
from harness.env import HarnessEnv
from harness.errors import ConfigError


@dataclass(frozen=True)
class WifiNetwork:
    """The network the board is told to join, and the address it is expected to get
    (empty when the access point, not the harness, decides)."""

    ssid: str
    password: str
    ip: str = ""


@dataclass(frozen=True)
class BoardRequest:
    """What a backend needs from the session's options to bring a board up."""

    spec: str  # the --hil-device value
    profile: str
    workdir: Path  # this session's private folder (board flash, state)
    hosts: dict[str, str]  # names the device resolves (emulated boards only)
    wifi: WifiNetwork | None  # from HIL_WIFI_SSID / HIL_WIFI_PASSWORD, for real boards
    micropython_lib: Path | None = None
    firmware: Path | None = None
    worker: str = ""  # the pytest-xdist worker id ("gw0"), "" without xdist
    worker_count: int = 1
    # UDP ports the emulated board's network delivers elsewhere on the same host
    # ({123: the rig's NTP server port}); real boards reach the real port.
    udp_ports: dict[int, int] = field(default_factory=dict)
    # What the environment configures (lock folder, board wait, labgrid coordinator,
    # package cache), read once at the edge.
    env: HarnessEnv = field(default_factory=HarnessEnv)


class DeviceBackend(Protocol):
    """One board, brought up for a session. Everything specific to its kind lives here."""

    #: Where the board is, for results and history ("emu:gw1", "/dev/ttyUSB0", …).
    board: str
    #: The Wi-Fi network the device program is told to join.
    wifi: WifiNetwork
    #: True when the harness itself plays the access point (its association time is known).
    controls_wifi: bool
    #: True for a board other sessions used before (a desk, runner or farm board): it is
    #: reset before the session deploys, so nothing a previous session left running or
    #: allocated (a program stopped at the REPL keeps its heap) gets in the way.
    reset_at_start: bool

    def open(self, stack: contextlib.ExitStack) -> Device:
        """Bring the board up and return its (unopened) :class:`Device`; register every
        clean-up on ``stack`` as soon as the thing to clean up exists."""
        ...

    def prepare_wifi(self, delay: float, *, link_control: bool = False) -> None:
        """Set the access point up for the next boot (a no-op on a real network);
        ``link_control``: the run may drop the link with :meth:`set_link`."""
        ...

    def set_link(self, *, down: bool, ip: str | None = None) -> None:
        """Drop or restore the Wi-Fi link now (a Wi-Fi fault; only where
        ``controls_wifi``), with ``ip`` the address after reassociation."""
        ...


class BackendFactory(Protocol):
    """A kind of board: which specs it claims and how to make a backend for one."""

    #: The backend's name in results and history (``hil.backend``): emu, serial, rfc2217 …
    name: str
    #: One line for help texts and errors: the spec forms this factory accepts.
    forms: str
    #: True for an emulated board, where the harness decides the firmware profile
    #: (other profiles can be started on demand); a real board runs what it was flashed with.
    runs_profiles: bool

    def claims(self, spec: str) -> bool:
        """Whether ``spec`` names a board of this kind."""
        ...

    def check(self, spec: str) -> None:
        """Raise :class:`ConfigError` (one line) if a claimed spec is malformed."""
        ...

    def broker_bind(self, broker_host: str | None) -> str:
        """The address the broker side listens on so this kind of board reaches it."""
        ...

    def server_name(self, broker_host: str | None, broker_name: str | None,
                    default: str) -> str:
        """The broker name the device uses (server, SNI, certificate SAN)."""
        ...

    def create(self, request: BoardRequest) -> DeviceBackend:
        ...


_REGISTRY: list[BackendFactory] = []


def register_backend(factory: BackendFactory, *, first: bool = False) -> None:
    """Add a kind of board. Factories are asked in order; ``first`` puts it before the
    built-in ones (a catch-all such as local serial ports is asked last)."""
    _load_builtins()
    _REGISTRY.insert(0 if first else len(_REGISTRY) - 1, factory)


def factories() -> tuple[BackendFactory, ...]:
    _load_builtins()
    return tuple(_REGISTRY)


def factory_for(spec: str) -> BackendFactory:
    """The factory that claims ``spec``; :class:`ConfigError` naming every form if none does
    or the spec is malformed."""
    spec = spec.strip()
    for factory in factories():
        if factory.claims(spec):
            factory.check(spec)
            return factory
    raise ConfigError(f"--hil-device {spec!r} is not understood; use {usage()}")


def usage() -> str:
    return ", ".join(factory.forms for factory in factories())


_loaded = False


def _load_builtins() -> None:
    """Register the built-in backends once (imported lazily: the emulator and labgrid
    are only loaded when a session uses them)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    from harness.device.backends.emulated import EmulatedFactory
    from harness.device.backends.labgrid_place import LabgridFactory
    from harness.device.backends.serial_port import SerialFactory, UrlFactory

    # Order matters: the local-port factory accepts any bare name, so it comes last.
    _REGISTRY[:0] = [EmulatedFactory(), LabgridFactory(), UrlFactory(), SerialFactory()]
