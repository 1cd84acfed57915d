"""Rig for running device_src/ on the real MicroPython unix interpreter, before (and apart
from) the emulated board: a flash directory mounted as ``/``, a fake ``network`` module,
an ``ssl`` shim that gives the unix port's DER-only mbedTLS the PEM an ESP32 accepts,
umqtt.simple 1.3.4 (the harness's own fetch: name, version, sha256, cached), mosquitto, and
a TLS front that records SNI. Holds no tests itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import queue
import re
import select
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import lifetime
from harness.broker.mosquitto_broker import find_mosquitto
from harness.deadline import Deadline
from harness.emulator import interpreter
from harness.emulator.umqtt_source import umqtt_134_dir

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
DEVICE_SRC = REPO / "device_src"
MICROPYTHON = interpreter.executable()

# --- board shims (test-only; an ESP32 has the real modules) ------------------------
NETWORK_SHIM = """\
import time
STA_IF = 0
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202
from wifi_sim import SSID, PASSWORD, DELAY, IP
_station = None
class _WLAN:
    def __init__(self):
        self._active = False
        self._since = None
    def active(self, on=None):
        if on is None:
            return self._active
        self._active = bool(on)
    def connect(self, ssid, key):
        if not self._active:
            raise OSError("Wifi Not Started")
        self._since, self._ssid, self._key = time.ticks_ms(), ssid, key
    def status(self):
        if self._since is None:
            return STAT_IDLE
        if self._ssid != SSID:
            return STAT_NO_AP_FOUND
        if self._key != PASSWORD:
            return STAT_WRONG_PASSWORD
        if time.ticks_diff(time.ticks_ms(), self._since) >= DELAY * 1000:
            return STAT_GOT_IP
        return STAT_CONNECTING
    def isconnected(self):
        return self.status() == STAT_GOT_IP
    def ifconfig(self):
        return (IP, "255.255.255.0", "192.168.4.1", "192.168.4.1")
def WLAN(interface=STA_IF):
    global _station
    if _station is None:
        _station = _WLAN()
    return _station
"""

# The unix port's mbedTLS takes DER cadata only; an ESP32 takes the PEM the guide uses.
SSL_SHIM = """\
import binascii
import tls
from tls import CERT_NONE, CERT_OPTIONAL, CERT_REQUIRED, PROTOCOL_TLS_CLIENT
def _der(data):
    begin, end = b"-----BEGIN CERTIFICATE-----", b"-----END CERTIFICATE-----"
    if begin not in data:
        return data
    return binascii.a2b_base64(b"".join(data.split(begin, 1)[1].split(end, 1)[0].split()))
class SSLContext:
    def __init__(self, protocol):
        self._ctx = tls.SSLContext(protocol)
        self._ctx.verify_mode = CERT_NONE
    @property
    def verify_mode(self):
        return self._ctx.verify_mode
    @verify_mode.setter
    def verify_mode(self, mode):
        self._ctx.verify_mode = mode
    def load_verify_locations(self, cafile=None, cadata=None):
        self._ctx.load_verify_locations(_der(cadata))
    def wrap_socket(self, sock, server_side=False, do_handshake_on_connect=True,
                    server_hostname=None):
        return self._ctx.wrap_socket(sock, server_side=server_side,
                                     do_handshake_on_connect=do_handshake_on_connect,
                                     server_hostname=server_hostname)
def wrap_socket(sock, cert_reqs=CERT_NONE, cadata=None, server_hostname=None):
    ctx = SSLContext(PROTOCOL_TLS_CLIENT)
    if cadata:
        ctx.load_verify_locations(cadata=cadata)
    ctx.verify_mode = cert_reqs
    return ctx.wrap_socket(sock, server_hostname=server_hostname)
"""

# Mount the flash directory as "/" the way the emulated board does, then run main.py.
LAUNCHER = """\
import os, sys, vfs
vfs.umount('/')
vfs.mount(vfs.VfsPosix({flash!r}), '/')
os.chdir('/')
sys.path[0] = ''
import main
main.run()
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, what: str, seconds: float = 10.0) -> None:
    def probe() -> bool | None:
        with socket.socket() as sock:
            return True if sock.connect_ex(("127.0.0.1", port)) == 0 else None
    Deadline(seconds, what).poll(probe, interval=0.05)


def umqtt_134() -> Path:
    """Directory holding ``umqtt/simple.py`` 1.3.4, as the emulated board gets it."""
    return umqtt_134_dir()


class Flash:
    """A board's flash directory: device_src + shims + umqtt + settings (+ CA)."""

    def __init__(self, root: Path, umqtt_dir: Path, *, wifi: dict[str, Any] | None = None,
                 src: Path = DEVICE_SRC) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        for path in src.glob("*.py"):
            shutil.copy(path, root / path.name)
        shutil.copytree(umqtt_dir / "umqtt", root / "umqtt", dirs_exist_ok=True)
        (root / "network.py").write_text(NETWORK_SHIM)
        (root / "ssl.py").write_text(SSL_SHIM)
        (root / "ussl.py").write_text("from ssl import *\n")
        wifi = {"ssid": "lab", "password": "lab-secret", "delay": 0, "ip": "192.168.4.2",
                **(wifi or {})}
        (root / "wifi_sim.py").write_text(
            f"SSID = {wifi['ssid']!r}\nPASSWORD = {wifi['password']!r}\n"
            f"DELAY = {wifi['delay']!r}\nIP = {wifi['ip']!r}\n")

    def write_settings(self, settings: dict[str, Any] | str) -> None:
        text = settings if isinstance(settings, str) else json.dumps(settings)
        (self.root / "settings.json").write_text(text)

    def write(self, name: str, data: bytes) -> None:
        (self.root / name.lstrip("/")).write_bytes(data)


class DeviceRun:
    """The device program running on the unix interpreter; its console, line by line."""

    def __init__(self, flash: Flash, heap: str = "256K") -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.proc = lifetime.spawn(
            [str(MICROPYTHON), "-X", f"heapsize={heap}", "-c",
             LAUNCHER.format(flash=str(flash.root))],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def _take(self, deadline: Deadline) -> bool:
        """Move one line (or end of output) into ``lines``; False at end of output."""
        try:
            line = self._queue.get(timeout=max(deadline.remaining(), 0.01))
        except queue.Empty:
            raise deadline.fail(self.tail()) from None
        if line is None:
            self._queue.put(None)
            return False
        self.lines.append(line)
        return True

    def expect(self, pattern: str, seconds: float = 20.0) -> re.Match[str]:
        """Wait for a console line matching ``pattern`` (searched in later lines only)."""
        regex = re.compile(pattern)
        deadline = Deadline(seconds, f"a console line matching {pattern!r}")
        start = len(self.lines)
        while True:
            for line in self.lines[start:]:
                match = regex.search(line)
                if match:
                    return match
            start = len(self.lines)
            if not self._take(deadline):
                raise deadline.fail("program ended; " + self.tail())

    def wait_exit(self, seconds: float = 20.0) -> list[str]:
        """Wait for the program to return to the REPL; all its console lines."""
        deadline = Deadline(seconds, "the program to stop and return to the REPL")
        while self._take(deadline):
            pass
        self.proc.wait(timeout=max(deadline.remaining(), 1))
        return self.lines

    def tail(self, count: int = 8) -> str:
        return " | ".join(self.lines[-count:]) or "(no output)"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@contextlib.contextmanager
def running(flash: Flash, heap: str = "256K") -> Iterator[DeviceRun]:
    run = DeviceRun(flash, heap)
    try:
        yield run
    finally:
        run.stop()


class Mosquitto:
    """A real mosquitto on 127.0.0.1 at a free port, optionally with password auth."""

    def __init__(self, workdir: Path, users: dict[str, str] | None = None,
                 port: int | None = None) -> None:
        program, passwd_program = find_mosquitto()
        self.port = port or free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        # "user": mosquitto started as root would drop to user "mosquitto", which cannot
        # read files under a private tmp dir; stay the current user (ignored if not root).
        conf = [f"listener {self.port} 127.0.0.1", "persistence false",
                f"user {pwd.getpwuid(os.geteuid()).pw_name}"]
        if users:
            pwfile = workdir / "passwd"
            pwfile.touch()
            for user, password in users.items():
                lifetime.run([str(passwd_program), "-b", str(pwfile), user, password],
                               check=True, capture_output=True, timeout=30)
            conf += [f"password_file {pwfile}", "allow_anonymous false"]
        else:
            conf.append("allow_anonymous true")
        (workdir / "mosquitto.conf").write_text("\n".join(conf) + "\n")
        self._log = (workdir / "mosquitto.log").open("wb")
        self.proc = lifetime.spawn([str(program), "-c", str(workdir / "mosquitto.conf")],
                                     stdout=self._log, stderr=subprocess.STDOUT)
        try:
            wait_listening(self.port, f"mosquitto to listen on port {self.port}")
        except BaseException:
            self.stop()
            raise

    def __enter__(self) -> Mosquitto:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def publish(self, topic: str, payload: str, retain: bool = False) -> None:
        """Publish as another client (paho-mqtt) and return once the broker has it."""
        from paho.mqtt import publish

        publish.single(topic, payload, retain=retain, hostname="127.0.0.1", port=self.port)

    def stop(self) -> None:
        """Idempotent: the process is ended and reaped, the log closed."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()


class TlsFront:
    """A TLS server (CPython ssl) in front of a plain broker port that records the SNI of
    each handshake, and can refuse handshakes without SNI (as EMQX Serverless does)."""

    def __init__(self, cert_pem: Path, key_pem: Path, backend_port: int,
                 require_sni: bool = False) -> None:
        self.backend_port = backend_port
        self.require_sni = require_sni
        self.handshakes: list[str | None] = []  # SNI of each ClientHello seen
        self.errors: list[str] = []
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert_pem, key_pem)
        self.context.sni_callback = self._on_sni
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._serve, daemon=True)
        self._accept.start()

    def _on_sni(self, sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> int | None:
        self.handshakes.append(name)
        if self.require_sni and name is None:
            return ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE
        return None

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                raw, _ = self._listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._handle, args=(raw,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _handle(self, raw: socket.socket) -> None:
        raw.settimeout(30)
        try:
            tls = self.context.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError) as exc:
            self.errors.append(str(exc))
            raw.close()
            return
        with tls, socket.create_connection(("127.0.0.1", self.backend_port)) as back:
            _relay(tls, back, self._stopping)

    def stop(self) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):  # wakes the thread blocked in accept()
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._accept.join(timeout=5)
        for thread in self._threads:
            thread.join(timeout=5)


_RELAY_IDLE_S = 30.0  # a connection silent both ways this long is dropped


def _relay(tls: ssl.SSLSocket, back: socket.socket, stopping: threading.Event) -> None:
    """Both directions in one thread: an SSL object must not be read in one thread while
    another writes it (OpenSSL's rule; two pump threads lost a connection now and then).
    Bytes already decrypted inside the SSL object count as readable."""
    with contextlib.suppress(OSError):
        while not stopping.is_set():
            ready = [tls] if tls.pending() else select.select([tls, back], [], [],
                                                             _RELAY_IDLE_S)[0]
            if not ready:
                return
            for source, sink in ((tls, back), (back, tls)):
                if source not in ready:
                    continue
                # A partial TLS record must not block the other direction; a write may wait.
                tls.settimeout(0.05 if source is tls else _RELAY_IDLE_S)
                try:
                    data = source.recv(4096)
                except TimeoutError:  # the rest of the record is still on its way
                    continue
                if not data:
                    return
                sink.sendall(data)
