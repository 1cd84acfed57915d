"""A test's own faults (the ``hil_faults`` fixture): collected before ``hil_run(...)``,
which runs the scenario with them added."""

from __future__ import annotations

from harness.faults.model import AtTime, Direction, Fault, FaultKind, Trigger

AT_START = AtTime(0.0)


class FaultPlan:
    """Faults a test adds to its next run; each method returns the :class:`Fault`."""

    def __init__(self) -> None:
        self.faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        self.faults.append(fault)
        return fault

    def black_hole(self, trigger: Trigger, duration_s: float | None = None, *,
                   new_connections: bool = False) -> Fault:
        return self.add(Fault.black_hole(trigger, duration_s, new_connections=new_connections))

    def hard_reset(self, trigger: Trigger, duration_s: float | None = None) -> Fault:
        return self.add(Fault.hard_reset(trigger, duration_s))

    def latency(self, trigger: Trigger, latency_s: float, *, jitter_s: float = 0.0,
                direction: Direction = Direction.BOTH,
                duration_s: float | None = None) -> Fault:
        return self.add(Fault.latency(trigger, latency_s, jitter_s=jitter_s,
                                      direction=direction, duration_s=duration_s))

    def broker_restart(self, trigger: Trigger, down_s: float, *,
                       keep_state: bool = False) -> Fault:
        return self.add(Fault(FaultKind.BROKER_RESTART, trigger, down_s, keep_state=keep_state))

    def refuse(self, trigger: Trigger = AT_START, duration_s: float | None = None) -> Fault:
        return self.add(Fault(FaultKind.REFUSE, trigger, duration_s))

    def wifi_drop(self, trigger: Trigger, down_s: float, *, new_ip: str = "") -> Fault:
        kind = FaultKind.WIFI_NEW_IP if new_ip else FaultKind.WIFI_DROP
        return self.add(Fault(kind, trigger, down_s, new_ip=new_ip))

    def __bool__(self) -> bool:
        return bool(self.faults)
