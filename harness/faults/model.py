"""Faults as data: what goes wrong (:class:`FaultKind`), where it acts (:class:`Site`),
in which direction (:class:`Direction`), and when (a :data:`Trigger`).

The vocabulary of the tap's faults is toxiproxy's (latency, bandwidth, timeout,
reset_peer, slicer, plus a stall); the broker and the emulated access point add their own.
A :class:`Fault` is frozen and hashable, so a :class:`~harness.hil.scenario.Scenario`
holding faults stays a valid cache key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from harness.wire import PacketType, WireDirection


class Site(StrEnum):
    """Where a fault acts; all three are on the path emulated and real boards share (the
    access point only for the emulated board)."""

    TAP = "tap"  # the proxy between device and broker
    BROKER = "broker"
    ACCESS_POINT = "access_point"  # the emulated board's Wi-Fi


class FaultKind(StrEnum):
    # -- the tap's byte stream (toxiproxy's toxics) ---------------------------------
    LATENCY = "latency"  # hold bytes latency_s (+- jitter_s) in a direction
    BANDWIDTH = "bandwidth"  # at most rate_bps bytes per second
    TIMEOUT = "timeout"  # a black hole: bytes swallowed, no close, no RST (a dead NAT)
    RESET_PEER = "reset_peer"  # a hard partition: RST now and to every new connection
    STALL = "stall"  # hold every byte for the duration, then deliver it (loss + retransmit)
    SLICER = "slicer"  # forward in slices of slice_bytes, slice_delay_s apart
    # -- the broker -------------------------------------------------------------------
    BROKER_RESTART = "broker_restart"  # down for the duration, then back on the same port
    REFUSE = "refuse"  # new connections get CONNACK 3 (server unavailable)
    NO_LISTENER = "no_listener"  # nothing listens: connect() is refused
    HALF_OPEN = "half_open"  # the socket stays, PINGREQ is never answered
    # -- the emulated access point ------------------------------------------------------
    WIFI_DROP = "wifi_drop"  # the link goes down for the duration
    WIFI_NEW_IP = "wifi_new_ip"  # down for the duration, back with another address

    @property
    def site(self) -> Site:
        if self in (FaultKind.WIFI_DROP, FaultKind.WIFI_NEW_IP):
            return Site.ACCESS_POINT
        if self is FaultKind.BROKER_RESTART:
            return Site.BROKER
        return Site.TAP


class Direction(StrEnum):
    """toxiproxy's stream names: upstream = device to broker."""

    UPSTREAM = "upstream"
    DOWNSTREAM = "downstream"
    BOTH = "both"

    def covers(self, upstream: bool) -> bool:
        return self is Direction.BOTH or (self is Direction.UPSTREAM) == upstream


# -- triggers ------------------------------------------------------------------------
@dataclass(frozen=True)
class AtTime:
    """``seconds`` after the run starts (the device's reset)."""

    seconds: float

    def describe(self) -> str:
        return f"at t={self.seconds:g} s"


@dataclass(frozen=True)
class AfterEchoes:
    """Once the tap has delivered the device's own payload back to it ``count`` times."""

    count: int

    def describe(self) -> str:
        return f"after echo #{self.count}"


@dataclass(frozen=True)
class OnPacket:
    """When the tap sees the ``nth`` packet of ``packet_type`` (e.g. ``PacketType.CONNECT``
    or ``"CONNECT"``) going ``direction`` (UPSTREAM = from the device)."""

    packet_type: PacketType
    nth: int = 1
    direction: Direction = Direction.UPSTREAM

    def __post_init__(self) -> None:
        try:  # a misspelt type would never fire
            object.__setattr__(self, "packet_type", PacketType(self.packet_type))
        except ValueError:
            raise ValueError(f"OnPacket: {self.packet_type!r} is not an MQTT packet type "
                             f"({', '.join(PacketType)})") from None

    @property
    def wire_direction(self) -> WireDirection:
        return (WireDirection.CLIENT_TO_BROKER if self.direction is Direction.UPSTREAM
                else WireDirection.BROKER_TO_CLIENT)

    def describe(self) -> str:
        way = "from the device" if self.direction is Direction.UPSTREAM else "to the device"
        return f"on {self.packet_type} #{self.nth} {way}"


Trigger = AtTime | AfterEchoes | OnPacket


@dataclass(frozen=True)
class Fault:
    """One fault: ``kind`` starts when ``trigger`` fires and ends ``duration_s`` later
    (None: at the end of the run). Only the parameters of its kind are used."""

    kind: FaultKind
    trigger: Trigger = field(default_factory=lambda: AtTime(0.0))
    duration_s: float | None = None
    direction: Direction = Direction.BOTH
    latency_s: float = 0.0  # LATENCY
    jitter_s: float = 0.0  # LATENCY: uniform +- jitter, order kept
    rate_bps: int = 0  # BANDWIDTH, bytes per second
    slice_bytes: int = 0  # SLICER
    slice_delay_s: float = 0.0  # SLICER
    new_connections: bool = False  # TIMEOUT: also swallow connections opened during it
    keep_state: bool = False  # BROKER_RESTART: keep retained messages (and sessions)
    new_ip: str = ""  # WIFI_NEW_IP

    def __post_init__(self) -> None:
        if self.duration_s is not None and not (math.isfinite(self.duration_s)
                                                and self.duration_s >= 0):
            raise ValueError(f"{self.kind}: duration_s must be >= 0 or None")
        if isinstance(self.trigger, AtTime) and self.trigger.seconds < 0:
            raise ValueError(f"{self.kind}: AtTime seconds must be >= 0")
        if isinstance(self.trigger, AfterEchoes | OnPacket):
            count = self.trigger.count if isinstance(self.trigger, AfterEchoes) \
                else self.trigger.nth
            if count < 1:
                raise ValueError(f"{self.kind}: a trigger counts from 1")
        for name in ("latency_s", "jitter_s", "slice_delay_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{self.kind}: {name} must be >= 0")
        if self.kind is FaultKind.LATENCY and self.latency_s <= 0:
            raise ValueError("latency: give latency_s > 0")
        if self.kind is FaultKind.BANDWIDTH and self.rate_bps <= 0:
            raise ValueError("bandwidth: give rate_bps > 0")
        if self.kind is FaultKind.SLICER and self.slice_bytes <= 0:
            raise ValueError("slicer: give slice_bytes > 0")
        if self.kind is FaultKind.WIFI_NEW_IP and not self.new_ip:
            raise ValueError("wifi_new_ip: give new_ip, the address after reassociation")
        if self.site is not Site.TAP and self.duration_s is None:
            raise ValueError(f"{self.kind}: give duration_s (how long it is down)")

    @property
    def site(self) -> Site:
        return self.kind.site

    def describe(self) -> str:
        """``timeout both after echo #3 for 5 s``: for events, logs and failure messages."""
        parts = [self.kind.value]
        if self.site is Site.TAP and self.kind not in (FaultKind.REFUSE, FaultKind.NO_LISTENER,
                                                       FaultKind.HALF_OPEN):
            parts.append(self.direction.value)
        parts.append(self.trigger.describe())
        parts.append(f"for {self.duration_s:g} s" if self.duration_s is not None
                     else "until the end of the run")
        return " ".join(parts)

    def params(self) -> dict[str, Any]:
        """The parameters that matter for this kind (for the evidence)."""
        names = {
            FaultKind.LATENCY: ("direction", "latency_s", "jitter_s"),
            FaultKind.BANDWIDTH: ("direction", "rate_bps"),
            FaultKind.TIMEOUT: ("direction", "new_connections"),
            FaultKind.RESET_PEER: (),
            FaultKind.STALL: ("direction",),
            FaultKind.SLICER: ("direction", "slice_bytes", "slice_delay_s"),
            FaultKind.BROKER_RESTART: ("keep_state",),
            FaultKind.WIFI_NEW_IP: ("new_ip",),
        }.get(self.kind, ())
        found = {name: getattr(self, name) for name in names}
        return {k: (v.value if isinstance(v, StrEnum) else v) for k, v in found.items()}

    # -- readable constructors -------------------------------------------------------
    @classmethod
    def black_hole(cls, trigger: Trigger, duration_s: float | None = None,
                   *, new_connections: bool = False) -> Fault:
        """A partition that swallows bytes both ways and never closes (a dead NAT)."""
        return cls(FaultKind.TIMEOUT, trigger, duration_s, new_connections=new_connections)

    @classmethod
    def hard_reset(cls, trigger: Trigger, duration_s: float | None = None) -> Fault:
        """A partition that resets (RST) live connections and every new one."""
        return cls(FaultKind.RESET_PEER, trigger, duration_s)

    @classmethod
    def latency(cls, trigger: Trigger, latency_s: float, *, jitter_s: float = 0.0,
                direction: Direction = Direction.BOTH,
                duration_s: float | None = None) -> Fault:
        return cls(FaultKind.LATENCY, trigger, duration_s, direction, latency_s=latency_s,
                   jitter_s=jitter_s)


START, END = "start", "end"  # its phases


@dataclass(frozen=True)
class FaultEvent:
    """A fault starting or ending, as recorded next to the packets."""

    wall_time: float
    mono_time: float
    phase: str  # START or END
    fault: Fault
    detail: str = ""

    def fields(self) -> dict[str, Any]:
        return {"fault": self.fault.kind.value, "phase": self.phase, "site": self.fault.site.value,
                "trigger": self.fault.trigger.describe(), "duration_s": self.fault.duration_s,
                **self.fault.params()}
