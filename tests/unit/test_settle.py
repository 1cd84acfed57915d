"""Wire evidence that ends a run's waits (harness.hil.settle): each rule settles the run
exactly when the wire shows that what the rig waits for cannot come, and not before."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from harness.broker.tap_records import TapRecord
from harness.device.serial_log import SerialLog
from harness.hil.follow import RunFollower
from harness.hil.settle import Accepted, EchoCannotCome, TlsToPlain
from harness.wire import PacketType, RecordKind, WireDirection, filter_matches

pytestmark = pytest.mark.unit

TOPIC = "hil/abc/messaging"
_seq = itertools.count(1)


def packet(conn: int, kind: PacketType, **fields: Any) -> TapRecord:
    return TapRecord(next(_seq), RecordKind.PACKET, conn, 0.0, 0.0,
                     WireDirection.CLIENT_TO_BROKER, kind, fields)


def connect(conn: int, clean: bool = True) -> TapRecord:
    return packet(conn, PacketType.CONNECT, clean_session=clean)


def subscribe(conn: int, *filters: str) -> TapRecord:
    return packet(conn, PacketType.SUBSCRIBE, topics=[{"filter": f, "qos": 0} for f in filters])


def publish(conn: int, topic: str = TOPIC) -> TapRecord:
    return packet(conn, PacketType.PUBLISH, topic=topic, payload=b'{"msg": 0}')


def follower() -> RunFollower:
    log = SerialLog()
    return RunFollower(log, log.mark("hard reset"))


@pytest.mark.parametrize(("topic_filter", "covers"), [
    (TOPIC, True), ("hil/+/messaging", True), ("hil/#", True), ("#", True),
    (TOPIC + "/elsewhere", False), ("hil/+", False), ("hil/abc/other", False),
])
def test_topic_filters_match_as_mqtt_says(topic_filter: str, covers: bool) -> None:
    assert filter_matches(topic_filter, TOPIC) is covers
    assert not filter_matches("#", "$SYS/broker")  # §4.7.2: $ topics need their own filter


def test_a_ping_after_publishing_to_a_topic_never_subscribed_settles_the_run() -> None:
    run = follower()
    rule = EchoCannotCome(run, TOPIC)
    for record in (connect(1), subscribe(1, TOPIC + "/elsewhere"), publish(1)):
        rule(record)
    assert run.settled is None  # the device may still do something about it
    rule(packet(1, PacketType.PINGREQ))
    assert run.settled is not None
    assert "cannot come" in run.settled and "'hil/abc/messaging/elsewhere'" in run.settled


def test_a_reconnect_that_does_not_subscribe_again_settles_the_run() -> None:
    run = follower()
    rule = EchoCannotCome(run, TOPIC)
    for record in (connect(1), subscribe(1, TOPIC), publish(1), packet(1, PacketType.PINGREQ),
                   connect(2), publish(2)):
        rule(record)
    assert run.settled is None  # connection 1 was subscribed
    rule(packet(2, PacketType.PINGREQ))
    assert run.settled is not None and "#2" in run.settled and "subscribed to nothing" in (
        run.settled)


@pytest.mark.parametrize("records", [
    pytest.param([connect(1), subscribe(1, "hil/+/messaging"), publish(1)], id="wildcard"),
    pytest.param([connect(1), publish(1), subscribe(1, TOPIC)], id="subscribed-late"),
    pytest.param([connect(1, clean=False), publish(1)], id="persistent-session"),
    pytest.param([connect(1), subscribe(1, TOPIC + "/x"), publish(1, "other/topic")],
                 id="another-topic"),
])
def test_no_settling_while_an_echo_can_still_come(records: list[TapRecord]) -> None:
    run = follower()
    rule = EchoCannotCome(run, TOPIC)
    for record in [*records, packet(1, PacketType.PINGREQ)]:
        rule(record)
    assert run.settled is None


def test_a_tls_client_hello_on_the_plain_port_settles_the_run() -> None:
    run = follower()
    rule = TlsToPlain(run)
    rule(connect(1))
    assert run.settled is None
    rule(TapRecord(next(_seq), RecordKind.DECODE_ERROR, 3, 0.0, 0.0,
                   WireDirection.CLIENT_TO_BROKER, None, {"sample": "16030100f8010000f4"}))
    assert run.settled is not None and "#3" in run.settled


def test_connack_0_settles_a_run_that_waits_for_a_refusal() -> None:
    run = follower()
    rule = Accepted(run)
    for code in (5, 3):  # refusals (and retries) are what the run waits for
        rule(TapRecord(next(_seq), RecordKind.PACKET, 1, 0.0, 0.0,
                       WireDirection.BROKER_TO_CLIENT, PacketType.CONNACK, {"return_code": code}))
    rule(connect(2))
    assert run.settled is None
    rule(TapRecord(next(_seq), RecordKind.PACKET, 2, 0.0, 0.0, WireDirection.BROKER_TO_CLIENT,
                   PacketType.CONNACK, {"return_code": 0}))
    assert run.settled is not None and "CONNACK 0" in run.settled
