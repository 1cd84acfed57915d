"""The paho observer: per-filter callbacks, retained messages, readable reason codes,
paho's log routed to the test log, and clear errors."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from harness.broker import AmqttBroker, Observer, ObserverError, Tap, TapTls, TestPki
from harness.broker.base import pick_free_port
from harness.broker.observer import connack_code_311, describe_connack
from harness.errors import BrokerUnreachable, DeadlineExceeded, PkiError

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def broker() -> Iterator[AmqttBroker]:
    with AmqttBroker(users={"emqx": "public"}) as running:
        yield running


@pytest.fixture
def observer(broker: AmqttBroker) -> Iterator[Observer]:
    with Observer(broker.host, broker.port, username="emqx", password="public") as running:
        yield running


def test_messages_are_kept_per_filter(observer: Observer) -> None:
    observer.subscribe("sensors/+/temp")
    observer.subscribe("alarms/#")
    for topic in ("sensors/a/temp", "alarms/fire/1", "sensors/b/temp"):
        observer.publish(topic, topic)
    observer.wait_for_messages(3)
    assert [m.topic for m in observer.messages("sensors/+/temp")] == [
        "sensors/a/temp",
        "sensors/b/temp",
    ]
    assert [m.topic for m in observer.messages("alarms/#")] == ["alarms/fire/1"]


def test_retained_message_reaches_a_late_subscriber_until_cleared(
    broker: AmqttBroker, observer: Observer
) -> None:
    observer.publish("ret/t", "retained-hello", qos=1, retain=True)
    with Observer(broker.host, broker.port, username="emqx", password="public") as late:
        late.subscribe("ret/t")
        [message] = late.wait_for_messages(1, "ret/t")
        assert (message.text, message.retain) == ("retained-hello", True)
    observer.clear_retained("ret/t")
    with Observer(broker.host, broker.port, username="emqx", password="public") as later:
        later.subscribe("ret/t")
        with pytest.raises(DeadlineExceeded, match="1 message"):
            later.wait_for_messages(1, "ret/t", timeout=0.5)


def test_wait_for_messages_timeout_says_what_was_received(observer: Observer) -> None:
    observer.subscribe("few/t")
    observer.publish("few/t", "only-one")
    with pytest.raises(
        DeadlineExceeded, match=r"3 message\(s\) on few/t; last seen: 1 received, last 'only-one'"
    ):
        observer.wait_for_messages(3, "few/t", timeout=1)


def test_connack_codes_become_words() -> None:
    refused = ReasonCode(PacketTypes.CONNACK, "Not authorized")
    assert connack_code_311(refused) == 5
    assert (
        describe_connack(refused)
        == "Not authorized (CONNACK 5: Connection Refused: not authorised.)"
    )
    assert connack_code_311(ReasonCode(PacketTypes.CONNACK, "Bad user name or password")) == 4


def test_paho_log_goes_to_the_test_log_without_the_password(
    broker: AmqttBroker, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.DEBUG, logger="harness.broker.observer"),
        Observer(broker.host, broker.port, username="emqx", password="public",
                 client_id="logged") as observer,
    ):  # fmt: skip
        observer.subscribe("log/t")
    text = caplog.text
    assert "paho logged: Sending CONNECT" in text and "Received SUBACK" in text
    assert "public" not in text
    assert CallbackAPIVersion.VERSION2  # the observer is built on the v2 callback API


def test_unreachable_broker_is_one_clear_line() -> None:
    port = pick_free_port("127.0.0.1")
    with pytest.raises(BrokerUnreachable, match=f"observer cannot reach 127.0.0.1:{port}") as info:
        Observer("127.0.0.1", port).start(timeout=3)
    assert "\n" not in str(info.value)


def test_missing_ca_file_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match=r"CA file .*ca.pem does not exist"):
        Observer("127.0.0.1", 1, ca_file=tmp_path / "ca.pem")


def test_tls_refusal_is_one_clear_line(broker: AmqttBroker, tmp_path: Path) -> None:
    pki = TestPki.create(tmp_path)
    with Tap((broker.host, broker.port), TapTls(pki.untrusted)) as tap:
        observer = Observer("127.0.0.1", tap.port, ca_file=pki.ca_pem, server_hostname="localhost")
        with pytest.raises(
            ObserverError, match=r"observer TLS handshake .* CERTIFICATE_VERIFY_FAILED"
        ):
            observer.start()
