"""The broker interface shared by amqtt, mosquitto and an external broker, and its factory."""

from __future__ import annotations

import abc
import atexit
import errno
import socket
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypedDict, Unpack

from harness import lifetime
from harness.errors import BrokerError, PortInUse

if TYPE_CHECKING:
    from harness.broker.pki import CertPair


@dataclass(frozen=True)
class BrokerEvent:
    """Something the broker itself reported: ``connect``, ``subscribe``, ``publish``,
    ``disconnect`` (and ``connect_refused`` where the backend tells)."""

    kind: str
    client_id: str
    wall_time: float
    fields: dict[str, Any] = field(default_factory=dict)


def check_port_free(host: str, port: int) -> None:
    """Raise :class:`PortInUse` when ``port`` (non-zero) cannot be bound on ``host``."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise port_error(host, port, exc) from exc


def port_error(host: str, port: int, exc: OSError) -> BrokerError:
    """The one-line error for a failed bind."""
    if exc.errno == errno.EADDRINUSE:
        return PortInUse(
            f"port {port} on {host} is already in use",
            hint="stop whatever listens there or pass port 0 to pick a free port",
        )
    return BrokerError(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


def pick_free_port(host: str) -> int:
    """A port that was free a moment ago (for programs that cannot report their own)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


# Started brokers, held until stopped: one a script dropped without stop() is still stopped
# at exit (and if the process is killed, harness.lifetime ends its process and folder).
_LIVE: set[Broker] = set()


@atexit.register
def _stop_forgotten_brokers() -> None:
    for broker in list(_LIVE):
        broker.stop()


class Broker(abc.ABC):
    """A running MQTT broker: where to connect, its log, and what it saw.

    Usable as a context manager; ``stop()`` is idempotent and also removes the working
    directory when the broker made its own.
    """

    name = "broker"
    needs_workdir = True  # False for backends that write no files

    def __init__(
        self,
        *,
        users: dict[str, str] | None,
        tls: CertPair | None,
        workdir: Path | None,
        host: str,
    ) -> None:
        self.users = dict(users) if users else None
        self.tls = tls
        self.host = host
        self._own_workdir = workdir is None and self.needs_workdir
        if workdir is not None:
            self.workdir = workdir
        elif self.needs_workdir:
            self.workdir = lifetime.temp_dir(f"hil-{self.name}-")
        else:
            self.workdir = Path.cwd()
        self._started = False

    # -- what every backend provides ------------------------------------------------
    @property
    @abc.abstractmethod
    def port(self) -> int:
        """The plain-TCP port."""

    @property
    @abc.abstractmethod
    def tls_port(self) -> int | None:
        """The TLS port, or None without a TLS listener."""

    @property
    def log_path(self) -> Path | None:
        return None

    def events(self) -> list[BrokerEvent]:
        """What the broker reported about its clients (empty where it cannot tell)."""
        return []

    @abc.abstractmethod
    def _start(self, timeout: float) -> None: ...

    @abc.abstractmethod
    def _stop(self) -> None: ...

    # -- lifecycle ------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> Self:
        """Start and wait until clients can connect; on failure nothing is left running."""
        if self._started:
            return self
        _LIVE.add(self)
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise
        self._started = True
        return self

    def stop(self) -> None:
        _LIVE.discard(self)
        try:
            self._stop()
        finally:
            self._started = False
            if self._own_workdir:
                lifetime.remove_dir(self.workdir)

    @property
    def username(self) -> str | None:
        """The first configured user (the one tests normally use)."""
        return next(iter(self.users)) if self.users else None

    @property
    def password(self) -> str | None:
        return self.users[self.username] if self.users and self.username else None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"{self.host}:{self.port}" if self._started else "stopped"
        return f"<{type(self).__name__} {state}>"


class LocalBrokerOptions(TypedDict, total=False):
    """Keyword options of every :class:`LocalBroker`."""

    users: dict[str, str] | None
    tls: CertPair | None
    workdir: Path | None
    host: str
    port: int
    tls_port: int


class LocalBroker(Broker):
    """A broker this machine runs (amqtt, mosquitto): it binds ``host`` and picks free
    ports unless ``port``/``tls_port`` are given."""

    def __init__(
        self,
        *,
        users: dict[str, str] | None = None,
        tls: CertPair | None = None,
        workdir: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        tls_port: int = 0,
    ) -> None:
        super().__init__(users=users, tls=tls, workdir=workdir, host=host)
        self._wanted_port = port
        self._wanted_tls_port = tls_port
        self._port: int | None = None
        self._tls_port: int | None = None
        self._log_path: Path = self.workdir / f"{self.name}.log"
        self._restart_ports: tuple[int, int] | None = None
        self._saved_state: Any = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise BrokerError(f"the {self.name} broker is not running", hint="call start() first")
        return self._port

    @property
    def tls_port(self) -> int | None:
        return self._tls_port

    @property
    def log_path(self) -> Path:
        return self._log_path

    # -- restart (a fault: the process goes away and comes back on the same ports) -------
    def go_down(self, *, keep_state: bool = False) -> None:
        """Stop serving, as a broker stopped for an upgrade; :meth:`come_back` restarts it
        on the same ports. ``keep_state``: what the backend persists survives."""
        if not self._started:
            raise BrokerError(f"the {self.name} broker is not running", hint="start() it first")
        self._restart_ports = (self.port, self.tls_port or 0)
        self._saved_state = self._save_state() if keep_state else None
        self._stop()
        if not keep_state:
            self._forget_state()

    def come_back(self, timeout: float = 15.0) -> None:
        """Start again after :meth:`go_down`, on the same ports (idempotent)."""
        ports = self._restart_ports
        if ports is None or self._port is not None:
            return
        wanted = (self._wanted_port, self._wanted_tls_port)
        self._wanted_port, self._wanted_tls_port = ports
        try:
            self._start(timeout)
        finally:
            self._wanted_port, self._wanted_tls_port = wanted
        self._restore_state(self._saved_state)
        self._saved_state = None

    def _save_state(self) -> Any:
        """What survives a restart with ``keep_state`` (the backend's persistence)."""
        return None

    def _restore_state(self, state: Any) -> None:
        """Put back what :meth:`_save_state` kept."""

    def _forget_state(self) -> None:
        """Drop persisted state, so the restarted broker starts empty."""


def open_broker(
    spec: str, *, ca_file: Path | None = None, **options: Unpack[LocalBrokerOptions]
) -> Broker:
    """A broker (not yet started) for ``spec``: ``amqtt`` or ``mosquitto`` (built with
    ``options``), or a ``mqtt://``/``mqtts://`` URL (then ``ca_file`` is the CA to verify
    it with)."""
    kind = spec.strip().lower()
    if kind == "amqtt":
        from harness.broker.amqtt_broker import AmqttBroker

        return AmqttBroker(**options)
    if kind == "mosquitto":
        from harness.broker.mosquitto_broker import MosquittoBroker

        return MosquittoBroker(**options)
    if "://" in spec:
        from harness.broker.external import ExternalBroker

        return ExternalBroker(spec, ca_file=ca_file)
    raise BrokerError(
        f"unknown broker {spec!r}",
        hint="use amqtt, mosquitto, or a URL like mqtts://user:pass@host:8883",
    )
