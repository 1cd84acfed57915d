"""Checks for the message flow: retained delivery (S4), SUBSCRIBE (S5), PUBLISH (S6),
echo (S7) and foreign messages (S8).

The seed's loop handles one incoming message per iteration, so a retained or foreign
message shifts the echo by one. These checks accept that lag but still demand order and
completeness: every published payload must come back, in order, after the extras.
"""

from __future__ import annotations

import itertools
import statistics

from harness import console
from harness.checks.evidence import Crash, Evidence, payload_counter
from harness.checks.findings import Finding
from harness.console import RECEIVED, SEND, head

# A Send line may appear ahead of its PUBLISH by the two host-side channels' jitter (a
# loaded runner delays the serial reader and the tap unevenly: 0.12 s seen at -n 6), so
# only a lead of at least this, or half the interval if more, is read as the device
# printing before publishing (a print, the interval's sleep, then the publish).
SEND_BEFORE_PUBLISH_SLACK_S = 0.1


def _extras(ev: Evidence) -> set[str]:
    exp = ev.expectation
    extras = set(exp.foreign_payloads)
    if exp.retained_payload is not None:
        extras.add(exp.retained_payload)
    return extras


def check_retained_delivered(ev: Evidence) -> Finding:
    """S4: the callback is set before SUBSCRIBE, so a retained message is printed, no crash."""
    exp = ev.expectation
    finding = Finding("S4", f"the retained message {exp.retained_payload!r} already on "
                      f"{exp.topic!r} is delivered to the callback and printed as Received; "
                      "the device keeps running", ev, quote=(head(RECEIVED), "Error|rror"))
    received = [(payload, topic) for _, payload, topic in ev.receives()]
    if (exp.retained_payload, exp.topic) not in received:
        finding.fail(f"no \"{console.received(str(exp.retained_payload), exp.topic)}\" line")
    crashes = ev.crashes()
    if crashes:
        hint = (" (the callback was not set when the message came: set_callback() must come "
                "before subscribe(); MQTT 3.1.1 §3.8.4 lets a broker send the retained "
                "PUBLISH before SUBACK)" if callback_order_crash(crashes[0]) else "")
        finding.fail(f"the device crashed: {crashes[0].exception}{hint}")
    if len(ev.sends()) < 2:
        finding.fail(f"only {len(ev.sends())} Send line(s): the loop did not keep running")
    return finding


def check_subscribe(ev: Evidence) -> Finding:
    """S5: exactly the configured topic, QoS 0, before the first PUBLISH."""
    exp = ev.expectation
    finding = Finding("S5", f"one SUBSCRIBE to exactly {exp.topic!r} at QoS 0, before the "
                      "first PUBLISH", ev)
    subscribes = ev.subscribes()
    if len(subscribes) != 1:
        return finding.fail(f"{len(subscribes)} SUBSCRIBE packets")
    topics = subscribes[0].fields.get("topics") or []
    if [(t, q) for t, q in topics] != [(exp.topic, 0)]:
        finding.fail(f"subscribed to {topics}, expected [({exp.topic!r}, 0)]")
    publishes = ev.device_publishes()
    if publishes and publishes[0].time < subscribes[0].time:
        finding.fail("the first PUBLISH went out before SUBSCRIBE")
    return finding


def check_publish(ev: Evidence) -> Finding:
    """S6: {"msg": n}, n = 0, 1, 2 ... to the topic, QoS 0, no retain, ~interval apart,
    each followed by a Send line."""
    exp = ev.expectation
    finding = Finding("S6", f'payloads {{"msg": n}} with n = 0, 1, 2 … to {exp.topic!r}, QoS 0, '
                      f"retain off, about {exp.publish_interval:g} s apart, each followed by "
                      f"\"{console.send('<payload>', '<topic>')}\"", ev, quote=(head(SEND),))
    publishes = ev.device_publishes()
    if len(publishes) < 2:
        return finding.fail(f"only {len(publishes)} PUBLISH packet(s) from the device")
    counters = [payload_counter(p.payload) for p in publishes]
    if counters != list(range(len(publishes))):
        shown = [p.fields.get("payload") for p in publishes[:6]]
        finding.fail(f"payload sequence {shown} is not {{\"msg\": 0}}, {{\"msg\": 1}}, … "
                     "without gaps")
    for packet in publishes:
        fields = packet.fields
        if fields.get("topic") != exp.topic:
            finding.fail(f"published to {fields.get('topic')!r}, configured {exp.topic!r}")
            break
        if fields.get("qos") != 0 or fields.get("retain"):
            finding.fail(f"published with QoS {fields.get('qos')}, retain "
                         f"{fields.get('retain')}; expected QoS 0, retain off")
            break
    gaps = [b.time - a.time for a, b in itertools.pairwise(publishes)]
    low = exp.publish_interval * 0.8
    high = exp.publish_interval * 1.25 + 0.4
    median = statistics.median(gaps)
    if not low <= median <= high:
        finding.fail(f"median gap between publishes {median:.2f} s, configured "
                     f"{exp.publish_interval:g} s (tolerance {low:.2f}..{high:.2f} s)")
    sends = ev.sends()
    wire = [(p.fields.get("payload"), p.fields.get("topic")) for p in publishes]
    printed = [(payload, topic) for _, payload, topic in sends]
    # The run is stopped at an arbitrary moment: the last publish may lack its line yet,
    # or the last line its recorded packet.
    common = min(len(printed), len(wire))
    if printed[:common] != wire[:common] or abs(len(printed) - len(wire)) > 1:
        finding.fail(f"Send lines {printed[:4]}… do not match the PUBLISHes {wire[:4]}…")
    # Serial and wire are two host-side channels with their own delays; only a Send line
    # well ahead of its PUBLISH (printing before publishing) is a device defect.
    slack = max(SEND_BEFORE_PUBLISH_SLACK_S, exp.publish_interval / 2)
    for (line_time, _, _), packet in zip(sends, publishes, strict=False):
        if line_time + slack < packet.time:
            finding.fail(f"a Send line was printed {packet.time - line_time:.2f} s before its "
                         "PUBLISH left the device")
            break
    return finding


def check_echo(ev: Evidence) -> Finding:
    """S7: every payload comes back, in order, on serial and at the observer."""
    exp = ev.expectation
    finding = Finding("S7", "every published payload is printed as Received, in order (a "
                      "retained or foreign message may shift the echo by one), and the "
                      "observer receives the same payloads in the same order", ev,
                      quote=(head(SEND), head(RECEIVED)))
    published = [p.payload for p in ev.device_publishes()]
    if not published:
        return finding.fail("the device published nothing")
    extras = _extras(ev)
    echoed = [payload for _, payload, topic in ev.receives()
              if topic == exp.topic and payload not in extras]
    # Each delivery of an extra (a broker may even deliver a retained message twice)
    # takes one wait_msg() slot and shifts the echo by one, printed or not: count them
    # on the wire, where the device cannot hide them.
    delivered = [p.payload for p in ev.deliveries()]
    shifted = max(sum(1 for payload in delivered if payload in extras),
                  sum(1 for _, payload, _ in ev.receives() if payload in extras))
    if echoed != published[:len(echoed)]:
        finding.fail(f"Received lines {echoed[:5]} are not the published payloads "
                     f"{published[:5]} in order")
    # One message per wait_msg(): each extra takes one slot; the last may be in flight,
    # but a device that got none of its payloads back has not shown an echo at all.
    if not echoed:
        finding.fail(f"none of the {len(published)} published payload(s) came back as "
                     "Received")
    elif len(echoed) < len(published) - shifted - 1:
        missing = published[len(echoed):len(published) - shifted - 1]
        finding.fail(f"{len(missing)} published payload(s) never printed as Received, "
                     f"first {missing[0]!r}")
    observed = [o.payload.decode(errors="replace") for o in ev.observed
                if o.topic == exp.topic and not o.retain]
    observed = [payload for payload in observed if payload not in extras]
    if observed[:len(published)] != published:
        finding.fail(f"the observer saw {observed[:5]}…, the device published "
                     f"{published[:5]}…")
    return finding


def check_foreign(ev: Evidence) -> Finding:
    """S8: a message published to the topic by someone else is received and printed."""
    exp = ev.expectation
    finding = Finding("S8", f"messages another client publishes to {exp.topic!r} are received "
                      "and printed", ev, quote=(head(RECEIVED),))
    received = {(payload, topic) for _, payload, topic in ev.receives()}
    delivered = {p.payload for p in ev.deliveries()}
    for payload in exp.foreign_payloads:
        if (payload, exp.topic) in received:
            continue
        if payload not in delivered:
            why = _why_undelivered(ev)
            finding.fail(f"the broker never delivered {payload!r} to the device ({why}), so "
                         "S8 is unproven")
        else:
            finding.fail(f"the device got {payload!r} but printed no "
                         f"\"{console.received(payload, exp.topic)}\" line")
    if ev.tracebacks():
        finding.fail(f"the device crashed: {ev.tracebacks()[0]}")
    return finding


def _why_undelivered(ev: Evidence) -> str:
    """What the wire says about a foreign message that never reached the device."""
    topic = ev.expectation.topic
    subscribed = [t for p in ev.subscribes()
                  for t, _ in p.topics]
    if not ev.connects():
        return "the device never sent CONNECT"
    if topic not in subscribed:
        return (f"the device never subscribed to {topic!r}"
                + (f"; it subscribed to {subscribed}" if subscribed else ""))
    if not any(o.payload.decode(errors="replace") in ev.expectation.foreign_payloads
               for o in ev.observed):
        return "the run ended before it was published; see the note"
    return "the broker sent nothing more before the run ended"


def callback_order_crash(crash: Crash) -> bool:
    """The crash a callback set after subscribe() causes: umqtt's subscribe() asserts a
    callback is set, or wait_msg() calls a callback that is None."""
    text = crash.exception
    in_umqtt = any("subscribe" in frame or "wait_msg" in frame for frame in crash.frames)
    return ("callback" in text.lower()
            or (text.startswith("TypeError") and "NoneType" in text and in_umqtt)
            or (text.startswith("AssertionError") and in_umqtt
                and any("subscribe" in frame for frame in crash.frames)))


def echo_round_trips(ev: Evidence) -> list[float]:
    """Seconds from each device PUBLISH to the broker's delivery back to the device."""
    delivered = {p.payload: p.time for p in ev.deliveries()}
    return [delivered[p.payload] - p.time for p in ev.device_publishes()
            if p.payload in delivered]
