"""The embedded broker: amqtt 0.12 on its own event-loop thread.

We open the listening sockets ourselves (``asyncio.start_server`` on port 0 gives the
bound port with no race) and hand each connection to amqtt's ``external`` listeners.
Password auth uses amqtt's FileAuthPlugin alone, the combination that really answers a
bad login with CONNACK 5 (with the anonymous plugin loaded too, a wrong password gets in).
A small plugin records the broker's own connect/subscribe/publish/disconnect events for
the checks.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Unpack

from amqtt.broker import Broker as _AmqttCore
from amqtt.plugins.base import BasePlugin
from pwdlib.hashers.argon2 import Argon2Hasher

from harness.broker.base import BrokerEvent, LocalBroker, LocalBrokerOptions, port_error
from harness.broker.loop_thread import LoopThread
from harness.deadline import Deadline
from harness.errors import PkiError, one_line
from harness.redact import redact

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


class _InfoLevel:
    """Lets INFO records of some loggers through while any broker log is attached, and puts
    their levels back when the last one detaches (the loggers are process-wide)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._saved: list[tuple[logging.Logger, int]] = []

    def acquire(self, *loggers: logging.Logger) -> None:
        with self._lock:
            self._users += 1
            if self._users == 1:
                self._saved = [(lg, lg.level) for lg in loggers
                               if lg.getEffectiveLevel() > logging.INFO]
                for logger, _ in self._saved:
                    logger.setLevel(logging.INFO)

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0:
                for logger, level in self._saved:
                    logger.setLevel(level)
                self._saved = []


_INFO_LEVEL = _InfoLevel()

# Event sinks by id: amqtt builds plugins itself from a dotted path and a config dict,
# so the plugin finds its broker's recorder through this table.
_SINKS: dict[str, Callable[[BrokerEvent], None]] = {}


class EventRecorderPlugin(BasePlugin[Any]):  # type: ignore[misc]
    """amqtt plugin that forwards broker events to a :class:`AmqttBroker`."""

    @dataclass
    class Config:
        sink: str = ""

    def _emit(self, kind: str, client_id: str, **fields: Any) -> None:
        sink = _SINKS.get(self.config.sink)
        if sink is not None:
            sink(BrokerEvent(kind, client_id or "", time.time(), fields))

    async def on_broker_client_connected(self, *, client_id: str, client_session: Any) -> None:
        self._emit(
            "connect",
            client_id,
            username=client_session.username,
            clean_session=client_session.clean_session,
            keepalive=client_session.keep_alive,
            remote=f"{client_session.remote_address}:{client_session.remote_port}",
            will_flag=client_session.will_flag,
        )

    async def on_broker_client_subscribed(self, *, client_id: str, topic: str, qos: int) -> None:
        self._emit("subscribe", client_id, topic=topic, qos=qos)

    async def on_broker_message_received(self, *, client_id: str, message: Any) -> None:
        if message is None:
            return
        packet = getattr(message, "publish_packet", None)
        self._emit(
            "publish",
            client_id,
            topic=message.topic,
            payload=bytes(message.data or b""),
            qos=message.qos,
            retain=bool(packet.retain_flag) if packet is not None else False,
        )

    async def on_broker_client_disconnected(self, *, client_id: str, client_session: Any) -> None:
        self._emit("disconnect", client_id)


class _RedactingFormatter(logging.Formatter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self._secrets)


class AmqttBroker(LocalBroker):
    """amqtt with a plain listener and, given ``tls``, a TLS listener; both on 127.0.0.1
    ephemeral ports unless ``port``/``tls_port`` are given."""

    name = "amqtt"

    def __init__(self, **options: Unpack[LocalBrokerOptions]) -> None:
        super().__init__(**options)
        self._events: list[BrokerEvent] = []
        self._events_lock = threading.Lock()
        self._sink_id = uuid.uuid4().hex
        self._loop: LoopThread | None = None
        self._core: _AmqttCore | None = None
        self._servers: list[asyncio.AbstractServer] = []
        self._log_handler: logging.Handler | None = None

    def events(self) -> list[BrokerEvent]:
        with self._events_lock:
            return list(self._events)

    def clear_events(self) -> None:
        with self._events_lock:
            self._events.clear()

    def _record(self, event: BrokerEvent) -> None:
        with self._events_lock:
            self._events.append(event)
        # amqtt's own INFO log is thin; the events make the kept log worth reading.
        log.info("event %s client_id=%s %s", event.kind, event.client_id, event.fields)

    # -- configuration ----------------------------------------------------------------
    def _password_file(self) -> Path:
        # Cheap argon2 parameters: the defaults cost ~0.5 s per CONNECT on a loaded CI
        # machine, which would distort connect timings; these are throwaway test passwords.
        hasher = Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1)
        lines = [f"{user}:{hasher.hash(password)}" for user, password in (self.users or {}).items()]
        path = self.workdir / "amqtt-passwords"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    def _config(self) -> dict[str, Any]:
        listeners: dict[str, Any] = {"default": {"type": "external"}}
        if self.tls is not None:
            listeners["tls"] = {"type": "external"}
        plugins: dict[str, Any] = {f"{__name__}.EventRecorderPlugin": {"sink": self._sink_id}}
        if self.users:
            plugins["amqtt.plugins.authentication.FileAuthPlugin"] = {
                "password_file": str(self._password_file())
            }
        else:
            plugins["amqtt.plugins.authentication.AnonymousAuthPlugin"] = {"allow_anonymous": True}
        return {"listeners": listeners, "plugins": plugins}

    def _tls_context(self) -> ssl.SSLContext:
        assert self.tls is not None
        self.tls.check_files()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(self.tls.chain_pem, self.tls.key_pem)
        except (ssl.SSLError, OSError) as exc:
            raise PkiError(f"cannot load {self.tls.label} certificate/key: {exc}") from exc
        return context

    # -- lifecycle ----------------------------------------------------------------------
    def _attach_log(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(self._log_path, encoding="utf-8")
        handler.setFormatter(_RedactingFormatter(list((self.users or {}).values())))
        loop = self._loop
        # amqtt logs through module-level loggers; keep only this broker's thread.
        handler.addFilter(lambda record: loop is not None and record.thread == loop.thread_id)
        amqtt_logger = logging.getLogger("amqtt")
        _INFO_LEVEL.acquire(amqtt_logger, log)
        amqtt_logger.addHandler(handler)
        log.addHandler(handler)
        self._log_handler = handler

    def _start(self, timeout: float) -> None:
        deadline = Deadline(timeout, "the amqtt broker to start")
        tls_context = self._tls_context() if self.tls is not None else None
        _SINKS[self._sink_id] = self._record
        self._loop = LoopThread(f"amqtt-{self._sink_id[:6]}")
        self._attach_log()
        self._loop.run(self._astart(tls_context), deadline)

    async def _astart(self, tls_context: ssl.SSLContext | None) -> None:
        core = _AmqttCore(self._config())
        await core.start()
        self._core = core

        def handler(listener: str) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]:
            async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                try:
                    await core.stream_connected(reader, writer, listener)
                except Exception as exc:  # one bad client must not reach asyncio's traceback
                    peer = writer.get_extra_info("peername")
                    log.info("client %s on %s dropped: %s", peer, listener, one_line(exc))
                finally:
                    # amqtt leaves the socket open when a client sends no CONNECT.
                    writer.close()

            return connected

        self._port = await self._listen(handler("default"), self._wanted_port, None)
        if tls_context is not None:
            self._tls_port = await self._listen(handler("tls"), self._wanted_tls_port, tls_context)

    async def _listen(
        self,
        callback: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any],
        port: int,
        tls_context: ssl.SSLContext | None,
    ) -> int:
        try:
            server = await asyncio.start_server(callback, self.host, port, ssl=tls_context)
        except OSError as exc:
            raise port_error(self.host, port, exc) from exc
        self._servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    async def _astop(self) -> None:
        for server in self._servers:
            server.close()
        if self._core is not None:
            try:
                await self._core.shutdown()
            except Exception as exc:  # a half-started core may refuse; log, keep stopping
                log.debug("amqtt shutdown: %s", exc)
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        self._core = None

    def _save_state(self) -> Any:
        # amqtt keeps retained messages in memory only, and clears them on shutdown; a
        # session belongs to a connection that the restart ends, so only these survive.
        core = self._core
        return dict(core._retained_messages) if core is not None else None

    def _restore_state(self, state: Any) -> None:
        if state and self._core is not None and self._loop is not None:
            core = self._core
            self._loop.call_soon(core._retained_messages.update, state)

    def _stop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None:
            try:
                if loop.alive:
                    loop.run(self._astop(), Deadline(10.0, "the amqtt broker to shut down"))
            finally:
                loop.stop()
        if self._log_handler is not None:
            logging.getLogger("amqtt").removeHandler(self._log_handler)
            log.removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None
            _INFO_LEVEL.release()
        _SINKS.pop(self._sink_id, None)
        self._port = self._tls_port = None
