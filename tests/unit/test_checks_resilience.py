"""The R checks on hand-made evidence: the backoff judgement (growth, ceiling, jitter, no
tight loop) and R1's keepalive bound, each defect failing with a message that says it."""

from __future__ import annotations

import itertools

import pytest

from harness.checks import resilience
from harness.checks.evidence import Evidence, Expectation, FaultMark, WireLink, WirePacket

pytestmark = pytest.mark.unit
T0 = 1000.0


def _evidence(**expect: float) -> Evidence:
    return Evidence(Expectation(server="broker.test", topic="t", client_id="c", username="u",
                                keepalive=int(expect.get("keepalive", 2)),
                                publish_interval=0.3, wifi_ip="192.168.4.23",
                                reconnect_delay=expect.get("first", 0.15),
                                reconnect_max_delay=expect.get("ceiling", 0.6)))


def _fault(kind: str, start: float, end: float | None) -> list[FaultMark]:
    marks = [FaultMark(start, start, "start", kind, {"fault": kind})]
    if end is not None:
        marks.append(FaultMark(end, end, "end", kind, {"fault": kind}))
    return marks


def _refused_attempts(gaps: list[float]) -> Evidence:
    ev = _evidence()
    times = list(itertools.accumulate([T0 + 0.2, *gaps]))
    for n, at in enumerate(times, 1):
        ev.packets.append(WirePacket(at, n, "c2b", "CONNECT", {}))
        ev.packets.append(WirePacket(at + 0.01, n, "b2c", "CONNACK", {"return_code": 3}))
    ev.faults = _fault("refuse", T0, times[-1] + 0.1)
    return ev


JITTERED = [0.16, 0.33, 0.66, 0.47, 0.71, 0.52, 0.64, 0.45]


def test_growing_capped_jittered_backoff_passes() -> None:
    finding = resilience.check_backoff(_refused_attempts(JITTERED))
    assert finding.ok, finding.message()


@pytest.mark.parametrize(("gaps", "said"), [
    ([0.01] * 9, "tight reconnect loop"),
    ([0.3] * 9, "did not grow"),
    ([0.17, 0.32, 0.62, 0.62, 0.62, 0.62, 0.62, 0.62], "no jitter"),
    ([0.16, 0.33, 0.66, 1.3, 2.6, 0.6, 0.6], "exceeds the ceiling"),
    ([0.16, 0.33], "too few to judge"),
])
def test_each_backoff_defect_fails_r2_and_says_which(gaps: list[float], said: str) -> None:
    finding = resilience.check_backoff(_refused_attempts(gaps))
    assert not finding.ok and said in finding.message(), finding.message()
    assert finding.message().startswith("R2 violated")


def _black_hole(given_up_after: float | None) -> Evidence:
    ev = _evidence(keepalive=2)
    hole = T0 + 5
    closed = hole + given_up_after if given_up_after is not None else None
    ev.links = [WireLink(1, T0, closed, "client closed the connection" if closed else None)]
    ev.packets.append(WirePacket(T0 + 0.1, 1, "b2c", "CONNACK", {"return_code": 0}))
    if closed is not None:
        ev.links.append(WireLink(2, closed + 0.2, None, None))
        ev.packets.append(WirePacket(closed + 0.25, 2, "b2c", "CONNACK", {"return_code": 0}))
    ev.faults = _fault("timeout", hole, None)
    return ev


def test_r1_within_the_keepalive_bound_passes() -> None:
    finding = resilience.check_silent_loss_detected(_black_hole(2.4))
    assert finding.ok, finding.message()


@pytest.mark.parametrize(("after", "said"), [(6.0, "the bound is 4.3 s"),
                                             (None, "never gave up the silent connection")])
def test_r1_late_or_never_fails(after: float | None, said: str) -> None:
    finding = resilience.check_silent_loss_detected(_black_hole(after))
    assert not finding.ok and said in finding.message(), finding.message()


def test_r_checks_without_their_fault_fail_saying_so() -> None:
    for check in (resilience.check_silent_loss_detected, resilience.check_backoff,
                  resilience.check_resume, resilience.check_wifi_rejoined,
                  resilience.check_unavailable_at_boot, resilience.check_latency):
        finding = check(_evidence())
        assert not finding.ok and "fault was recorded" in finding.message()
