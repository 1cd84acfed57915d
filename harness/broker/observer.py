"""A broker-side MQTT client on paho-mqtt 2.x (``CallbackAPIVersion.VERSION2``) that
subscribes and records what it receives, and publishes (retained too) for the checks.

Per-filter handlers use ``message_callback_add`` as seed 004 recommends; reason codes are
turned into text with ``connack_string``/``error_string``; paho's ``on_log`` goes to the
``harness.broker.observer`` logger, so it lands in the test's log.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paho.mqtt import client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from harness.deadline import Deadline
from harness.errors import BrokerError, BrokerUnreachable, PkiError
from harness.redact import redact

log = logging.getLogger(__name__)

_PAHO_LOG_LEVELS: dict[int, int] = {
    mqtt.MQTT_LOG_DEBUG: logging.DEBUG,
    mqtt.MQTT_LOG_INFO: logging.INFO,
    mqtt.MQTT_LOG_NOTICE: logging.INFO,
    mqtt.MQTT_LOG_WARNING: logging.WARNING,
    mqtt.MQTT_LOG_ERR: logging.ERROR,
}
# paho 2.x reports MQTT 3.1.1 CONNACK codes as MQTT 5 reason codes; map back by name.
_CONNACK_311 = {
    "Success": 0,
    "Unsupported protocol version": 1,
    "Client identifier not valid": 2,
    "Server unavailable": 3,
    "Bad user name or password": 4,
    "Not authorized": 5,
}


def connack_code_311(reason_code: Any) -> int | None:
    """The MQTT 3.1.1 CONNACK return code behind a paho reason code (None if unknown)."""
    return _CONNACK_311.get(str(reason_code))


def describe_connack(reason_code: Any) -> str:
    """E.g. ``Not authorized (CONNACK 5: Connection Refused: not authorised.)``."""
    code = connack_code_311(reason_code)
    if code is None:
        return mqtt.connack_string(reason_code)
    return f"{mqtt.connack_string(reason_code)} (CONNACK {code}: {mqtt.connack_string(code)})"


class ObserverError(BrokerError):
    """The observer could not connect, subscribe or publish."""


@dataclass(frozen=True)
class ObservedMessage:
    """One message the observer received."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    wall_time: float
    mono_time: float

    @property
    def time(self) -> float:
        """Wall-clock arrival time (``time.time()``)."""
        return self.wall_time

    @property
    def text(self) -> str:
        return self.payload.decode("utf-8", errors="replace")


class _SniContext(ssl.SSLContext):
    """Sends ``forced_name`` as SNI (and checks the certificate against it) whatever
    host the socket was opened to: paho uses the connect host for both."""

    forced_name: str | None = None
    last_socket: ssl.SSLSocket | None = None  # paho does not close it when the handshake fails

    def wrap_socket(self, sock: Any, *args: Any, **kwargs: Any) -> Any:
        if self.forced_name is not None:
            kwargs["server_hostname"] = self.forced_name
        self.last_socket = super().wrap_socket(sock, *args, **kwargs)
        return self.last_socket


class Observer:
    """A paho client connected to ``host``:``port`` (TLS when ``ca_file`` is given)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        ca_file: Path | None = None,
        server_hostname: str | None = None,
        username: str | None = None,
        password: str | None = None,
        client_id: str | None = None,
        keepalive: int = 30,
    ) -> None:
        self.host, self.port = host, port
        self.ca_file = ca_file
        self.server_hostname = server_hostname
        self.client_id = client_id or f"hil-observer-{uuid.uuid4().hex[:8]}"
        self.keepalive = keepalive
        self._secrets = [password] if password else []
        self._lock = threading.Condition()
        self._messages: list[ObservedMessage] = []
        self._suback: dict[int, list[Any]] = {}
        self._connack: Any = None
        self._disconnect_reason: str | None = None
        self._running = False
        self._filters: dict[str, int] = {}  # subscribed, to renew after a reconnect
        self._connected = False
        self._renewing: int | None = None  # mid of the renewing SUBSCRIBE until its SUBACK
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        if username is not None:
            client.username_pw_set(username, password)
        self._tls = self._tls_context(ca_file, server_hostname) if ca_file is not None else None
        if self._tls is not None:
            client.tls_set_context(self._tls)
        # A broker restart (a fault test) must cost the observer well under a second.
        client.reconnect_delay_set(min_delay=0.1, max_delay=1)  # type: ignore[arg-type]
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_log = self._on_log
        self._client = client

    @staticmethod
    def _tls_context(ca_file: Path, server_hostname: str | None) -> _SniContext:
        if not ca_file.is_file():
            raise PkiError(f"CA file {ca_file} does not exist", hint="pass the broker's CA (PEM)")
        context = _SniContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(cafile=str(ca_file))
        context.forced_name = server_hostname
        return context

    # -- paho callbacks (paho's network thread) --------------------------------------
    def _on_connect(self, client: Any, _u: Any, _flags: Any, reason_code: Any, _p: Any) -> None:
        with self._lock:
            self._connack = reason_code
            self._connected = reason_code == 0
            renew = list(self._filters.items()) if reason_code == 0 else []
            if renew:  # a reconnect after the broker went away: its clean session forgot us
                self._renewing = client.subscribe(renew)[1]
            self._lock.notify_all()

    def _on_disconnect(self, _c: Any, _u: Any, _flags: Any, reason_code: Any, _p: Any) -> None:
        with self._lock:
            self._disconnect_reason = str(reason_code)
            self._connected = False
            self._lock.notify_all()
        if self._running and reason_code != 0:
            log.warning("observer %s disconnected: %s", self.client_id, reason_code)

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, reason_codes: list[Any], _p: Any) -> None:
        with self._lock:
            if mid == self._renewing:
                self._renewing = None
            else:
                self._suback[mid] = list(reason_codes)
            self._lock.notify_all()

    def _on_message(self, _c: Any, _u: Any, message: Any) -> None:
        record = ObservedMessage(
            message.topic, bytes(message.payload), message.qos, bool(message.retain),
            time.time(), time.monotonic(),
        )  # fmt: skip
        with self._lock:
            self._messages.append(record)
            self._lock.notify_all()

    def _on_log(self, _c: Any, _u: Any, level: int, buf: str) -> None:
        if not self._running and buf.startswith("Client is not connected"):
            return  # paho's loop thread racing our own disconnect() in stop(): not news
        log.log(_PAHO_LOG_LEVELS.get(int(level), logging.DEBUG), "paho %s: %s", self.client_id,
                redact(buf, self._secrets))  # fmt: skip

    # -- public API -----------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> Observer:
        """Connect and wait for CONNACK; a refusal raises with the reason in words."""
        if self._running:
            return self
        deadline = Deadline(timeout, f"CONNACK from {self.host}:{self.port} for the observer")
        self._client.connect_timeout = max(0.1, deadline.remaining())
        try:
            self._client.connect(self.host, self.port, keepalive=self.keepalive)
        except ssl.SSLError as exc:
            if self._tls is not None and self._tls.last_socket is not None:
                self._tls.last_socket.close()
            raise ObserverError(f"observer TLS handshake with {self.host}:{self.port} failed: "
                                f"{exc.reason or exc}") from exc  # fmt: skip
        except OSError as exc:
            raise BrokerUnreachable(
                f"observer cannot reach {self.host}:{self.port}: {exc.strerror or exc}",
                hint="is the broker running and the port right?",
            ) from exc
        self._client.loop_start()
        self._running = True
        with self._lock:
            while self._connack is None:
                if deadline.expired:
                    self.stop()
                    raise deadline.fail(self._disconnect_reason or "no CONNACK")
                self._lock.wait(deadline.remaining())
            connack = self._connack
        if connack != 0:
            self.stop()
            raise ObserverError(
                f"broker {self.host}:{self.port} refused the observer: {describe_connack(connack)}",
                hint="check the user name and password",
            )
        return self

    def subscribe(self, topic_filter: str, qos: int = 0, timeout: float = 10.0) -> None:
        """Subscribe and wait for the SUBACK; messages then land in :meth:`messages`."""
        self._client.message_callback_add(topic_filter, self._on_message)
        with self._lock:
            self._filters[topic_filter] = qos
        result, mid = self._client.subscribe(topic_filter, qos)
        if result != mqtt.MQTT_ERR_SUCCESS:
            raise ObserverError(
                f"cannot subscribe to {topic_filter!r}: {mqtt.error_string(result)}"
            )
        deadline = Deadline(timeout, f"SUBACK for {topic_filter!r}")
        with self._lock:
            while mid not in self._suback:
                if deadline.expired:
                    raise deadline.fail(self._disconnect_reason or "no SUBACK")
                self._lock.wait(deadline.remaining())
            codes = self._suback.pop(mid)
        if any(getattr(code, "is_failure", False) for code in codes):
            raise ObserverError(f"broker refused the subscription to {topic_filter!r}: {codes}")

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Wait until connected with every subscription in place (after a broker restart
        paho reconnects by itself and the subscriptions are renewed)."""
        deadline = Deadline(timeout, "the observer to reconnect and resubscribe")
        with self._lock:
            while not self._connected or self._renewing is not None:
                if deadline.expired:
                    raise deadline.fail(self._disconnect_reason or "not connected")
                self._lock.wait(deadline.remaining())

    def messages(self, topic_filter: str | None = None) -> list[ObservedMessage]:
        with self._lock:
            return [
                m
                for m in self._messages
                if topic_filter is None or mqtt.topic_matches_sub(topic_filter, m.topic)
            ]

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()

    def wait_for_messages(
        self, count: int, topic_filter: str | None = None, timeout: float = 10.0
    ) -> list[ObservedMessage]:
        """The first ``count`` messages (matching ``topic_filter``), waiting for them."""
        what = f"{count} message(s) on {topic_filter or 'any topic'}"
        deadline = Deadline(timeout, what)
        with self._lock:
            while True:
                matching = self.messages(topic_filter)
                if len(matching) >= count:
                    return matching[:count]
                if deadline.expired:
                    last = repr(matching[-1].text) if matching else "nothing"
                    raise deadline.fail(f"{len(matching)} received, last {last}")
                self._lock.wait(deadline.remaining())

    def publish(
        self,
        topic: str,
        payload: bytes | str,
        qos: int = 0,
        retain: bool = False,
        timeout: float = 10.0,
    ) -> None:
        """Publish and wait until paho has handed it to the network (or PUBACK for QoS 1)."""
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise ObserverError(f"cannot publish to {topic!r}: {mqtt.error_string(info.rc)}")
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise Deadline(timeout, f"publish to {topic!r} to complete").fail(
                self._disconnect_reason or "not sent"
            )

    def clear_retained(self, topic: str, timeout: float = 10.0) -> None:
        """Remove the retained message on ``topic`` (an empty retained publish)."""
        self.publish(topic, b"", qos=1, retain=True, timeout=timeout)

    def stop(self) -> None:
        """Disconnect and stop paho's thread (idempotent)."""
        if not self._running:
            return
        self._running = False
        try:
            self._client.disconnect()
        finally:
            self._client.loop_stop()

    def __enter__(self) -> Observer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
