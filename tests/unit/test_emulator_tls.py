"""umqtt.simple 1.3.4 on the emulated ESP32 (profile v1.22) over real TLS, with PEM cadata
and server_hostname, against a small MQTT-over-TLS endpoint on this machine."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import trustme

from harness.emulator import EmulatedBoard
from harness.emulator.fixtures import BoardFactory, board_factory, mpremote
from harness.emulator.umqtt_source import MicropythonLibMissing

pytestmark = pytest.mark.unit
__all__ = ["board_factory"]

CONNACK_ACCEPTED = b"\x20\x02\x00\x00"


def read_packet(conn: ssl.SSLSocket) -> bytes:
    """One whole MQTT packet (umqtt writes the fixed header and the body separately)."""
    data = b""
    while True:
        if len(data) >= 2:
            length, shift, index = 0, 0, 1
            while index < len(data):
                length |= (data[index] & 0x7F) << shift
                shift += 7
                index += 1
                if not data[index - 1] & 0x80:
                    if len(data) >= index + length:
                        return data[:index + length]
                    break
        chunk = conn.recv(4096)
        if not chunk:
            return data
        data += chunk


@dataclass
class TlsBroker:
    """Accepts TLS connections, records SNI and the first MQTT packet, answers CONNACK 0."""

    context: ssl.SSLContext
    listener: socket.socket = field(init=False)
    sni: list[str | None] = field(default_factory=list)
    packets: list[bytes] = field(default_factory=list)
    handshake_errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.context.sni_callback = lambda sock, name, ctx: self.sni.append(name)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self._running = True
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while self._running:
            try:
                raw, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with contextlib.closing(raw):
                raw.settimeout(10)
                try:
                    conn = self.context.wrap_socket(raw, server_side=True)
                except (ssl.SSLError, OSError) as exc:
                    self.handshake_errors.append(str(exc))
                    continue
                with contextlib.closing(conn):
                    try:
                        self.packets.append(read_packet(conn))
                        conn.sendall(CONNACK_ACCEPTED)
                        conn.recv(4096)  # DISCONNECT or EOF
                    except (ssl.SSLError, OSError):
                        pass

    def close(self) -> None:
        self._running = False
        self.listener.close()
        self._thread.join(5)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def broker(ca: trustme.CA) -> Iterator[TlsBroker]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("broker.test").configure_cert(context)
    server = TlsBroker(context)
    yield server
    server.close()


def device_connect(board: EmulatedBoard, broker: TlsBroker, cadata: bytes, server: str,
                   *, server_hostname: str | None = None) -> str:
    """The seed's TLS connect, run on the board through mpremote; returns its output."""
    (board.flash_dir / "ca.pem").write_bytes(cadata)
    script = f"""
import network, ussl
from umqtt.simple import MQTTClient
wlan = network.WLAN(network.STA_IF)
wlan.active(True)
wlan.connect('hil-ap', 'hil-password')
cadata = open('ca.pem', 'rb').read()
params = {{'cert_reqs': ussl.CERT_REQUIRED, 'cadata': cadata,
          'server_hostname': {server_hostname or server!r}}}
client = MQTTClient('micropython-client-7', {server!r}, {broker.port}, ssl=True, ssl_params=params)
try:
    client.connect()
    print('CONNECTED')
    client.disconnect()
except Exception as exc:
    print('REFUSED', repr(exc))
"""
    result = mpremote(board.port, "exec", script)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_umqtt_134_connects_over_tls_with_pem_cadata_and_sni(
        board_factory: BoardFactory, broker: TlsBroker, ca: trustme.CA) -> None:
    board = board_factory(hosts={"broker.test": "127.0.0.1"})
    out = device_connect(board, broker, ca.cert_pem.bytes(), "broker.test")
    assert "CONNECTED" in out
    assert broker.sni == ["broker.test"]
    assert broker.packets[0][0] == 0x10  # MQTT CONNECT
    assert b"MQTT\x04" in broker.packets[0]  # protocol level 4 (3.1.1)
    assert b"micropython-client-7" in broker.packets[0]


def test_wrong_hostname_is_refused(
        board_factory: BoardFactory, broker: TlsBroker, ca: trustme.CA) -> None:
    board = board_factory(hosts={"broker.test": "127.0.0.1", "other.test": "127.0.0.1"})
    out = device_connect(board, broker, ca.cert_pem.bytes(), "other.test")
    assert "REFUSED" in out and "CONNECTED" not in out
    assert broker.packets == []  # no CONNECT ever reached the broker
    assert broker.sni == ["other.test"]


def test_untrusted_ca_is_refused(board_factory: BoardFactory, broker: TlsBroker) -> None:
    board = board_factory(hosts={"broker.test": "127.0.0.1"})
    out = device_connect(board, broker, trustme.CA().cert_pem.bytes(), "broker.test")
    assert "REFUSED" in out and "CONNECTED" not in out
    assert broker.packets == []


def test_unknown_host_fails_like_an_esp32(board_factory: BoardFactory, broker: TlsBroker,
                                          ca: trustme.CA) -> None:
    board = board_factory(hosts={})
    out = device_connect(board, broker, ca.cert_pem.bytes(), "broker.test")
    assert "REFUSED OSError(-202,)" in out
    assert broker.sni == []


def test_ssl_module_set_follows_the_profile(board_factory: BoardFactory) -> None:
    board = board_factory()
    probe = "import ssl, ussl, usocket, socket\nprint(ussl is ssl, usocket is socket)"
    result = mpremote(board.port, "exec", probe)
    assert result.stdout.split() == ["True", "True"], result.stdout


@pytest.mark.parametrize("profile", ["v1.23", "v1.24", "v1.25"])
def test_newer_profiles_connect_with_an_sslcontext(
        board_factory: BoardFactory, broker: TlsBroker, ca: trustme.CA, profile: str) -> None:
    try:
        board = board_factory(profile=profile, hosts={"broker.test": "127.0.0.1"})
    except MicropythonLibMissing as exc:
        pytest.skip(str(exc))
    (board.flash_dir / "ca.pem").write_bytes(ca.cert_pem.bytes())
    script = f"""
import network, ssl
from umqtt.simple import MQTTClient
wlan = network.WLAN(network.STA_IF)
wlan.active(True)
wlan.connect('hil-ap', 'hil-password')
context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
context.verify_mode = ssl.CERT_REQUIRED
context.load_verify_locations(cadata=open('ca.pem', 'rb').read())
client = MQTTClient('micropython-client-9', 'broker.test', {broker.port}, ssl=context)
client.connect()
print('CONNECTED')
client.disconnect()
try:
    import ussl
except ImportError:
    print('no ussl')
"""
    result = mpremote(board.port, "exec", script)
    assert result.stdout.splitlines() == ["CONNECTED", "no ussl"], result.stdout + result.stderr
    assert broker.sni == ["broker.test"]  # umqtt >= 1.4 sends the server name itself
