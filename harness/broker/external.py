"""An external broker given by URL (EMQX, a lab broker): nothing to start, only a
reachability check that fails with one clear line."""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import unquote, urlsplit

from harness.broker.base import Broker
from harness.deadline import Deadline
from harness.errors import BrokerError, BrokerUnreachable, ConfigError, PkiError

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


class ExternalBroker(Broker):
    """``mqtt://[user:pass@]host[:port]`` or ``mqtts://...`` with ``ca_file`` for TLS."""

    name = "external"
    needs_workdir = False

    def __init__(self, url: str, *, ca_file: Path | None = None) -> None:
        try:
            parts = urlsplit(url.strip())
            url_port = parts.port
        except ValueError as exc:
            raise ConfigError(f"bad broker URL {self._safe(url)!r}: {exc}") from exc
        if parts.scheme not in DEFAULT_PORTS:
            raise ConfigError(
                f"unsupported URL scheme {parts.scheme or '(none)'!r} in {self._safe(url)!r}",
                hint="use mqtt://host:1883 or mqtts://user:pass@host:8883",
            )
        if not parts.hostname:
            raise ConfigError(f"broker URL {self._safe(url)!r} has no host name")
        users = None
        if parts.username:
            users = {unquote(parts.username): unquote(parts.password or "")}
        super().__init__(users=users, tls=None, workdir=None, host=parts.hostname)
        self.scheme = parts.scheme
        self.url_port = url_port or DEFAULT_PORTS[parts.scheme]
        self.ca_file = ca_file
        if self.scheme == "mqtts" and ca_file is not None and not ca_file.is_file():
            raise PkiError(
                f"CA file {ca_file} for {self.safe_url} does not exist",
                hint="pass the CA that signed the broker's certificate",
            )

    @staticmethod
    def _safe(url: str) -> str:
        """The URL with any password masked, for messages."""
        try:
            parts = urlsplit(url)
            if parts.password:
                return url.replace(f":{parts.password}@", ":***@", 1)
        except ValueError:
            pass
        return url

    @property
    def safe_url(self) -> str:
        user = f"{self.username}:***@" if self.username else ""
        return f"{self.scheme}://{user}{self.host}:{self.url_port}"

    @property
    def port(self) -> int:
        if self.scheme != "mqtt":
            raise BrokerError(
                f"{self.safe_url} has no plain-TCP listener", hint="use tls_port with a CA file"
            )
        return self.url_port

    @property
    def tls_port(self) -> int | None:
        return self.url_port if self.scheme == "mqtts" else None

    def _start(self, timeout: float) -> None:
        deadline = Deadline(timeout, f"a TCP connection to {self.safe_url}")
        try:
            with socket.create_connection((self.host, self.url_port), timeout=deadline.remaining()):
                pass
        except OSError as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
            raise BrokerUnreachable(
                f"cannot reach broker {self.safe_url}: {reason}",
                hint="check the host, port and network, or use the embedded broker (amqtt)",
            ) from exc

    def _stop(self) -> None:
        """Nothing to stop: the broker is not ours."""
