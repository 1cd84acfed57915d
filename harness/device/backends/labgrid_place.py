"""A board from a labgrid farm: ``--hil-device labgrid:PLACE`` or ``labgrid:TAG=VALUE,...``.

The session reserves a place through the labgrid coordinator (a reservation with the
filter ``name=PLACE`` or the tags given, so several sessions or xdist workers asking at
once each get a place of their own, and those that find none free wait in labgrid's queue),
acquires it, takes its ``NetworkSerialPort`` (the RFC2217 port an exporter publishes for
ser2net) and drives the board through the same RFC2217 path as ``--hil-device
rfc2217://…``. Release and reservation cancel are registered on the session's exit stack
the moment they are owed, so they happen on every exit path (test end, Ctrl-C, SIGTERM,
pytest-timeout).

labgrid's own configuration applies: ``LG_COORDINATOR`` (default ``127.0.0.1:20408``),
``LG_PLACE`` for a bare ``labgrid``, ``LG_PROXY``, ``LG_HOSTNAME`` / ``LG_USERNAME``.
labgrid's client library is used as it is (optional extra ``farm``); it runs on an event
loop in a thread of its own, and every call waits with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from harness import env as hil_env
from harness.deadline import Deadline
from harness.device.backends import BoardRequest, WifiNetwork
from harness.device.backends.pool import BOARD_WAIT_S
from harness.device.backends.serial_port import (
    ANY_INTERFACE,
    open_port,
    require_wifi,
)
from harness.device.device import Device
from harness.errors import ConfigError, DeviceError, PortBusy

PREFIX = "labgrid"
ENV_COORDINATOR = hil_env.LG_COORDINATOR
ENV_PLACE = hil_env.LG_PLACE
DEFAULT_COORDINATOR = "127.0.0.1:20408"  # labgrid's default
INSTALL_HINT = "install labgrid (pip install 'esp32-mqtt-hil[farm]')"
CALL_TIMEOUT_S = 15.0  # one coordinator round trip, generous for a loaded lab server
POLL_S = 0.25
_FILTER = re.compile(r"^[a-z][a-z0-9_]*=[A-Za-z0-9_.-]+$")

T = TypeVar("T")


class LabgridError(DeviceError):
    """The coordinator refused, is unreachable, or the place has no usable serial port."""


def parse_filters(spec: str, default_place: str | None = None) -> dict[str, str]:
    """``labgrid:PLACE`` -> ``{"name": PLACE}``; ``labgrid:board=esp32,lab=b`` -> the tags;
    a bare ``labgrid`` -> ``default_place`` (LG_PLACE, read at the edge)."""
    rest = spec.removeprefix(PREFIX).removeprefix(":").strip() or (default_place or "")
    if not rest:
        raise ConfigError(f"--hil-device {spec!r} names no place; use labgrid:PLACE, "
                          f"labgrid:TAG=VALUE (e.g. labgrid:board=esp32) or set {ENV_PLACE}")
    if "=" not in rest:
        return {"name": rest}
    filters: dict[str, str] = {}
    for pair in (part.strip() for part in rest.split(",")):
        if not _FILTER.match(pair):
            raise ConfigError(f"--hil-device {spec!r}: {pair!r} is not a tag filter; use "
                              "KEY=VALUE with a lower-case key, e.g. labgrid:board=esp32")
        key, _, value = pair.partition("=")
        filters[key] = value
    return filters


def describe(filters: dict[str, str]) -> str:
    if set(filters) == {"name"}:
        return f"place {filters['name']}"
    return "a place tagged " + ",".join(f"{k}={v}" for k, v in filters.items())


def _configure_grpc() -> None:
    """Before gRPC loads: no fork handlers (this process forks interpreters, emulated boards
    and tools while gRPC threads run; its handlers crash children between fork and exec,
    and children here always exec) and no notices about that in every log.

    This is configuration the harness gives a library, not a value it reads: gRPC's core
    takes it from the process environment when it loads, so it is set here, just before
    the one import of labgrid's client (any process that gets this far: plugin, farm,
    a script), and only where the user has not set it."""
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")


_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()
_sessions: dict[str, tuple[Any, int]] = {}  # coordinator address -> (session, users)
_sessions_lock = threading.Lock()


def _client_loop() -> asyncio.AbstractEventLoop:
    """The one event loop (in a daemon thread) every labgrid client of this process uses:
    gRPC's asyncio layer binds to a single loop per process."""
    global _loop
    with _loop_lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="labgrid-client",
                             daemon=True).start()
        return _loop


class LabgridClient:
    """A session with a labgrid coordinator: reserve, acquire, look up, release."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address or DEFAULT_COORDINATOR  # LG_COORDINATOR, read at the edge
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: Any = None
        self._key = ""

    # --- connection --------------------------------------------------------------------
    def connect(self, timeout: float = CALL_TIMEOUT_S) -> LabgridClient:
        """Join this process's session with the coordinator (opening it on first use: the
        coordinator tells clients apart by their connection, which gRPC shares between
        channels to one address, so a process has one session per coordinator)."""
        _configure_grpc()
        try:
            from labgrid.remote.client import ClientSession
            from labgrid.util.proxy import proxymanager
        except ImportError as exc:
            raise ConfigError(f"--hil-device labgrid:… needs labgrid; {INSTALL_HINT}") from exc
        self._loop = _client_loop()
        address = proxymanager.get_grpc_address(self.address, default_port=20408)

        async def open_session() -> Any:
            session = ClientSession(address, asyncio.get_running_loop())
            await session.start()
            return session

        with _sessions_lock:
            shared = _sessions.get(address)
            if shared is not None and shared[0].stopping.is_set():  # its coordinator went
                del _sessions[address]
                shared = None
            if shared is None:
                shared = (self._call(open_session(), timeout, "connecting"), 0)
            _sessions[address] = (shared[0], shared[1] + 1)
        self._session, self._key = shared[0], address
        return self

    def close(self) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        with _sessions_lock:
            current = _sessions.get(self._key)
            last = current is None or current[1] <= 1
            if current is not None:
                if last:
                    del _sessions[self._key]
                else:
                    _sessions[self._key] = (current[0], current[1] - 1)
        if last and self._loop is not None:
            with contextlib.suppress(Exception):
                self._call(self._stop_session(session), 5.0, "disconnecting")

    @staticmethod
    async def _stop_session(session: Any) -> None:
        await session.stop()
        await session.close()

    def __enter__(self) -> LabgridClient:
        return self.connect()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(self, coroutine: Coroutine[Any, Any, T], timeout: float, what: str) -> T:
        """Run ``coroutine`` on the client's loop; one-line errors for coordinator trouble."""
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise LabgridError(f"the labgrid coordinator at {self.address} did not answer "
                               f"within {timeout:g} s ({what}); check {ENV_COORDINATOR} and "
                               "that labgrid-coordinator runs there") from None
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                future.cancel()
                raise
            raise self._explain(exc, what) from exc

    def _explain(self, exc: BaseException, what: str) -> LabgridError:
        details = getattr(exc, "details", None)
        text = str(details() if callable(details) else exc).strip() or type(exc).__name__
        if "connect to coordinator" in text or "UNAVAILABLE" in text.upper():
            return LabgridError(f"cannot reach the labgrid coordinator at {self.address}; "
                                f"start labgrid-coordinator there or set {ENV_COORDINATOR}="
                                "HOST:PORT")
        return LabgridError(f"labgrid coordinator at {self.address}: {what} failed: {text}")

    def _rpc(self, method: str, request: Any, what: str) -> Any:
        """One coordinator call, made on the client's loop."""
        async def call() -> Any:
            return await getattr(self.session.stub, method)(request)

        return self._call(call(), CALL_TIMEOUT_S, what)

    @property
    def session(self) -> Any:
        if self._session is None:
            raise LabgridError("not connected to a labgrid coordinator; call connect() first")
        return self._session

    # --- places ------------------------------------------------------------------------
    def reserve(self, filters: dict[str, str]) -> str:
        """A reservation token (labgrid queues it until a matching place is free)."""
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb2

        request = pb2.CreateReservationRequest(
            filters={"main": pb2.Reservation.Filter(filter=filters)}, prio=0)
        response = self._rpc("CreateReservation", request, f"reserving {describe(filters)}")
        return str(response.reservation.token)

    def wait_allocated(self, token: str, filters: dict[str, str], timeout: float) -> str:
        """The place the coordinator allocated to reservation ``token``."""
        from labgrid.remote.common import Reservation, ReservationState
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb2

        self._check_exists(filters)
        deadline = Deadline(timeout, f"labgrid to allocate {describe(filters)}")
        while True:
            response = self._rpc("PollReservation", pb2.PollReservationRequest(token=token),
                                 "polling the reservation")
            reservation = Reservation.from_pb2(response.reservation)
            if reservation.state is not ReservationState.waiting:
                places = reservation.allocations.get("main") or []
                if reservation.state in (ReservationState.allocated,
                                         ReservationState.acquired) and places:
                    return str(places[0])
                raise LabgridError(f"labgrid reservation {token} for {describe(filters)} "
                                   f"ended as {reservation.state.name}")
            if deadline.expired:
                raise PortBusy(f"no labgrid place free for {describe(filters)} after "
                               f"{deadline.seconds:g} s: {self._holders(filters)}; wait, or "
                               f"set {hil_env.BOARD_WAIT} to wait longer")
            time.sleep(min(POLL_S, deadline.remaining()))

    def _matching(self, filters: dict[str, str]) -> list[Any]:
        places = list(self.session.places.values())
        return [p for p in places
                if all((p.name if k == "name" else p.tags.get(k)) == v
                       for k, v in filters.items())]

    def _check_exists(self, filters: dict[str, str]) -> None:
        if not self._matching(filters):
            known = ", ".join(sorted(self.session.places)) or "none"
            raise LabgridError(f"the labgrid coordinator at {self.address} has no "
                               f"{describe(filters)} (places: {known})")

    def _holders(self, filters: dict[str, str]) -> str:
        return "; ".join(f"{p.name} acquired by {p.acquired or 'a reservation'}"
                         for p in self._matching(filters)) or "none match"

    def acquire(self, place: str) -> None:
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb2

        async def acquire() -> None:
            await self.session.stub.AcquirePlace(pb2.AcquirePlaceRequest(placename=place))
            await self.session.sync_with_coordinator()

        self._call(acquire(), CALL_TIMEOUT_S, f"acquiring place {place}")

    def release(self, place: str) -> None:
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb2

        async def release() -> None:
            await self.session.stub.ReleasePlace(pb2.ReleasePlaceRequest(placename=place))
            await self.session.sync_with_coordinator()

        self._call(release(), CALL_TIMEOUT_S, f"releasing place {place}")

    def cancel(self, token: str) -> None:
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb2

        self._rpc("CancelReservation", pb2.CancelReservationRequest(token=token),
                  "cancelling the reservation")

    def create_place(self, name: str, pattern: str, tags: dict[str, str]) -> None:
        """A place matching the resources ``pattern`` (exporter/group/class), tagged."""
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb2

        async def create() -> None:
            stub = self.session.stub
            if name not in self.session.places:
                await stub.AddPlace(pb2.AddPlaceRequest(name=name))
            await stub.AddPlaceMatch(pb2.AddPlaceMatchRequest(placename=name, pattern=pattern))
            if tags:
                await stub.SetPlaceTags(pb2.SetPlaceTagsRequest(placename=name, tags=tags))
            await self.session.sync_with_coordinator()

        self._call(create(), CALL_TIMEOUT_S, f"creating place {name}")

    def sync(self) -> None:
        """Wait until the coordinator has sent every update so far."""
        self._call(self.session.sync_with_coordinator(), CALL_TIMEOUT_S, "syncing")

    def serial_url(self, place: str) -> str:
        """The pyserial URL of the acquired place's NetworkSerialPort (through LG_PROXY
        when labgrid is configured to tunnel)."""
        from labgrid.resource import NetworkSerialPort
        from labgrid.util.proxy import proxymanager

        record = self.session.places.get(place)
        resources = self.session.get_target_resources(record) if record is not None else {}
        ports = [r for (_, cls), r in sorted(resources.items()) if cls == "NetworkSerialPort"]
        if not ports:
            raise LabgridError(f"labgrid place {place} has no NetworkSerialPort resource; "
                               "export the board's serial port (RawSerialPort/USBSerialPort "
                               "through ser2net, or a NetworkSerialPort) and add-match it")
        remote = ports[0]
        if not remote.avail:
            raise LabgridError(f"the serial port of labgrid place {place} is not available "
                               "(its exporter is gone or the board is unplugged)")
        resource = NetworkSerialPort(None, None, **remote.args)
        resource.extra = remote.extra
        host, port = proxymanager.get_host_and_port(resource)
        scheme = "rfc2217" if resource.protocol == "rfc2217" else "socket"
        return f"{scheme}://{host}:{port}"


@dataclass
class LabgridBackend:
    """A place of a labgrid farm, reserved and acquired for this session."""

    request: BoardRequest
    controls_wifi: bool = False
    reset_at_start: bool = True
    board: str = field(init=False)
    wifi: WifiNetwork = field(init=False)
    place: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.filters = parse_filters(self.request.spec, self.request.env.labgrid_place)
        self.board = self.request.spec
        self.wifi = WifiNetwork("", "")

    def open(self, stack: contextlib.ExitStack) -> Device:
        from harness.hardware.reset import hard_reset

        self.wifi = require_wifi(self.request)
        client = LabgridClient(self.request.env.labgrid_coordinator).connect()
        stack.callback(client.close)
        token = client.reserve(self.filters)
        stack.callback(_quietly, client.cancel, token)
        wait = self.request.env.board_wait_s
        place = client.wait_allocated(token, self.filters, BOARD_WAIT_S if wait is None else wait)
        client.acquire(place)
        stack.callback(_quietly, client.release, place)
        self.place = place
        url = client.serial_url(place)
        self.board = f"{PREFIX}:{place} ({url})"
        return open_port(url, self.request, hard_reset)

    def prepare_wifi(self, delay: float, *, link_control: bool = False) -> None:
        return None  # the lab's access point associates when it does

    def set_link(self, *, down: bool, ip: str | None = None) -> None:
        from harness.faults import FaultNotApplicable

        raise FaultNotApplicable("a labgrid board's Wi-Fi is not the harness's to drop")


def _quietly(action: Any, argument: str) -> None:
    """Clean-up that must not hide the error that ended the session."""
    with contextlib.suppress(LabgridError):
        action(argument)


class LabgridFactory:
    name = "labgrid"
    forms = "labgrid:PLACE or labgrid:TAG=VALUE (a labgrid farm; LG_COORDINATOR)"
    runs_profiles = False

    def claims(self, spec: str) -> bool:
        return spec == PREFIX or spec.startswith(PREFIX + ":")

    def check(self, spec: str) -> None:
        if spec.strip() != PREFIX:  # a bare one takes LG_PLACE when the session starts
            parse_filters(spec)

    def broker_bind(self, broker_host: str | None) -> str:
        return broker_host or ANY_INTERFACE

    def server_name(self, broker_host: str | None, broker_name: str | None,
                    default: str) -> str:
        return broker_name or broker_host or default

    def create(self, request: BoardRequest) -> LabgridBackend:
        return LabgridBackend(request)
