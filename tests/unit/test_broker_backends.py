"""amqtt and mosquitto pass the same tests: auth, CONNACK 5, TLS listener, ordering,
broker events, clean stop. mosquitto tests skip (with the install command) if absent."""

from __future__ import annotations

import logging
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt import client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from harness import lifetime
from harness.broker import Broker, Observer, ObserverError, TestPki, open_broker
from harness.broker.mosquitto_broker import INSTALL_HINT, find_mosquitto
from harness.deadline import Deadline
from harness.errors import BrokerNotInstalled

pytestmark = pytest.mark.unit
USERS = {"emqx": "public"}


def _require(backend: str) -> None:
    if backend == "mosquitto":
        try:
            find_mosquitto()
        except BrokerNotInstalled:
            pytest.skip(f"mosquitto is not installed; {INSTALL_HINT}")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return TestPki.create(tmp_path_factory.mktemp("pki"))


@pytest.fixture(params=["amqtt", "mosquitto"])
def broker(request: pytest.FixtureRequest, pki: TestPki, tmp_path: Path) -> Iterator[Broker]:
    _require(request.param)
    with open_broker(request.param, users=USERS, tls=pki.server, workdir=tmp_path) as running:
        yield running


class PahoProbe:
    """An unmodified paho client that records the CONNACK reason code."""

    def __init__(self, client_id: str, username: str | None, password: str | None) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv311)  # fmt: skip
        if username is not None:
            self.client.username_pw_set(username, password)
        self.reason: Any = None
        self._done = threading.Event()
        self.client.on_connect = self._on_connect

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason_code: Any, _p: Any) -> None:
        self.reason = reason_code
        self._done.set()

    def connect(self, host: str, port: int, timeout: float = 10.0) -> Any:
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        try:
            if not self._done.wait(Deadline(timeout, "CONNACK").remaining()):
                raise AssertionError(f"no CONNACK from {host}:{port} within {timeout} s")
            return self.reason
        finally:
            self.client.disconnect()
            self.client.loop_stop()


def test_right_credentials_are_accepted(broker: Broker) -> None:
    reason = PahoProbe("ok-client", "emqx", "public").connect(broker.host, broker.port)
    assert reason == 0 and str(reason) == "Success"


@pytest.mark.parametrize(("username", "password"), [("emqx", "wrong"), ("nobody", "public")])
def test_wrong_credentials_get_connack_5(broker: Broker, username: str, password: str) -> None:
    reason = PahoProbe("bad-client", username, password).connect(broker.host, broker.port)
    assert str(reason) == "Not authorized"  # paho 2.x's name for MQTT 3.1.1 CONNACK 5


def test_observer_refused_with_a_readable_reason(broker: Broker) -> None:
    with pytest.raises(ObserverError, match=r"Not authorized \(CONNACK 5"):
        Observer(broker.host, broker.port, username="emqx", password="nope").start()


def test_observer_sees_publishes_in_order(broker: Broker) -> None:
    with (
        Observer(broker.host, broker.port, username="emqx", password="public") as watcher,
        Observer(broker.host, broker.port, username="emqx", password="public") as sender,
    ):
        watcher.subscribe("order/#")
        for n in range(20):
            sender.publish("order/x", f'{{"msg": {n}}}')
        got = watcher.wait_for_messages(20, "order/#", timeout=15)
    assert [m.text for m in got] == [f'{{"msg": {n}}}' for n in range(20)]


def test_tls_listener_accepts_a_client_that_trusts_the_ca(broker: Broker, pki: TestPki) -> None:
    assert broker.tls_port is not None
    with Observer(broker.host, broker.tls_port, ca_file=pki.ca_pem, server_hostname="broker.test",
                  username="emqx", password="public") as tls_observer:  # fmt: skip
        tls_observer.subscribe("tls/t")
        tls_observer.publish("tls/t", "over tls")
        assert tls_observer.wait_for_messages(1, "tls/t")[0].payload == b"over tls"


def test_broker_events_name_the_client(broker: Broker) -> None:
    with Observer(broker.host, broker.port, username="emqx", password="public",
                  client_id="evidence-client") as observer:  # fmt: skip
        observer.subscribe("ev/t")
        observer.publish("ev/t", "x")
        observer.wait_for_messages(1)

    def own_events() -> list[str] | None:
        kinds = [e.kind for e in broker.events() if e.client_id == "evidence-client"]
        return kinds if "disconnect" in kinds else None  # broker events arrive asynchronously

    kinds = Deadline(10, "the broker's disconnect event for evidence-client").poll(
        own_events, seen=lambda: repr(broker.events()[-3:])
    )
    assert kinds[0] == "connect" and kinds[-1] == "disconnect"
    assert {"subscribe", "publish"} <= set(kinds)
    connect = next(e for e in broker.events() if e.kind == "connect")
    assert connect.fields["username"] == "emqx" and connect.fields["keepalive"] == 30


@pytest.mark.parametrize("backend", ["amqtt", "mosquitto"])
def test_anonymous_only_when_no_users_given(backend: str, tmp_path: Path) -> None:
    _require(backend)
    with open_broker(backend, workdir=tmp_path) as anonymous:
        assert PahoProbe("anon", None, None).connect(anonymous.host, anonymous.port) == 0
        assert anonymous.tls_port is None


@pytest.mark.parametrize("backend", ["amqtt", "mosquitto"])
def test_stop_frees_the_port_and_is_idempotent(backend: str, tmp_path: Path) -> None:
    _require(backend)
    running = open_broker(backend, users=USERS, workdir=tmp_path).start()
    port = running.port
    running.stop()
    running.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert running.log_path is not None and running.log_path.exists()


def test_amqtt_log_puts_the_logger_levels_back(tmp_path: Path) -> None:
    loggers = [logging.getLogger("amqtt"), logging.getLogger("harness.broker.amqtt_broker")]
    before = [lg.level for lg in loggers]
    with open_broker("amqtt", workdir=tmp_path / "a"), open_broker("amqtt", workdir=tmp_path / "b"):
        assert all(lg.getEffectiveLevel() <= logging.INFO for lg in loggers)
    assert [lg.level for lg in loggers] == before


@pytest.mark.parametrize("backend", ["amqtt", "mosquitto"])
def test_log_is_kept_names_the_client_and_hides_the_password(backend: str, tmp_path: Path) -> None:
    _require(backend)
    with open_broker(backend, users=USERS, workdir=tmp_path) as running:
        PahoProbe("logged-client", "emqx", "public").connect(running.host, running.port)
    assert running.log_path is not None
    text = running.log_path.read_text()
    assert "logged-client" in text and "public" not in text


@pytest.mark.parametrize("backend", ["amqtt", "mosquitto"])
def test_a_forgotten_broker_leaves_nothing_behind_at_exit(backend: str, tmp_path: Path) -> None:
    _require(backend)
    script = (
        "from harness.broker import open_broker\n"
        f"b = open_broker({backend!r}, users={{'u': 'p'}}).start()\n"
        "pid = b._process.pid if hasattr(b, '_process') else 0\n"
        "print(pid, b.workdir, b.port, flush=True)\n"
    )  # exits without stop()
    result = lifetime.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60, check=True)  # fmt: skip
    pid, workdir, port = result.stdout.split()
    assert not Path(workdir).exists()
    if int(pid):  # mosquitto's process was terminated and reaped
        assert not Path(f"/proc/{pid}").exists()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", int(port)), timeout=2).close()
