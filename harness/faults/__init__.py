"""Faults on cue for HIL tests (spec H11, R1–R6): partitions, latency, bandwidth, stalls,
broker restarts and refusals, half-open connections, and Wi-Fi drops, each started by a
trigger and recorded next to the packets.

- :mod:`~harness.faults.model`     what (:class:`FaultKind`), when (triggers), the event
- :mod:`~harness.faults.injector`  where it acts (:class:`FaultInjector`) and when
  (:class:`FaultSchedule`)
"""

from harness.faults.injector import FaultInjector, FaultNotApplicable, FaultSchedule, is_echo
from harness.faults.model import (
    AfterEchoes,
    AtTime,
    Direction,
    Fault,
    FaultEvent,
    FaultKind,
    OnPacket,
    Site,
    Trigger,
)
from harness.faults.plan import FaultPlan

__all__ = [
    "AfterEchoes",
    "AtTime",
    "Direction",
    "Fault",
    "FaultEvent",
    "FaultInjector",
    "FaultKind",
    "FaultNotApplicable",
    "FaultPlan",
    "FaultSchedule",
    "OnPacket",
    "Site",
    "Trigger",
    "is_echo",
]
