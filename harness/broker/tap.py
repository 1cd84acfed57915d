"""The TLS/SNI front and MQTT wire tap: a proxy between the device and the broker.

It accepts the device's TCP connection, optionally terminates TLS itself with a test
certificate (recording the SNI and refusing a missing or wrong one, as EMQX Serverless
does), connects to the broker, and forwards bytes both ways while decoding every MQTT
packet with timestamps. It is also where most faults act (:mod:`harness.faults`): it
swallows, delays, throttles, slices, stalls or resets the stream, refuses connections with
CONNACK 3, stops listening, or leaves PINGREQ unanswered; each fault is recorded next to
the packets (``tap_faults`` holds the byte-stream side).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from harness.broker.loop_thread import LoopThread
from harness.broker.mqtt_codec import DecodeProblem, MqttPacket, StreamDecoder
from harness.broker.tap_faults import FaultState, Outlet, reset_connection, without_packets
from harness.broker.tap_records import TapConnection, TapRecord
from harness.deadline import Deadline
from harness.errors import BrokerError, PkiError
from harness.faults.model import Fault, FaultEvent, FaultKind
from harness.redact import redact
from harness.wire import PacketType, RecordKind, WireDirection

if TYPE_CHECKING:
    from harness.broker.pki import CertPair

HANDSHAKE_TIMEOUT_S = 15.0
_CHUNK = 65536
_SUBACK_HOLD_S = 0.5
_REFUSE_READ_S = 10.0  # how long a refused client gets to send its CONNECT
CONNACK_SERVER_UNAVAILABLE = bytes([0x20, 0x02, 0x00, 0x03])


@dataclass(frozen=True)
class TapTls:
    """Terminate TLS with ``cert``; with ``require_sni`` refuse any other SNI (or none)."""

    cert: CertPair
    require_sni: str | None = None


def describe_tls_failure(exc: BaseException) -> str:
    """Readable cause of a failed server-side handshake, e.g. the client's alert
    ``unknown ca`` or ``bad certificate``."""
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or ""
        for prefix in ("TLSV1_ALERT_", "SSLV3_ALERT_", "TLSV13_ALERT_"):
            if reason.startswith(prefix):
                return reason[len(prefix) :].lower().replace("_", " ")
        if isinstance(exc, ssl.SSLEOFError) or "EOF" in reason:
            return "client closed the connection during the handshake"
        return (reason or str(exc)).lower().replace("_", " ")
    if isinstance(exc, TimeoutError):
        return "handshake timed out"
    if isinstance(exc, ConnectionError | asyncio.IncompleteReadError):
        return "client closed the connection during the handshake"
    return f"{type(exc).__name__}: {exc}"


class _Link:
    """The live state of one proxied connection (loop-thread only)."""

    def __init__(self, info: TapConnection, client: asyncio.StreamWriter) -> None:
        self.info = info
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.up_reader: asyncio.StreamReader | None = None
        self.refusal: str | None = None  # set by the SNI check
        self.first_close: str | None = None

    def abort(self, reason: str, *, reset: bool = False) -> None:
        """Close both sides; with ``reset`` the device's side gets an RST."""
        self.first_close = self.first_close or reason
        if reset:
            reset_connection(self.client)
        for writer in (self.client, self.upstream):
            if writer is not None:
                writer.transport.abort()


class _SubackReorder:
    """Forwards broker-to-client bytes packet by packet, holding back the first SUBACK
    until a retained PUBLISH has been sent (or ``_SUBACK_HOLD_S`` passes). After a framing
    error, or once the SUBACK is released, it forwards bytes unchanged."""

    def __init__(self, sink: Outlet) -> None:
        self._sink = sink
        self._pending = bytearray()  # received, not yet attributed to a whole packet
        self._held: bytes | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._done = False

    def forward(self, data: bytes, results: list[Any]) -> None:
        if self._done:
            self._sink.write(data)
            return
        self._pending += data
        for result in results:
            if isinstance(result, DecodeProblem):
                self._finish()
                return
            raw = bytes(self._pending[: result.size])
            del self._pending[: result.size]
            if result.type == PacketType.SUBACK and self._held is None:
                self._held = raw
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(_SUBACK_HOLD_S, self._finish)
                continue
            self._sink.write(raw)
            if result.type == PacketType.PUBLISH and result.fields.get("retain") and self._held:
                self._finish()
                return

    def _finish(self) -> None:
        """Release the SUBACK and everything after it; from now on, pass bytes through."""
        if self._timer is not None:
            self._timer.cancel()
        if self._held is not None:
            self._sink.write(self._held)
            self._held = None
        if self._pending:
            self._sink.write(bytes(self._pending))
            self._pending.clear()
        self._done = True


class Tap:
    """A proxy on ``listen_host``:``listen_port`` (0 = any free port) to ``upstream``."""

    def __init__(
        self,
        upstream: tuple[str, int],
        tls: TapTls | None = None,
        record_path: Path | None = None,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        *,
        secrets: Iterable[str] = (),
        on_record: Callable[[TapRecord], None] | None = None,
        retained_before_suback: bool = False,
        connack_delay_s: float = 0.0,
    ) -> None:
        self.upstream = upstream
        # MQTT 3.1.1 §3.8.4 lets a broker send matching PUBLISHes before the SUBACK. With
        # this on, the tap holds the first SUBACK until a retained PUBLISH has gone to the
        # client (or _SUBACK_HOLD_S passes): a client whose callback is not set before
        # SUBSCRIBE then meets the retained message inside subscribe(), as the spec's S4
        # check requires.
        self.retained_before_suback = retained_before_suback
        # Hold each CONNACK this long before recording and forwarding it, so "what did the
        # device print before it got CONNACK" is decided by a wide margin (S3).
        self.connack_delay_s = connack_delay_s
        self.tls = tls
        self.record_path = record_path
        self.host = listen_host
        self._listen_port = listen_port
        self._secrets = [s for s in secrets if s]
        self._listeners: list[Callable[[TapRecord], None]] = [on_record] if on_record else []
        self._lock = threading.Condition()
        self._records: list[TapRecord] = []
        self._connections: dict[int, TapConnection] = {}
        self._links: dict[int, _Link] = {}
        self._seq = itertools.count(1)
        self._conn_ids = itertools.count(1)
        self._faults = FaultState()
        self._port_hold: socket.socket | None = None  # the port, while no_listener holds it
        self._loop: LoopThread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._record_file: IO[str] | None = None
        self._port: int | None = None

    # -- public API ---------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._port is None:
            raise BrokerError("the tap is not running", hint="call start() first")
        return self._port

    def start(self, timeout: float = 10.0) -> Tap:
        if self._loop is not None:
            return self
        deadline = Deadline(timeout, "the wire tap to listen")
        if self.tls is not None:
            self.tls.cert.check_files()
            self._server_context(None)  # fail now, in the caller, on a bad cert/key
        if self.record_path is not None:
            self.record_path.parent.mkdir(parents=True, exist_ok=True)
            self._record_file = self.record_path.open("a", encoding="utf-8")
        self._loop = LoopThread("mqtt-tap")
        try:
            self._port = self._loop.run(self._listen(), deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Close the listener and every connection; idempotent."""
        loop, self._loop = self._loop, None
        if loop is not None:
            try:
                if loop.alive:
                    loop.run(self._shutdown(), Deadline(10.0, "the wire tap to close"))
            finally:
                loop.stop()
        if self._record_file is not None:
            self._record_file.close()
            self._record_file = None
        self._port = None

    def __enter__(self) -> Tap:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def add_listener(self, listener: Callable[[TapRecord], None]) -> None:
        """Call ``listener`` with every record as it is made (on the tap's thread: keep it
        short, and never call back into the tap from it)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[TapRecord], None]) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def records(self) -> list[TapRecord]:
        with self._lock:
            return list(self._records)

    def connections(self) -> list[TapConnection]:
        with self._lock:
            return [c.copy() for c in self._connections.values()]

    def packets(
        self, packet_type: PacketType | None = None, direction: WireDirection | None = None
    ) -> list[TapRecord]:
        """Decoded packets, optionally of one type and direction, in arrival order."""
        return [
            r
            for r in self.records()
            if r.kind == RecordKind.PACKET
            and (packet_type is None or r.packet_type == packet_type)
            and (direction is None or r.direction == direction)
        ]

    def clear(self) -> None:
        """Forget records and finished connections (live ones keep being recorded)."""
        with self._lock:
            self._records.clear()
            self._connections = {k: c for k, c in self._connections.items() if not c.closed}
            for conn in self._connections.values():
                conn.packets.clear()
                conn.decode_errors.clear()

    def wait_for(
        self, predicate: Callable[[TapRecord], bool], timeout: float, what: str
    ) -> TapRecord:
        """The first record (oldest first) matching ``predicate``, waiting up to ``timeout``."""
        deadline = Deadline(timeout, what)
        with self._lock:
            checked = 0
            while True:
                for record in self._records[checked:]:
                    if predicate(record):
                        return record
                checked = len(self._records)
                if deadline.expired:
                    last = self._records[-1].summary() if self._records else "no tap records"
                    raise deadline.fail(last)
                self._lock.wait(deadline.remaining())

    # -- faults -------------------------------------------------------------------------
    def apply_fault(self, fault: Fault) -> int:
        """Start a tap-site ``fault`` now; the handle ends it (:meth:`end_fault`)."""
        if fault.kind.site.value != "tap":
            raise ValueError(f"{fault.kind} does not act at the tap")
        loop = self._running_loop()
        return loop.run(self._apply(fault), Deadline(5.0, f"the tap to start {fault.kind}"))

    def end_fault(self, handle: int) -> None:
        """End a fault started by :meth:`apply_fault` (idempotent; a stopped tap is done)."""
        if self._loop is None or not self._loop.alive:
            return
        self._loop.run(self._end(handle), Deadline(5.0, "the tap to end a fault"))

    def record_fault(self, event: FaultEvent) -> TapRecord:
        """Put a fault event (from any site) into the trace, next to the packets."""
        detail = f"{event.phase} {event.fault.describe()}"
        if event.detail:
            detail += f": {event.detail}"
        return self._record_event(RecordKind.FAULT, event.wall_time, event.mono_time,
                                  fields=event.fields(), detail=detail)

    def live_connections(self) -> int:
        with self._lock:
            return sum(1 for c in self._connections.values() if not c.closed)

    def _running_loop(self) -> LoopThread:
        if self._loop is None or not self._loop.alive:
            raise BrokerError("the tap is not running", hint="call start() first")
        return self._loop

    async def _apply(self, fault: Fault) -> int:
        handle = self._faults.add(fault, frozenset(self._links))
        if fault.kind is FaultKind.RESET_PEER:
            for link in list(self._links.values()):
                link.abort("reset by fault (RST)", reset=True)
        elif fault.kind is FaultKind.NO_LISTENER and self._server is not None:
            # Stop accepting first and let connections accepted a moment ago attach to
            # the server (closing under them would leave a client with a socket nobody
            # serves); they are reset in _serve. Then close: the kernel refuses the rest.
            server, self._server = self._server, None
            loop = asyncio.get_running_loop()
            for sock in server.sockets if isinstance(server, asyncio.Server) else ():
                loop.remove_reader(sock.fileno())
            await asyncio.sleep(0)
            server.close()
            self._hold_port()
        return handle

    def _hold_port(self) -> None:
        """Keep the port bound but not listening while nothing listens: a connect() is
        refused (RST), and no client's ephemeral port can become ours (a self-connect of a
        fast-retrying client would otherwise keep the tap from listening again)."""
        hold = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        hold.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            hold.bind((self.host, int(self._port or 0)))
        except OSError:
            hold.close()
            return
        self._port_hold = hold

    async def _end(self, handle: int) -> None:
        fault = self._faults.remove(handle)
        if (fault is not None and fault.kind is FaultKind.NO_LISTENER
                and not self._faults.has(FaultKind.NO_LISTENER) and self._port is not None):
            from harness.broker.base import port_error

            if self._port_hold is not None:
                self._port_hold.close()
                self._port_hold = None
            try:
                self._server = await asyncio.start_server(self._serve, self.host, self._port)
            except OSError as exc:  # someone took the port while nothing listened
                raise port_error(self.host, self._port, exc) from exc

    # -- recording ----------------------------------------------------------------------
    def _record(self, conn: TapConnection, kind: RecordKind, **data: Any) -> TapRecord:
        with self._lock:
            record = TapRecord(
                next(self._seq), kind, conn.id, time.time(), time.monotonic(), **data
            )
            self._records.append(record)
            if kind == RecordKind.PACKET:
                conn.packets.append(record)
            elif kind == RecordKind.DECODE_ERROR:
                conn.decode_errors.append(record)
            self._lock.notify_all()
        self._emit(record)
        return record

    def _record_event(self, kind: RecordKind, wall: float, mono: float, **data: Any) -> TapRecord:
        """A record that belongs to no connection (conn 0)."""
        with self._lock:
            record = TapRecord(next(self._seq), kind, 0, wall, mono, **data)
            self._records.append(record)
            self._lock.notify_all()
        self._emit(record)
        return record

    def _emit(self, record: TapRecord) -> None:
        if self._record_file is not None:
            self._record_file.write(redact(record.to_line(), self._secrets) + "\n")
            self._record_file.flush()
        for listener in self._listeners:
            listener(record)

    # -- the proxy (loop thread) --------------------------------------------------------
    def _server_context(self, link: _Link | None) -> ssl.SSLContext:
        assert self.tls is not None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert = self.tls.cert
        try:
            context.load_cert_chain(cert.chain_pem, cert.key_pem)
        except (ssl.SSLError, OSError) as exc:
            raise PkiError(f"cannot load the tap's {cert.label} certificate/key: {exc}") from exc
        if link is not None:
            context.sni_callback = lambda _obj, name, _ctx: self._check_sni(link, name)
        return context

    def _check_sni(self, link: _Link, server_name: str | None) -> int | None:
        conn = link.info
        conn.sni, conn.sni_seen = server_name, True
        self._record(conn, RecordKind.SNI, fields={"server_name": server_name},
                     detail=server_name or "(no SNI)")  # fmt: skip
        wanted = self.tls.require_sni if self.tls is not None else None
        if wanted is None or server_name == wanted:
            return None
        if server_name is None:
            link.refusal = "no SNI"
            return ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE
        link.refusal = f"unknown SNI {server_name!r}"
        return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME

    async def _listen(self) -> int:
        from harness.broker.base import port_error

        try:
            self._server = await asyncio.start_server(self._serve, self.host, self._listen_port)
        except OSError as exc:
            raise port_error(self.host, self._listen_port, exc) from exc
        return int(self._server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        with self._lock:
            conn = TapConnection(next(self._conn_ids), f"{peer[0]}:{peer[1]}", time.time(),
                                 tls=self.tls is not None)  # fmt: skip
            self._connections[conn.id] = conn
        link = _Link(conn, writer)
        self._links[conn.id] = link
        self._record(conn, RecordKind.OPEN, detail=f"from {conn.peer}")
        try:
            if self._faults.has(FaultKind.RESET_PEER) or self._faults.has(FaultKind.NO_LISTENER):
                link.abort("reset by fault (RST)", reset=True)
            elif not await self._handshake(link):
                pass
            elif self._faults.has(FaultKind.REFUSE):
                await self._refuse(link, reader)
            elif await self._connect_upstream(link):
                await self._forward(link, reader)
        finally:
            link.abort(link.first_close or "closed")
            self._links.pop(conn.id, None)
            with self._lock:
                conn.closed, conn.close_reason = True, link.first_close
                conn.closed_at = time.time()
            self._record(conn, RecordKind.CLOSE, detail=link.first_close or "closed")

    async def _handshake(self, link: _Link) -> bool:
        if self.tls is None:
            return True
        plain_transport = link.client.transport
        try:
            await link.client.start_tls(
                self._server_context(link), ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S
            )
        except (ssl.SSLError, OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            error = link.refusal or describe_tls_failure(exc)
            with self._lock:
                link.info.tls_error = error
            self._record(link.info, RecordKind.TLS_ERROR, detail=error)
            link.first_close = f"TLS handshake failed: {error}"
            return False
        except AttributeError:
            writer: Any = link.client  # typeshed has no None transport; 3.11 can leave one
            if writer.transport is not None:
                raise
            # CPython 3.11's loop.start_tls returns None when the client is gone before the
            # coroutine resumes, and StreamWriter.start_tls then fails on it, leaving a
            # writer whose __del__ raises. Give it back its (closed) plain transport.
            writer._transport = plain_transport
            link.first_close = "client closed the connection right after the TLS handshake"
            return False
        ssl_object = link.client.get_extra_info("ssl_object")
        link.info.tls_version = ssl_object.version() if ssl_object is not None else None
        return True

    async def _refuse(self, link: _Link, reader: asyncio.StreamReader) -> None:
        """Answer the client's CONNECT with CONNACK 3 (server unavailable), then close."""
        decoder = StreamDecoder()
        deadline = Deadline(_REFUSE_READ_S, "the refused client's CONNECT")
        try:
            while not deadline.expired:
                data = await asyncio.wait_for(reader.read(_CHUNK), deadline.remaining())
                if not data:
                    link.first_close = "client closed the connection"
                    return
                results = decoder.feed(data)
                for result in results:
                    self._record_result(link.info, WireDirection.CLIENT_TO_BROKER, result)
                if any(isinstance(r, MqttPacket) and r.type == PacketType.CONNECT
                       for r in results):
                    break
            for result in StreamDecoder().feed(CONNACK_SERVER_UNAVAILABLE):
                self._record_result(link.info, WireDirection.BROKER_TO_CLIENT, result)
            link.client.write(CONNACK_SERVER_UNAVAILABLE)
            await link.client.drain()
            link.first_close = "refused by fault: CONNACK 3 (server unavailable)"
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            link.first_close = f"refused by fault; client side: {type(exc).__name__}"

    def _record_result(self, conn: TapConnection, direction: WireDirection, result: Any,
                       detail: str = "") -> None:
        if isinstance(result, DecodeProblem):
            self._record_problem(conn, direction, result)
        else:
            self._record(conn, RecordKind.PACKET, direction=direction, packet_type=result.type,
                         fields=result.fields, detail=detail)

    async def _connect_upstream(self, link: _Link) -> bool:
        host, port = self.upstream
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
        except (OSError, TimeoutError) as exc:
            link.first_close = f"broker {host}:{port} unreachable: {exc}"
            return False
        link.upstream, link.up_reader = up_writer, up_reader
        return True

    async def _forward(self, link: _Link, client_reader: asyncio.StreamReader) -> None:
        assert link.upstream is not None and link.up_reader is not None
        await asyncio.gather(
            self._pump(link, client_reader, link.upstream, WireDirection.CLIENT_TO_BROKER,
                       "client"),
            self._pump(link, link.up_reader, link.client, WireDirection.BROKER_TO_CLIENT,
                       "broker"),
        )

    async def _pump(
        self,
        link: _Link,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        direction: WireDirection,
        source_name: str,
    ) -> None:
        decoder = StreamDecoder()
        reason = f"{source_name} closed the connection"
        upstream = direction == WireDirection.CLIENT_TO_BROKER
        faults = self._faults
        outlet = Outlet(faults, sink, link.info.id, upstream)
        reorder = (_SubackReorder(outlet) if self.retained_before_suback
                   and direction == WireDirection.BROKER_TO_CLIENT else None)  # fmt: skip
        try:
            while True:
                data = await source.read(_CHUNK)
                if not data:
                    break
                held = decoder.buffered
                results = decoder.feed(data)
                if self.connack_delay_s and direction == WireDirection.BROKER_TO_CLIENT and any(
                        getattr(r, "type", None) == PacketType.CONNACK for r in results):
                    await asyncio.sleep(self.connack_delay_s)
                swallowed = ""
                if faults.active:
                    if faults.applying(FaultKind.TIMEOUT, link.info.id, upstream):
                        swallowed = "swallowed (timeout)"
                    elif upstream and faults.has(FaultKind.HALF_OPEN):
                        data, _cut = without_packets(data, results, held,
                                                     lambda p: p.type == "PINGREQ")
                for result in results:
                    mark = swallowed or ("swallowed (half_open)" if upstream and _pingreq(result)
                                         and faults.has(FaultKind.HALF_OPEN) else "")
                    self._record_result(link.info, direction, result, mark)
                if swallowed or not data:
                    continue
                if reorder is not None:
                    reorder.forward(data, results)
                else:
                    outlet.write(data)
                await outlet.drain()
        except (OSError, ssl.SSLError) as exc:
            reason = f"{source_name} side: {type(exc).__name__}: {exc}"
        finally:
            outlet.close()
            problem = decoder.close()
            if problem is not None:
                self._record_problem(link.info, direction, problem)
            if decoder.skipped_bytes:
                skipped = f"{decoder.skipped_bytes} bytes not decoded after a framing error"
                self._record_problem(link.info, direction, DecodeProblem(skipped))
            # One side ended: end the other too, so its pump returns.
            link.abort(reason)

    def _record_problem(self, conn: TapConnection, direction: WireDirection,
                        problem: DecodeProblem) -> None:
        fields = {"sample": problem.sample} if problem.sample else {}
        self._record(conn, RecordKind.DECODE_ERROR, direction=direction, detail=problem.reason,
                     fields=fields)

    def _abort_all(self, reason: str) -> None:
        for link in list(self._links.values()):
            link.abort(reason)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._port_hold is not None:
            self._port_hold.close()
            self._port_hold = None
        self._abort_all("tap stopped")
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None


def _pingreq(result: Any) -> bool:
    return isinstance(result, MqttPacket) and result.type == "PINGREQ"
