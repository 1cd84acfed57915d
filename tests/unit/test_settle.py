"""Wire evidence that ends a run's waits (harness.hil.settle): each rule settles the run
exactly when the wire shows that what the rig waits for cannot come, and not before."""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest

from harness.broker.tap_records import TapRecord
from harness.device.serial_log import SerialLog
from harness.errors import ExpectTimeout, RunSettled
from harness.faults import AfterEchoes, Fault
from harness.faults.model import START, FaultEvent
from harness.hil.follow import RunFollower
from harness.hil.settle import (
    Accepted,
    DeliveryOrder,
    EchoCannotCome,
    LossNeverNoticed,
    TlsToPlain,
)
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


def delivered(conn: int, payload: str, topic: str = TOPIC) -> TapRecord:
    return TapRecord(next(_seq), RecordKind.PACKET, conn, 0.0, 0.0,
                     WireDirection.BROKER_TO_CLIENT, PacketType.PUBLISH,
                     {"topic": topic, "payload": payload.encode()})


def test_a_device_that_prints_a_later_message_has_read_past_a_dropped_one() -> None:
    order = DeliveryOrder(TOPIC)
    for record in (delivered(1, "retained-hello"), delivered(1, '{"msg": 1}'),
                   delivered(1, "foreign-hello"), delivered(1, '{"msg": 2}'),
                   delivered(1, '{"msg": 3}', topic="hil/abc/other")):
        order(record)
    # What it printed before the foreign message proves nothing; the echo after it does.
    assert not order.read_past("foreign-hello", ["retained-hello", '{"msg": 1}'])
    assert not order.read_past("foreign-hello", ['{"msg": 3}'])  # another topic's
    assert order.read_past("foreign-hello", ['{"msg": 1}', '{"msg": 2}'])
    assert not order.read_past("never-delivered", ['{"msg": 2}'])


def test_only_a_message_delivered_once_on_the_same_connection_proves_the_read() -> None:
    order = DeliveryOrder(TOPIC)
    for record in (delivered(1, '{"msg": 0}'), delivered(1, "foreign-hello"),
                   delivered(1, '{"msg": 0}'),  # a stuck counter: which copy was printed?
                   delivered(2, '{"msg": 1}')):  # after a reconnect: another socket
        order(record)
    assert not order.read_past("foreign-hello", ['{"msg": 0}', '{"msg": 1}'])


def black_hole_begins() -> TapRecord:
    event = FaultEvent(time.time(), time.monotonic(), START, Fault.black_hole(AfterEchoes(3)))
    return TapRecord(next(_seq), RecordKind.FAULT, 0, event.wall_time, event.mono_time,
                     fields=event.fields())


def test_a_black_hole_never_noticed_settles_the_run_at_r1s_bound() -> None:
    run = follower()
    rule = LossNeverNoticed(run, bound_s=0.3, margin_s=0.1)
    rule(publish(1))  # before the hole: what the device does then is no sign
    rule(black_hole_begins())
    started = time.monotonic()
    with pytest.raises(RunSettled, match=r"still held the connection 0\.4 s after the black"):
        run.until(lambda r: False, 10.0, "the 7th Send line")
    assert 0.35 < time.monotonic() - started < 2.0  # at the bound, not at the timeout


@pytest.mark.parametrize("sign", ["open", "close"])
def test_a_device_that_gives_the_silent_connection_up_is_waited_for(sign: str) -> None:
    run = follower()
    rule = LossNeverNoticed(run, bound_s=0.2, margin_s=0.1)
    rule(black_hole_begins())
    kind = RecordKind.OPEN if sign == "open" else RecordKind.CLOSE
    rule(TapRecord(next(_seq), kind, 2 if sign == "open" else 1, 0.0, 0.0,
                   detail="client closed the connection" if sign == "close" else "from x"))
    with pytest.raises(ExpectTimeout):  # no settling: the reconnect is worth waiting for
        run.until(lambda r: False, 0.6, "the 7th Send line")
