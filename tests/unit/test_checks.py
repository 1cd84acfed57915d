"""The spec checks on hand-made evidence: a correct run passes every check; each single
defect fails exactly the check of its spec item, with a message that names it."""

from __future__ import annotations

import dataclasses
import json

import pytest

from harness import console
from harness.checks import connection, messaging
from harness.checks.evidence import (
    Evidence,
    Expectation,
    ObservedPublish,
    SerialLine,
    TlsHandshake,
    WirePacket,
)
from harness.checks.findings import Finding, diagnose

pytestmark = pytest.mark.unit

TOPIC = "raspberry/mqtt"


class Run:
    """Builds evidence the way a seed-like device produces it, with a clock."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.ev = Evidence(Expectation(
            server="broker.test", topic=TOPIC, client_id=None, username="emqx", keepalive=0,
            publish_interval=1.0, wifi_ip="192.168.4.23", wifi_delay=2.5, tls=True,
            retained_payload="retained-hello",
            foreign_payloads=("foreign-hello",)))

    def tick(self, dt: float = 0.01) -> float:
        self.t += dt
        return self.t

    def say(self, text: str, dt: float = 0.01) -> None:
        self.ev.serial.append(SerialLine(self.tick(dt), text))

    def wire(self, direction: str, kind: str, dt: float = 0.005, **fields: object) -> None:
        self.ev.packets.append(WirePacket(self.tick(dt), 1, direction, kind, dict(fields)))

    def observe(self, payload: str, retain: bool = False) -> None:
        self.ev.observed.append(ObservedPublish(self.t, TOPIC, payload.encode(), retain))


def good_run(messages: int = 5) -> Run:
    run = Run()
    for _ in range(3):
        run.say(console.WIFI_WAITING, dt=1.0)
    run.say(console.wifi_connected("192.168.4.23"), dt=0.5)
    run.ev.handshakes.append(TlsHandshake(run.tick(), 1, "broker.test", None))
    run.wire("c2b", "CONNECT", protocol_name="MQTT", protocol_level=4,
             client_id="micropython-client-42", username="emqx", has_password=True,
             clean_session=True, keepalive=0)
    run.wire("b2c", "CONNACK", return_code=0)
    run.say(console.broker_connected("broker.test"))
    run.wire("c2b", "SUBSCRIBE", topics=[(TOPIC, 0)])
    run.wire("b2c", "PUBLISH", topic=TOPIC, payload="retained-hello", qos=0, retain=True)
    run.wire("b2c", "SUBACK", return_codes=[0])
    run.observe("retained-hello", retain=True)
    inbox = ["retained-hello"]
    for n in range(messages):
        payload = json.dumps({"msg": n})
        run.wire("c2b", "PUBLISH", dt=1.0, topic=TOPIC, payload=payload, qos=0, retain=False)
        run.say(console.send(payload, TOPIC))
        run.observe(payload)
        if n == 2:
            run.observe("foreign-hello")
            run.wire("b2c", "PUBLISH", topic=TOPIC, payload="foreign-hello", qos=0,
                     retain=False)
            inbox.append("foreign-hello")
        run.wire("b2c", "PUBLISH", topic=TOPIC, payload=payload, qos=0, retain=False)
        inbox.append(payload)
        run.say(console.received(inbox.pop(0), TOPIC))
        run.say("")
    return run


ALL_CHECKS = {
    "S1": connection.check_wifi,
    "S2": connection.check_connect_packet,
    "S3": connection.check_connected_line,
    "S4": messaging.check_retained_delivered,
    "S5": messaging.check_subscribe,
    "S6": messaging.check_publish,
    "S7": messaging.check_echo,
    "S8": messaging.check_foreign,
    "S9": connection.check_tls_connected,
}


def failing(ev: Evidence) -> dict[str, Finding]:
    return {item: f for item, check in ALL_CHECKS.items() if not (f := check(ev)).ok}


def test_a_correct_run_with_echo_lag_passes_every_check() -> None:
    assert failing(good_run().ev) == {}


def _replace_packets(run: Run, kind: str, **changes: object) -> None:
    run.ev.packets = [dataclasses.replace(p, fields={**p.fields, **changes})
                      if p.type == kind and p.direction == "c2b" else p
                      for p in run.ev.packets]


def test_gap_in_counter_fails_only_s6_and_s7() -> None:
    run = good_run()
    publishes = run.ev.device_publishes()
    run.ev.packets.remove(publishes[2])
    bad = failing(run.ev)
    assert set(bad) == {"S6", "S7"}
    assert "without gaps" in bad["S6"].message()


@pytest.mark.parametrize(("lead_s", "fails"), [(0.3, False), (0.6, True)])
def test_a_send_line_well_ahead_of_its_publish_fails_s6(lead_s: float, fails: bool) -> None:
    """Printed ahead of the PUBLISH by channel jitter passes; by more than half the
    interval (1 s here) it is the device printing before it publishes."""
    run = good_run()
    publishes = iter(run.ev.device_publishes())
    run.ev.serial = [dataclasses.replace(line, time=next(publishes).time - lead_s)
                     if console.SEND.match(line.text) else line for line in run.ev.serial]
    finding = messaging.check_publish(run.ev)
    assert finding.ok is not fails
    if fails:
        assert "printed 0.60 s before its PUBLISH" in finding.message()


def test_qos1_publish_fails_s6() -> None:
    run = good_run()
    _replace_packets(run, "PUBLISH", qos=1)
    assert set(failing(run.ev)) == {"S6"}


def test_wrong_keepalive_fails_s2_with_both_values() -> None:
    run = good_run()
    _replace_packets(run, "CONNECT", keepalive=60)
    bad = failing(run.ev)
    assert set(bad) == {"S2"}
    assert "keepalive 60 s, configured 0 s" in bad["S2"].message()


def test_client_id_outside_seed_range_fails_s2() -> None:
    run = good_run()
    _replace_packets(run, "CONNECT", client_id="micropython-client-256")
    assert set(failing(run.ev)) == {"S2"}


def test_subscribe_after_first_publish_fails_s5() -> None:
    run = good_run()
    subscribe = run.ev.packets_of("SUBSCRIBE")[0]
    run.ev.packets.remove(subscribe)
    run.ev.packets.append(dataclasses.replace(subscribe, time=run.tick()))
    assert set(failing(run.ev)) == {"S5"}


def test_connected_line_before_connack_fails_s3() -> None:
    run = good_run()
    line = next(s for s in run.ev.serial if console.BROKER_CONNECTED.match(s.text))
    connack = run.ev.packets_of("CONNACK")[0]
    run.ev.serial[run.ev.serial.index(line)] = dataclasses.replace(line, time=connack.time - 0.1)
    assert set(failing(run.ev)) == {"S3"}


def test_missing_echo_fails_s7_only() -> None:
    run = good_run()
    echo = console.received(json.dumps({"msg": 1}), TOPIC)
    run.ev.serial = [s for s in run.ev.serial if s.text != echo]
    assert set(failing(run.ev)) == {"S7"}


def test_crash_on_retained_message_fails_s4_and_names_callback_order() -> None:
    run = good_run(messages=0)
    run.say("Traceback (most recent call last):")
    run.say('  File "main.py", line 40, in subscribe')
    run.say("TypeError: 'NoneType' object isn't callable")
    finding = messaging.check_retained_delivered(run.ev)
    assert not finding.ok
    assert "callback" in finding.message()
    assert "TypeError" in finding.message()


def test_foreign_message_not_printed_fails_s8() -> None:
    run = good_run()
    run.ev.serial = [s for s in run.ev.serial if "foreign-hello" not in s.text]
    assert "S8" in failing(run.ev)
    assert "the device got 'foreign-hello' but printed no" in failing(run.ev)["S8"].message()


def test_foreign_message_never_delivered_is_not_blamed_on_the_device() -> None:
    run = good_run()
    run.ev.serial = [s for s in run.ev.serial if "foreign-hello" not in s.text]
    run.ev.packets = [p for p in run.ev.packets if p.fields.get("payload") != "foreign-hello"]
    assert "never delivered 'foreign-hello' to the device" in failing(run.ev)["S8"].message()


def test_unprinted_extra_on_the_wire_still_counts_as_echo_lag() -> None:
    run = good_run(messages=6)
    # The device swallows the foreign message without printing; its slot still shifts
    # the echo, which the wire shows.
    received = [s for s in run.ev.serial if console.RECEIVED.match(s.text)]
    run.ev.serial = [s for s in run.ev.serial if "foreign-hello" not in s.text
                     and s is not received[-1]]
    assert messaging.check_echo(run.ev).ok


def test_wrong_ip_and_waiting_cadence_fail_s1() -> None:
    run = good_run()
    run.ev.serial = [dataclasses.replace(s, text=console.wifi_connected("10.0.0.9"))
                     if console.WIFI_CONNECTED.match(s.text) else s for s in run.ev.serial]
    assert "ifconfig" in connection.check_wifi(run.ev).message()
    burst = good_run()
    waits = [s for s in burst.ev.serial if s.text == console.WIFI_WAITING]
    for index, line in enumerate(waits):
        burst.ev.serial[burst.ev.serial.index(line)] = dataclasses.replace(
            line, time=waits[0].time + 0.01 * index)
    assert "not about 1 s apart" in connection.check_wifi(burst.ev).message()


def test_wrong_sni_fails_s9() -> None:
    run = good_run()
    run.ev.handshakes = [TlsHandshake(run.t, 1, None, None)]
    assert "SNI None" in connection.check_tls_connected(run.ev).message()


def refused_run(handshake_error: str, sni: str | None, line: str) -> Run:
    run = Run()
    run.say(console.wifi_connected("192.168.4.23"))
    run.ev.connections_opened = 1
    run.ev.handshakes.append(TlsHandshake(run.tick(), 1, sni, handshake_error))
    run.say(line)
    return run


def test_tls_refusal_passes_with_error_line_and_no_connect() -> None:
    run = refused_run("client rejected the certificate (unknown ca)", "broker.test",
                      "ERROR tls: certificate verification failed")
    assert connection.check_tls_refused(run.ev, "an untrusted CA").ok
    assert "TLS handshake failed" in diagnose(run.ev)


def test_tls_refusal_fails_when_device_connects_anyway() -> None:
    run = good_run()
    finding = connection.check_tls_refused(run.ev, "an untrusted CA")
    assert not finding.ok
    assert "CONNECT reached the broker" in finding.message()


def test_missing_sni_is_named_as_the_cause() -> None:
    run = refused_run("handshake refused: no SNI", None, "ERROR tls: handshake failed")
    assert connection.check_sni_rejected(run.ev).ok
    assert "sent no SNI" in diagnose(run.ev)


def test_auth_refusal_is_diagnosed_not_authorized() -> None:
    run = Run()
    run.say(console.wifi_connected("192.168.4.23"))
    run.ev.connections_opened = 1
    run.wire("c2b", "CONNECT", client_id="x")
    run.wire("b2c", "CONNACK", return_code=5)
    run.say("ERROR mqtt: not authorized (CONNACK 5)")
    assert connection.check_auth_refused(run.ev).ok
    assert "not authorized" in diagnose(run.ev)
    run.ev.packets[-1] = dataclasses.replace(run.ev.packets[-1], fields={"return_code": 0})
    assert not connection.check_auth_refused(run.ev).ok


def test_device_that_refuses_locally_without_sni_is_diagnosed_as_missing_sni() -> None:
    run = refused_run("client closed the connection during the handshake", None,
                      "ERROR tls: this firmware cannot verify the server without SNI (sni is "
                      "false): CERT_REQUIRED requires server_hostname")
    run.ev.handshakes = [dataclasses.replace(run.ev.handshakes[0], hello_seen=False)]
    assert connection.check_sni_rejected(run.ev).ok
    assert "sent no SNI" in diagnose(run.ev)


# --- refusals need a handshake the device began; diagnoses follow the evidence -------
def refusal_run(*, hello: bool = True, error_line: str | None = None) -> Run:
    """A device told to use TLS against a bad certificate, up to its refusal."""
    run = Run()
    run.ev.expectation.wifi_delay = None
    run.say(console.wifi_connected("192.168.4.23"))
    run.ev.connections_opened = 1
    run.ev.handshakes.append(TlsHandshake(run.tick(), 1, "broker.test" if hello else None,
                                          "unknown ca" if hello else
                                          "client closed the connection during the handshake",
                                          hello_seen=hello))
    if error_line is not None:
        run.say(error_line)
    return run


def test_tls_refusal_with_clienthello_and_tls_error_passes() -> None:
    run = refusal_run(error_line="ERROR tls: certificate verification failed: unknown CA")
    assert connection.check_tls_refused(run.ev, "an untrusted CA").ok


def test_tls_refusal_without_clienthello_fails_even_with_a_certificate_word() -> None:
    # The fooling case: a program that stops on its missing CA file prints "certificate".
    run = refusal_run(hello=False, error_line="ERROR settings: ca_file: /ca.pem cannot be "
                      "read (OSError 2); copy the CA certificate there")
    finding = connection.check_tls_refused(run.ev, "an untrusted CA")
    assert not finding.ok
    assert "never began a TLS handshake" in finding.message()
    assert "ca_file" in finding.message()  # the first error the device printed


def test_tls_refusal_by_a_device_that_never_connects_says_so() -> None:
    run = Run()
    run.say(console.wifi_connected("192.168.4.23"))
    finding = connection.check_tls_refused(run.ev, "an expired certificate")
    assert not finding.ok and "opened no connection" in finding.message()


def test_tls_refusal_needs_the_error_after_the_handshake_not_a_file_error() -> None:
    run = refusal_run(error_line="OSError: [Errno 2] ENOENT while reading the certificate")
    finding = connection.check_tls_refused(run.ev, "an untrusted CA")
    assert "no TLS/certificate error" in finding.message()


def test_plain_mqtt_to_the_tls_port_is_named() -> None:
    run = refusal_run(hello=False)
    run.ev.handshakes[0] = dataclasses.replace(run.ev.handshakes[0],
                                               error="wrong version number")
    finding = connection.check_tls_refused(run.ev, "an untrusted CA")
    assert "non-TLS bytes" in finding.message()


def test_sni_sent_although_off_is_not_applicable_unless_honoured() -> None:
    run = refusal_run()
    finding = connection.check_sni_rejected(run.ev)
    assert finding.inapplicable is not None
    assert "ignores sni" in finding.inapplicable and "'broker.test'" in finding.inapplicable
    run.ev.expectation.honours = frozenset({"sni"})
    finding = connection.check_sni_rejected(run.ev)
    assert finding.inapplicable is None and not finding.ok
    assert "claims to honour sni" in finding.message()


def test_crash_before_connecting_is_diagnosed_by_its_traceback() -> None:
    run = Run()
    run.say(console.wifi_connected("192.168.4.23"))
    run.say("Traceback (most recent call last):")
    run.say('  File "main.py", line 30, in connect')
    run.say("TypeError: function takes 3 positional arguments but 5 were given")
    text = diagnose(run.ev)
    assert "TypeError: function takes 3" in text
    assert "never reached the broker" not in text


def test_crash_before_wifi_names_the_error_not_wifi() -> None:
    run = Run()
    run.say("Traceback (most recent call last):")
    run.say('  File "main.py", line 3')
    run.say("SyntaxError: invalid syntax")
    assert "SyntaxError: invalid syntax" in diagnose(run.ev)


def test_callback_hint_only_for_the_crash_that_order_causes() -> None:
    run = good_run(messages=0)
    run.say("Traceback (most recent call last):")
    run.say('  File "main.py", line 60, in loop_publish')
    run.say("OSError: -202")
    message = messaging.check_retained_delivered(run.ev).message()
    assert "OSError: -202" in message and "set_callback" not in message
    assessed = good_run(messages=0)
    assessed.say("Traceback (most recent call last):")
    assessed.say('  File "umqtt/simple.py", line 170, in subscribe')
    assessed.say("AssertionError: Subscribe callback is not set")
    assert "set_callback() must come before subscribe()" in (
        messaging.check_retained_delivered(assessed.ev).message())


def test_nothing_delivered_because_never_subscribed() -> None:
    run = good_run()
    run.ev.serial = [s for s in run.ev.serial if "foreign-hello" not in s.text]
    run.ev.packets = [p for p in run.ev.packets if p.type != "SUBSCRIBE"
                      and p.fields.get("payload") != "foreign-hello"]
    message = failing(run.ev)["S8"].message()
    assert "never subscribed" in message and "but printed no" not in message


def test_s1_with_no_known_address_does_not_expect_0_0_0_0() -> None:
    run = good_run()
    run.ev.expectation.wifi_ip = None
    message = connection.check_wifi(run.ev).message()
    assert "0.0.0.0" not in message and "no address of its own" in message


def test_client_id_form_from_the_manifest() -> None:
    from harness.checks.evidence import ClientIdForm

    run = good_run()
    _replace_packets(run, "CONNECT", client_id="esp32-a1b2c3")
    assert "S2" in failing(run.ev)
    run.ev.expectation.client_id_form = ClientIdForm("re:esp32-[0-9a-f]{6}")
    assert "S2" not in failing(run.ev)


def test_a_failure_quotes_its_lines_a_malformed_one_too() -> None:
    run = good_run()
    send = next(s for s in run.ev.serial if console.SEND.match(s.text))
    garbled = send.text.replace(" to topic ", " to topics ")
    run.ev.serial[run.ev.serial.index(send)] = SerialLine(send.time, garbled)
    message = failing(run.ev)["S6"].message()
    assert f"    | {garbled}" in message, message
    assert f"    | {console.send(json.dumps({'msg': 1}), TOPIC)}" in message
