"""Bad input gets one clear line: a busy port, a missing cert or key, mosquitto missing,
an unreachable or malformed external URL, an unknown backend."""

from __future__ import annotations

import random
import shutil
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.broker import ExternalBroker, TestPki, open_broker
from harness.broker.base import pick_free_port
from harness.broker.mosquitto_broker import find_mosquitto
from harness.errors import (
    BrokerError,
    BrokerNotInstalled,
    BrokerUnreachable,
    ConfigError,
    HarnessError,
    PkiError,
    PortInUse,
)

pytestmark = pytest.mark.unit


def one_line(error: pytest.ExceptionInfo[HarnessError]) -> str:
    text = str(error.value)
    assert "\n" not in text and text.strip() == text
    return text


def skip_without(backend: str) -> None:
    if backend == "mosquitto":
        try:
            find_mosquitto()
        except BrokerNotInstalled as exc:
            pytest.skip(str(exc))


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


@pytest.mark.parametrize("backend", ["amqtt", "mosquitto"])
def test_port_in_use(backend: str, busy_port: int, tmp_path: Path) -> None:
    skip_without(backend)
    broker = open_broker(backend, workdir=tmp_path, port=busy_port)
    with pytest.raises(PortInUse) as info:
        broker.start()
    assert f"port {busy_port} on 127.0.0.1 is already in use" in one_line(info)
    assert "pass port 0" in str(info.value)


@pytest.mark.parametrize("backend", ["amqtt", "mosquitto"])
@pytest.mark.parametrize("missing", ["chain_pem", "key_pem"])
def test_missing_cert_or_key(backend: str, missing: str, tmp_path: Path) -> None:
    pki = TestPki.create(tmp_path / "pki")
    getattr(pki.server, missing).unlink()
    what = "certificate" if missing == "chain_pem" else "private key"
    skip_without(backend)
    with pytest.raises(PkiError) as info:
        open_broker(backend, tls=pki.server, workdir=tmp_path / "b").start()
    assert f"server {what} file" in one_line(info) and "does not exist" in str(info.value)


def test_mosquitto_not_installed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(shutil, "which", lambda *_args, **_kwargs: None)
    with pytest.raises(BrokerNotInstalled) as info:
        open_broker("mosquitto", workdir=tmp_path).start()
    assert "mosquitto is not installed" in one_line(info)
    assert "apt-get install mosquitto" in str(info.value)
    assert list(tmp_path.iterdir()) == []  # nothing written, nothing left running


def test_unreachable_external_url_hides_the_password() -> None:
    port = pick_free_port("127.0.0.1")
    broker = open_broker(f"mqtt://emqx:hunter22@127.0.0.1:{port}")
    with pytest.raises(BrokerUnreachable) as info:
        broker.start(timeout=3)
    text = one_line(info)
    assert f"cannot reach broker mqtt://emqx:***@127.0.0.1:{port}" in text
    assert "hunter22" not in text


def test_unresolvable_external_host() -> None:
    with pytest.raises(
        BrokerUnreachable, match=r"cannot reach broker mqtts://no-such-host\.invalid"
    ):
        open_broker("mqtts://no-such-host.invalid:8883").start(timeout=3)


@pytest.mark.parametrize("url", ["http://broker.test:1883", "ws://u:pw@host", "broker.test://x"])
def test_bad_url_scheme(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        open_broker(url)
    assert "unsupported URL scheme" in one_line(info)
    assert "mqtts://user:pass@host:8883" in str(info.value) and ":pw@" not in str(info.value)


def test_bad_url_port() -> None:
    with pytest.raises(ConfigError, match="bad broker URL"):
        open_broker("mqtt://host:99999")


def test_external_url_parts() -> None:
    broker = ExternalBroker("mqtts://emqx:p%40ss@broker.test")
    assert (broker.host, broker.tls_port, broker.username, broker.password) == (
        "broker.test", 8883, "emqx", "p@ss",
    )  # fmt: skip
    with pytest.raises(BrokerError, match="no plain-TCP listener"):
        _ = broker.port
    assert ExternalBroker("mqtt://h").port == 1883


def test_external_missing_ca_file(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match=r"CA file .* does not exist"):
        open_broker("mqtts://broker.test", ca_file=tmp_path / "nope.pem")


def test_external_broker_reachable(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with open_broker(f"mqtt://127.0.0.1:{port}") as broker:
            assert broker.port == port and broker.events() == []


def test_unknown_backend() -> None:
    with pytest.raises(BrokerError) as info:
        open_broker("rabbit")
    assert "unknown broker 'rabbit'" in one_line(info)


def _garbage_clients(port: int, count: int, seed: int) -> None:
    """Connect ``count`` clients that send random bytes; every third resets (RST)."""
    rng = random.Random(seed)
    linger_rst = struct.pack("ii", 1, 0)
    for i in range(count):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client.sendall(rng.randbytes(rng.randint(1, 300)))
            if i % 3 == 0:
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger_rst)


def test_garbage_clients_are_logged_as_one_line_each(tmp_path: Path,
                                                      capfd: pytest.CaptureFixture[str]) -> None:
    broker = open_broker("amqtt", workdir=tmp_path / "broker")
    broker.start()
    try:
        _garbage_clients(broker.port, 300, seed=7)
        with socket.create_connection(("127.0.0.1", broker.port), timeout=5):
            pass  # still accepting after the storm
    finally:
        broker.stop()
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err, err[-2000:]
    assert broker.log_path is not None
    log = broker.log_path.read_text(encoding="utf-8")
    assert "Traceback" not in log, log[-2000:]
    dropped = [line for line in log.splitlines() if " dropped: " in line]
    assert dropped, "no bad client was logged"
    assert all(line.count(":") >= 2 and "\n" not in line for line in dropped)
