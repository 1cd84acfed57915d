"""S4–S8: retained delivery, SUBSCRIBE, PUBLISH, echo and foreign messages.

They share one run (the messaging scenario): a retained message waits on the topic, the
device connects after a 2.5 s Wi-Fi association, and another client publishes mid-run."""

import pytest

from harness.checks import messaging
from harness.hil import scenario
from harness.pytest_plugin import HilRunner, assert_spec

pytestmark = pytest.mark.hil


def test_s4_retained_message_reaches_callback_set_before_subscribe(hil_run: HilRunner) -> None:
    assert_spec(messaging.check_retained_delivered(hil_run(scenario.MESSAGING).evidence))


def test_s5_subscribes_to_topic_qos0_before_publishing(hil_run: HilRunner) -> None:
    assert_spec(messaging.check_subscribe(hil_run(scenario.MESSAGING).evidence))


def test_s6_publishes_consecutive_json_counter(hil_run: HilRunner) -> None:
    assert_spec(messaging.check_publish(hil_run(scenario.MESSAGING).evidence))


def test_s7_echo_in_order_on_serial_and_at_observer(hil_run: HilRunner) -> None:
    assert_spec(messaging.check_echo(hil_run(scenario.MESSAGING).evidence))


def test_s7_echo_over_tls(hil_run: HilRunner) -> None:
    assert_spec(messaging.check_echo(hil_run(scenario.TLS_SNI).evidence))


def test_s8_foreign_message_printed(hil_run: HilRunner) -> None:
    assert_spec(messaging.check_foreign(hil_run(scenario.MESSAGING).evidence))
