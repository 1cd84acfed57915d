"""TLS as the guide does it (PEM CA as cadata, CERT_REQUIRED, server_hostname for SNI) on
the real MicroPython interpreter and mbedTLS, against a CPython TLS front that records SNI;
and the umqtt.simple generation detection, with small fake clients for the generations
whose code is not on the package registry (1.4.x, 1.6+)."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from harness import lifetime
from tests.unit.test_device_program_rig import (
    DEVICE_SRC,
    MICROPYTHON,
    Flash,
    Mosquitto,
    TlsFront,
    running,
    umqtt_134,
)

pytestmark = pytest.mark.unit

SERVER = "localhost"  # resolves here, and names the certificate, like a broker host


@pytest.fixture(scope="module")
def umqtt_dir() -> Path:
    return umqtt_134()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pki")
    ca, rogue = trustme.CA(), trustme.CA()
    now = datetime.datetime.now(datetime.UTC)
    leaves = {
        "good": ca.issue_cert(SERVER, "127.0.0.1"),
        "wrong-host": ca.issue_cert("broker.elsewhere.test"),
        "untrusted": rogue.issue_cert(SERVER),
        "expired": ca.issue_cert(SERVER, not_before=now - datetime.timedelta(days=30),
                                 not_after=now - datetime.timedelta(days=1)),
    }
    paths = {"ca": root / "ca.pem"}
    ca.cert_pem.write_to_path(paths["ca"])
    for name, leaf in leaves.items():
        leaf.cert_chain_pems[0].write_to_path(root / f"{name}.crt")
        leaf.private_key_pem.write_to_path(root / f"{name}.key")
        paths[name] = root / name
    return paths


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "broker") as mosq:
        yield mosq


def start_front(pki: dict[str, Path], cert: str, broker: Mosquitto,
                require_sni: bool = False) -> TlsFront:
    return TlsFront(pki[cert].with_suffix(".crt"), pki[cert].with_suffix(".key"),
                    broker.port, require_sni=require_sni)


def tls_flash(tmp_path: Path, umqtt_dir: Path, pki: dict[str, Path], port: int,
              **extra: Any) -> Flash:
    flash = Flash(tmp_path / "flash", umqtt_dir)
    flash.write("/ca.pem", pki["ca"].read_bytes())
    flash.write_settings({"server": SERVER, "port": port, "tls": True, "ca_file": "/ca.pem",
                          "topic": "raspberry/mqtt", "wifi_ssid": "lab",
                          "wifi_password": "lab-secret", "publish_interval": 0.2, **extra})
    return flash


@pytest.mark.mosquitto
def test_tls_with_pem_ca_and_sni_connects_and_sends_the_server_name(
        tmp_path: Path, umqtt_dir: Path, pki: dict[str, Path], broker: Mosquitto) -> None:
    front = start_front(pki, "good", broker, require_sni=True)
    try:
        with running(tls_flash(tmp_path, umqtt_dir, pki, front.port)) as device:
            device.expect(r"^Received '\{\"msg\": 1\}' from topic 'raspberry/mqtt'")
    finally:
        front.stop()
    assert f'Connected to MQTT Broker "{SERVER}"' in device.lines
    assert front.handshakes == [SERVER]


@pytest.mark.mosquitto
@pytest.mark.parametrize("cert", ["untrusted", "wrong-host", "expired"])
def test_a_bad_server_certificate_is_refused_with_a_tls_error(
        tmp_path: Path, umqtt_dir: Path, pki: dict[str, Path], broker: Mosquitto,
        cert: str) -> None:
    front = start_front(pki, cert, broker)
    try:
        with running(tls_flash(tmp_path, umqtt_dir, pki, front.port)) as device:
            lines = device.wait_exit(30)
    finally:
        front.stop()
    errors = [line for line in lines if line.startswith("ERROR ")]
    assert len(errors) == 1, lines
    assert errors[0].startswith("ERROR tls: certificate verification failed"), lines
    assert not any(line.startswith("Connected to MQTT Broker") for line in lines)
    assert "Traceback" not in "\n".join(lines)


@pytest.mark.mosquitto
def test_sni_off_sends_no_server_hostname(tmp_path: Path, umqtt_dir: Path,
                                          pki: dict[str, Path], broker: Mosquitto) -> None:
    """With sni false the device passes no server_hostname. This interpreter's mbedTLS
    (like ESP32 firmware v1.22+) then refuses CERT_REQUIRED before any ClientHello, so the
    broker never sees a handshake; the device says why in one line."""
    front = start_front(pki, "good", broker, require_sni=True)
    try:
        flash = tls_flash(tmp_path, umqtt_dir, pki, front.port, sni=False)
        with running(flash) as device:
            lines = device.wait_exit(30)
    finally:
        front.stop()
    assert [line for line in lines if line.startswith("ERROR ")] == [
        "ERROR tls: this firmware cannot verify the server without SNI (sni is false): "
        "CERT_REQUIRED requires server_hostname"]
    assert SERVER not in front.handshakes


# --- umqtt.simple generations, by feature ------------------------------------------
# Fake clients that take the constructor arguments of each generation and do what its
# connect() does with them for TLS, recording the wrap call instead of opening a socket.
FAKES = """\
import sys
calls = []
class _Sock:
    def close(self):
        pass
class FakeSsl:
    CERT_REQUIRED = 2
    PROTOCOL_TLS_CLIENT = 0
    class SSLContext:
        def __init__(self, protocol):
            self.verify_mode = 0
            self.cadata = None
        def load_verify_locations(self, cadata=None):
            self.cadata = cadata
        def wrap_socket(self, sock, server_hostname=None):
            calls.append(("context", self.verify_mode, self.cadata, server_hostname))
            return sock
    @staticmethod
    def wrap_socket(sock, **params):
        calls.append(("params", params.get("cert_reqs"), params.get("cadata"),
                      params.get("server_hostname")))
        return sock
sys.modules["ssl"] = FakeSsl
class MQTTException(Exception):
    pass
class Gen13:  # 1.3.x: ssl=False default, ssl_params -> ussl.wrap_socket(**ssl_params)
    def __init__(self, client_id, server, port=0, user=None, password=None, keepalive=0,
                 ssl=False, ssl_params={}):
        self.server, self.ssl, self.ssl_params, self.sock = server, ssl, ssl_params, None
    def connect(self, clean_session=True):
        self.sock = _Sock()
        if self.ssl:
            self.sock = FakeSsl.wrap_socket(self.sock, **self.ssl_params)
class Gen14:  # 1.4.x: ssl=<SSLContext> only; SNI = server
    def __init__(self, client_id, server, port=0, user=None, password=None, keepalive=0,
                 ssl=None):
        self.server, self.ssl, self.sock = server, ssl, None
    def connect(self, clean_session=True):
        self.sock = _Sock()
        if self.ssl:
            self.sock = self.ssl.wrap_socket(self.sock, server_hostname=self.server)
class Gen16(Gen13):  # 1.6+: ssl=True + ssl_params, or ssl=<SSLContext>
    def __init__(self, client_id, server, port=0, user=None, password=None, keepalive=0,
                 ssl=None, ssl_params={}):
        self.server, self.ssl, self.ssl_params, self.sock = server, ssl, ssl_params, None
    def connect(self, clean_session=True, timeout=None):
        self.sock = _Sock()
        if self.ssl is True:
            self.sock = FakeSsl.wrap_socket(self.sock, **self.ssl_params)
        elif self.ssl:
            self.sock = self.ssl.wrap_socket(self.sock, server_hostname=self.server)
class _Umqtt:
    MQTTClient = Gen13
    MQTTException = MQTTException
sys.modules["umqtt"] = _Umqtt
sys.modules["umqtt.simple"] = _Umqtt
sys.path.insert(0, SRC_DIR)
import mqtt
base = {"server": "broker.example", "port": 8883, "tls": True, "sni": True,
        "keepalive": 0, "user": None, "password": None}
for cls in (Gen13, Gen14, Gen16):
    for sni in (True, False):
        del calls[:]
        mqtt.make_client(dict(base, sni=sni), "id", b"PEM", cls).connect()
        print(cls.__name__, sni, mqtt.generation(cls), calls[0])
"""


def test_each_umqtt_generation_gets_its_call_form_and_sni_as_configured(
        tmp_path: Path) -> None:
    script = tmp_path / "fakes.py"
    script.write_text(FAKES.replace("SRC_DIR", repr(str(DEVICE_SRC))))
    out = lifetime.run([str(MICROPYTHON), str(script)], capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines() == [
        # generation, sni -> detected form, (wrap path, cert_reqs, cadata, server_hostname)
        "Gen13 True ssl_params ('params', 2, b'PEM', 'broker.example')",
        "Gen13 False ssl_params ('params', 2, b'PEM', None)",
        "Gen14 True context ('context', 2, b'PEM', 'broker.example')",
        "Gen14 False context ('context', 2, b'PEM', None)",
        "Gen16 True both ('context', 2, b'PEM', 'broker.example')",
        "Gen16 False both ('params', 2, b'PEM', None)",
    ]


@pytest.mark.mosquitto
def test_a_ca_file_that_is_not_a_certificate_is_named(
        tmp_path: Path, umqtt_dir: Path, pki: dict[str, Path], broker: Mosquitto) -> None:
    front = start_front(pki, "good", broker)
    try:
        flash = tls_flash(tmp_path, umqtt_dir, pki, front.port)
        flash.write("/ca.pem", b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n"
                               b"-----END CERTIFICATE-----\n")
        with running(flash) as device:
            lines = device.wait_exit(30)
    finally:
        front.stop()
    assert [line for line in lines if line.startswith("ERROR ")] == [
        "ERROR tls: ca_file /ca.pem is not a valid CA certificate (invalid cert)"]
