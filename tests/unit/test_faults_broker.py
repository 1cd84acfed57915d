"""Broker restarts as a fault, on amqtt and mosquitto: the broker goes away (clients see
the connection end), comes back on the same port, with or without its retained messages,
and the observer resubscribes by itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.broker import Observer, Tap, open_broker
from harness.broker.base import LocalBroker
from harness.broker.mosquitto_broker import INSTALL_HINT, find_mosquitto
from harness.errors import BrokerNotInstalled
from harness.faults import AtTime, Fault, FaultInjector, FaultKind, FaultNotApplicable

pytestmark = pytest.mark.unit


@pytest.fixture(params=["amqtt", "mosquitto"])
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LocalBroker]:
    if request.param == "mosquitto":
        try:
            find_mosquitto()
        except BrokerNotInstalled:
            pytest.skip(f"mosquitto is not installed; {INSTALL_HINT}")
    running = open_broker(request.param, workdir=tmp_path / "broker")
    assert isinstance(running, LocalBroker)
    with running:
        yield running


@pytest.mark.parametrize("keep_state", [True, False])
def test_restart_on_the_same_port_with_and_without_state(broker: LocalBroker, tmp_path: Path,
                                                         keep_state: bool) -> None:
    port = broker.port
    with Tap((broker.host, port)) as tap, Observer(broker.host, port) as observer:
        observer.publish("keep/t", "retained-before", qos=1, retain=True)
        observer.subscribe("live/t")
        injector = FaultInjector(tap, broker)
        with Observer("127.0.0.1", tap.port):  # a client through the tap
            started = injector.start(Fault(FaultKind.BROKER_RESTART, AtTime(0), 1.0,
                                           keep_state=keep_state))
            tap.wait_for(lambda r: r.kind == "close", 10, "the tap's client to be dropped")
            injector.end(started)
        assert broker.port == port
        observer.wait_ready(timeout=10)
        observer.publish("live/t", "after")  # paho reconnected and renewed its subscription
        assert observer.wait_for_messages(1, "live/t", timeout=10)[0].text == "after"
        with Observer(broker.host, port) as fresh:
            fresh.subscribe("keep/t")
            if keep_state:
                assert fresh.wait_for_messages(1, "keep/t", timeout=5)[0].text == \
                    "retained-before"
            else:
                with pytest.raises(Exception, match="timed out"):
                    fresh.wait_for_messages(1, "keep/t", timeout=1.5)
    kinds = [(e.phase, e.fault.kind) for e in injector.events]
    assert kinds == [("start", FaultKind.BROKER_RESTART), ("end", FaultKind.BROKER_RESTART)]


def test_an_external_broker_cannot_be_restarted(tmp_path: Path) -> None:
    with pytest.raises(FaultNotApplicable, match="not an external one"):
        FaultInjector(tap=None, broker=object()).check(
            [Fault(FaultKind.BROKER_RESTART, duration_s=1)])


def test_the_device_is_let_back_only_after_the_observer_resubscribed(
    broker: LocalBroker,
) -> None:
    """While the broker is away nothing listens at the tap; once it is back the tap still
    refuses until the observer (the witness of R3) has reconnected and resubscribed, so a
    device quicker than paho cannot publish before the witness can see it."""
    import socket

    def tap_refuses(port: int) -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        except ConnectionRefusedError:
            return True
        return False

    with Tap((broker.host, broker.port)) as tap, Observer(broker.host, broker.port) as observer:
        observer.subscribe("live/t")
        seen: list[tuple[bool, bool]] = []  # (broker back, tap refusing) when asked

        class Witness:
            def wait_ready(self) -> None:
                observer.wait_ready(timeout=10)
                seen.append((broker.port is not None, tap_refuses(tap.port)))

        injector = FaultInjector(tap, broker, observer=Witness())
        started = injector.start(Fault(FaultKind.BROKER_RESTART, AtTime(0), 1.0))
        assert tap_refuses(tap.port)  # the broker is away: nothing listens
        injector.end(started)
        assert seen == [(True, True)]  # the observer was ready while the tap still refused
        assert not tap_refuses(tap.port)  # and then the device was let through
