"""Checks for the resilience items R1–R6: a device that reconnects, judged from the wire
(the tap's packets, connections and fault events) and the observer, so they hold for any
program and for real boards alike; the serial log is only quoted.

Each check finds its fault in ``evidence.faults`` and measures against it: R1 the time
from a black hole to the device giving up the connection, R2 the gaps between CONNECT
attempts the broker side refused, R3 the counter and subscriptions across a reset, R4 the
rejoin after a Wi-Fi drop, R5 retries of a broker unavailable at boot, R6 S6/S7 under
injected latency with the interval judged against it.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import replace

from harness.checks.evidence import Evidence, FaultMark, WirePacket, payload_counter
from harness.checks.findings import Finding
from harness.checks.messaging import check_echo, check_publish
from harness.console import (
    BROKER_CONNECTED,
    ERROR_LINE,
    RECEIVED,
    RECONNECTING,
    SEND,
    WIFI_CONNECTED,
    head,
    wifi_connected,
)

# Slack for what is not the device's doing: the emulated board's scheduling, the tap's
# thread hand-offs, a loaded 2-core runner.
DETECTION_SLACK_S = 1.0
# Backoff judgement: a gap shorter than this share of the first delay is a tight loop;
# jitter shows as a spread of gap/expected-delay ratios at least this wide.
TIGHT_SHARE = 0.5
MIN_JITTER_SPREAD = 0.08
JITTER_GAPS_FROM_S = 0.4  # shorter gaps are dominated by connect time, not by the delay
_REPL = re.compile(r"^>>> ?$")


def silent_loss_bound_s(keepalive: float, publish_interval: float) -> float:
    """R1: how long after a black hole begins the device may still hold the connection."""
    return 1.5 * keepalive + publish_interval + DETECTION_SLACK_S


def closed_by_client(close_reason: str | None) -> bool:
    """Whether the tap's close reason says the device closed the connection (R1's sign)."""
    return "client" in str(close_reason)


def _starts(ev: Evidence, *kinds: str) -> list[FaultMark]:
    return [f for f in ev.faults if f.phase == "start" and f.kind in kinds]


def _end_of(ev: Evidence, start: FaultMark) -> float | None:
    ends = [f.time for f in ev.faults if f.phase == "end" and f.kind == start.kind
            and f.time >= start.time]
    return min(ends) if ends else None


def _connects(ev: Evidence) -> list[WirePacket]:
    return ev.connects()


def _accepted(ev: Evidence) -> list[WirePacket]:
    return [p for p in ev.connacks() if p.return_code == 0]


def _no_fault(finding: Finding, what: str) -> Finding:
    return finding.fail(f"no {what} fault was recorded in this run (see the notes)")


def check_silent_loss_detected(ev: Evidence) -> Finding:
    """R1: after a black hole (no RST, no bytes) the device gives the connection up within
    1.5 x keepalive + one publish interval (+ slack), and connects again."""
    exp = ev.expectation
    bound = silent_loss_bound_s(exp.keepalive, exp.publish_interval)
    finding = Finding("R1", f"a connection that goes silent (a black hole) is given up "
                      f"within {bound:g} s (1.5 x keepalive {exp.keepalive} s + the publish "
                      "interval + slack), then re-established", ev,
                      quote=(head(ERROR_LINE), head(RECONNECTING), head(BROKER_CONNECTED)))
    holes = _starts(ev, "timeout")
    if not holes:
        return _no_fault(finding, "black-hole (timeout)")
    if exp.keepalive <= 0:
        return finding.fail("the run had no keepalive, so no bound exists: a silent loss "
                            "would be waited on for ever")
    hole = holes[0]
    held = [link for link in ev.links if link.opened <= hole.time
            and (link.closed is None or link.closed > hole.time)]
    if not held:
        return finding.fail("no device connection was live when the black hole began")
    victim = held[-1]
    # The device gave up when it closed that socket, or (if it never closes it) when it
    # opened a new connection; whichever the wire saw first.
    signs = [t for t in (victim.closed,) if t is not None and
             closed_by_client(victim.close_reason)]
    later = [link.opened for link in ev.links if link.opened > hole.time]
    signs += later[:1]
    if not signs:
        return finding.fail("the device never gave up the silent connection: it neither "
                            "closed it nor opened another before the run ended (does it "
                            "rely on a blocking read with no keepalive timeout?)")
    detected = min(signs) - hole.time
    if detected > bound:
        finding.fail(f"the silent connection was given up {detected:.1f} s after the black "
                     f"hole began; the bound is {bound:g} s")
    if not [a for a in _accepted(ev) if a.time > hole.time]:
        finding.fail("no CONNACK 0 after the black hole: the device did not connect again")
    return finding


def check_backoff(ev: Evidence) -> Finding:
    """R2: while the broker refuses (CONNACK 3), CONNECT attempts come with delays that
    grow, are capped and carry jitter, and never in a tight loop."""
    exp = ev.expectation
    first = exp.reconnect_delay or 1.0
    ceiling = exp.reconnect_max_delay or 60.0
    finding = Finding("R2", f"reconnect attempts with growing delays (from {first:g} s), "
                      f"capped (at {ceiling:g} s, jitter allowed), with jitter, and no tight "
                      "loop", ev, quote=(head(ERROR_LINE), head(RECONNECTING)))
    refusals = _starts(ev, "refuse")
    if not refusals:
        return _no_fault(finding, "refuse (CONNACK 3)")
    start = refusals[0].time
    end = _end_of(ev, refusals[0]) or float("inf")
    attempts = [p.time for p in _connects(ev) if start <= p.time <= end]
    if len(attempts) < 4:
        return finding.fail(f"only {len(attempts)} CONNECT attempt(s) while the broker "
                            "refused: too few to judge a backoff (did the device give up?)")
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    per_second = max(sum(1 for t in attempts if s <= t < s + 1.0) for s in attempts)
    shortest = min(gaps)
    if shortest < TIGHT_SHARE * first:
        finding.fail(f"a tight reconnect loop: {per_second} CONNECTs in one second, gaps "
                     f"down to {shortest * 1000:.0f} ms (the first delay is {first:g} s)")
    # The delays double from the first up to the ceiling; +-30 % jitter cannot hide a
    # doubling (2 x 0.7 > 1.3), so every planned step up must show on the wire.
    expected = [min(first * 2 ** n, ceiling) for n in range(len(gaps))]
    steps = [n for n in range(1, len(gaps)) if expected[n] > expected[n - 1]]
    flat = [n for n in steps if gaps[n] <= gaps[n - 1]]
    if flat:
        finding.fail(f"the delay did not grow: gap {flat[0] + 1} ({gaps[flat[0]]:.2f} s) is "
                     f"not longer than the one before ({_show(gaps)})")
    high = 1.5 * ceiling + DETECTION_SLACK_S
    if max(gaps) > high:
        finding.fail(f"a gap of {max(gaps):.2f} s exceeds the ceiling {ceiling:g} s "
                     f"(+50 % jitter and slack: {high:g} s): {_show(gaps)}")
    ratios = [gap / planned for gap, planned in zip(gaps, expected, strict=True)
              if planned >= JITTER_GAPS_FROM_S]
    if len(ratios) >= 3:
        spread = max(ratios) - min(ratios)
        if spread < MIN_JITTER_SPREAD:
            finding.fail(f"no jitter: the gaps follow the planned delays to within "
                         f"{spread * 100:.1f} % ({_show(gaps)}); boards that lost the same "
                         "broker would all come back in the same instant")
    else:
        finding.fail(f"too few gaps of {JITTER_GAPS_FROM_S:g} s or more to see jitter "
                     f"({_show(gaps)})")
    return finding


def _show(gaps: list[float]) -> str:
    return "gaps " + ", ".join(f"{g:.2f}" for g in gaps) + " s"


def _counters(payloads: list[str]) -> list[int | None]:
    return [payload_counter(p) for p in payloads]


def check_resume(ev: Evidence) -> Finding:
    """R3: after a reset the device subscribes again on the new connection, and the
    counter goes on with no gap and no duplicate; the observer sees each payload once."""
    exp = ev.expectation
    finding = Finding("R3", f"after reconnecting, a SUBSCRIBE to {exp.topic!r} on the new "
                      "connection before its first PUBLISH, the counter continuing with no "
                      "gap and no duplicate, and the observer seeing every payload once", ev,
                      quote=(head(SEND), head(ERROR_LINE), head(BROKER_CONNECTED)))
    resets = _starts(ev, "reset_peer", "broker_restart")
    if not resets:
        return _no_fault(finding, "reset_peer or broker_restart")
    after = resets[0].time
    publishes = [p for p in ev.device_publishes() if p.forwarded]
    by_conn: dict[int, list[WirePacket]] = {}
    for packet in publishes:
        by_conn.setdefault(packet.connection, []).append(packet)
    resumed = [c for c, ps in by_conn.items() if ps[0].time > after]
    if not resumed:
        return finding.fail("the device published nothing on a new connection after the "
                            "reset: it did not resume")
    for conn in resumed:
        subscribes = [s for s in ev.subscribes() if s.connection == conn
                      and exp.topic in [t[0] for t in s.topics]]
        if not subscribes or subscribes[0].time > by_conn[conn][0].time:
            finding.fail(f"connection #{conn} published without subscribing to "
                         f"{exp.topic!r} first: the echo is lost after a reconnect")
    counters = _counters([p.payload for p in publishes])
    if counters != list(range(len(counters))):
        finding.fail(f"the counters on the wire are {counters}, not 0..{len(counters) - 1} "
                     "once each (a gap, a duplicate, or a restart from 0)")
    seen = [n for n in _counters([o.payload.decode(errors="replace") for o in ev.observed
                                  if o.topic == exp.topic and not o.retain]) if n is not None]
    if seen != list(range(len(seen))) or len(seen) < len(counters):
        finding.fail(f"the observer saw counters {seen}: not every payload once, in order")
    if len([p for p in publishes if p.time > after]) < 2:
        finding.fail("fewer than 2 publishes after the reset: resumption is unproven")
    return finding


def check_wifi_rejoined(ev: Evidence) -> Finding:
    """R4: after the access point drops the link, the device joins Wi-Fi again (with the
    address it gets then) and re-establishes its MQTT session."""
    finding = Finding("R4", f"a dropped Wi-Fi link is rejoined ('{wifi_connected('<ip>')}' again, "
                      "with the new address) and the MQTT session established again", ev,
                      quote=(head(WIFI_CONNECTED), head(ERROR_LINE),
                             head(BROKER_CONNECTED)))
    drops = _starts(ev, "wifi_drop", "wifi_new_ip")
    if not drops:
        return _no_fault(finding, "Wi-Fi drop")
    drop = drops[0]
    back = _end_of(ev, drop)
    if back is None:
        return finding.fail("the link never came back in this run")
    new_ip = str(drop.fields.get("new_ip") or "")
    rejoined = [(line, m) for line, m in ev.lines_matching(WIFI_CONNECTED)
                if line.time > drop.time]
    if not rejoined:
        finding.fail(f"no '{wifi_connected('<ip>')}' after the drop: the device did not rejoin")
    elif new_ip and rejoined[-1][1]["ip"] != new_ip:
        finding.fail(f"'{wifi_connected(rejoined[-1][1]['ip'])}' after reassociation, but the "
                     f"access point gave {new_ip}")
    sessions = [a for a in _accepted(ev) if a.time > drop.time]
    if not sessions:
        finding.fail("no CONNACK 0 after the drop: the MQTT session was not re-established")
    elif not [c for c in _connects(ev) if c.time >= back - DETECTION_SLACK_S]:
        finding.fail("no CONNECT once the link was back")
    return finding


def check_unavailable_at_boot(ev: Evidence) -> Finding:
    """R5: a broker that refuses (CONNACK 3) or does not listen at boot is retried, and the
    device connects once it is back."""
    finding = Finding("R5", "a broker unavailable at boot (CONNACK 3, then no listener) is "
                      "retried, not fatal: the device connects once it is back", ev,
                      quote=(head(ERROR_LINE), head(RECONNECTING), head(BROKER_CONNECTED),
                             ">>>"))
    refusals = _starts(ev, "refuse")
    silences = _starts(ev, "no_listener")
    if not refusals and not silences:
        return _no_fault(finding, "refuse or no_listener")
    refused = [p for p in ev.connacks() if p.return_code == 3]
    if refusals and not refused:
        finding.fail("the broker side sent no CONNACK 3: the device made no attempt while "
                     "the broker refused")
    accepted = _accepted(ev)
    last_end = max((_end_of(ev, f) or 0.0) for f in refusals + silences)
    if not accepted:
        finding.fail("never connected: the unavailable broker was fatal, not retried")
    elif accepted[0].time < last_end - DETECTION_SLACK_S:
        finding.fail("CONNACK 0 came while the broker was still unavailable (fault "
                     "bookkeeping is wrong)")
    if refused and accepted and len(_connects(ev)) < len(refused) + 1:
        finding.fail("no new CONNECT after the refusals")
    if ev.lines_matching(_REPL) and not accepted:
        finding.fail("the program returned to the REPL instead of retrying")
    return finding


def check_latency(ev: Evidence) -> Finding:
    """R6: S6 and S7 hold with seconds of injected latency, the interval judged against
    the device's loop as the latency stretches it (publish interval + round trip)."""
    exp = ev.expectation
    lags = _starts(ev, "latency")
    delay = sum(float(f.fields.get("latency_s") or 0.0) for f in lags)
    if lags and lags[0].fields.get("direction") == "both":
        delay *= 2
    finding = Finding("R6", f"S6 and S7 hold with {delay:g} s of injected round-trip latency; "
                      f"publishes about {exp.publish_interval + delay:g} s apart (interval + "
                      "round trip)", ev, quote=(head(SEND), head(RECEIVED), head(ERROR_LINE)))
    if not lags:
        return _no_fault(finding, "latency")
    stretched = replace(ev, expectation=replace(exp, publish_interval=exp.publish_interval
                                                + delay))
    for inner in (check_publish(stretched), check_echo(stretched)):
        finding.problems += [f"{inner.item}: {problem}" for problem in inner.problems]
    if len(_accepted(ev)) != 1:
        finding.fail(f"{len(_accepted(ev))} sessions: the latency alone made the device "
                     "reconnect (is its keepalive timeout shorter than the round trip?)")
    return finding

