"""The mosquitto backend: Debian's ``mosquitto`` run in the foreground with a generated
config, a password file made by ``mosquitto_passwd``, optional TLS, and its log kept.

mosquitto cannot report a port it picked itself, so a free port is chosen just before
start and the start is retried if another program took it in between.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Unpack

from harness import lifetime
from harness.broker.base import (
    BrokerEvent,
    LocalBroker,
    LocalBrokerOptions,
    check_port_free,
    pick_free_port,
)
from harness.deadline import Deadline
from harness.errors import BrokerError, BrokerNotInstalled

INSTALL_HINT = "install it with: sudo apt-get install mosquitto (or your OS's mosquitto package)"
_CONNECT_LINE = re.compile(
    r"^(?P<time>\d+): New client connected from (?P<remote>\S+) as (?P<client_id>\S+) "
    r"\(p(?P<protocol>\d+), c(?P<clean>\d), k(?P<keepalive>\d+)(?:, u'(?P<username>[^']*)')?\)"
)
_DISCONNECT_LINE = re.compile(r"^(?P<time>\d+): Client (?P<client_id>\S+) (?:disconnected|closed)")
_SUBSCRIBE_LINE = re.compile(r"^(?P<time>\d+): Received SUBSCRIBE from (?P<client_id>\S+)")
_PUBLISH_LINE = re.compile(
    r"^(?P<time>\d+): Received PUBLISH from (?P<client_id>\S+) "
    r"\(d(?P<dup>\d), q(?P<qos>\d), r(?P<retain>\d), m\d+, '(?P<topic>[^']*)'"
)
_ATTEMPTS = 3
_DB_FILE = "mosquitto.db"


def _search_path() -> str:
    """``PATH`` plus the ``sbin`` sibling of each of its ``bin`` folders: Debian installs
    the broker in /usr/sbin, which a normal user's ``PATH`` often lacks."""
    entries = [entry for entry in os.environ.get("PATH", os.defpath).split(os.pathsep) if entry]
    siblings = [str(Path(entry).with_name("sbin")) for entry in entries
                if Path(entry).name == "bin"]
    return os.pathsep.join(dict.fromkeys(entries + siblings))


def find_mosquitto() -> tuple[Path, Path]:
    """Paths of ``mosquitto`` and ``mosquitto_passwd``, or :class:`BrokerNotInstalled`."""
    found = []
    search = _search_path()
    for program in ("mosquitto", "mosquitto_passwd"):
        path = shutil.which(program, path=search)
        if path is None:
            raise BrokerNotInstalled(f"{program} is not installed", hint=INSTALL_HINT)
        found.append(Path(path))
    return found[0], found[1]


def mosquitto_installed() -> bool:
    try:
        find_mosquitto()
    except BrokerNotInstalled:
        return False
    return True


class MosquittoBroker(LocalBroker):
    """A mosquitto process owned by this object; ``stop()`` terminates it."""

    name = "mosquitto"

    def __init__(self, **options: Unpack[LocalBrokerOptions]) -> None:
        super().__init__(**options)
        self._process: subprocess.Popen[bytes] | None = None

    def log_text(self) -> str:
        try:
            return self._log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def events(self) -> list[BrokerEvent]:
        """connect/subscribe/publish/disconnect parsed from the ``-v`` log."""
        events: list[BrokerEvent] = []
        for line in self.log_text().splitlines():
            if match := _CONNECT_LINE.match(line):
                events.append(
                    BrokerEvent(
                        "connect",
                        match["client_id"],
                        float(match["time"]),
                        {
                            "remote": match["remote"],
                            # mosquitto's own protocol enum: p2 = MQTT 3.1.1, p1 = 3.1
                            "protocol": f"p{match['protocol']}",
                            "clean_session": match["clean"] == "1",
                            "keepalive": int(match["keepalive"]),
                            "username": match["username"],
                        },
                    )
                )
            elif match := _SUBSCRIBE_LINE.match(line):
                events.append(BrokerEvent("subscribe", match["client_id"], float(match["time"])))
            elif match := _PUBLISH_LINE.match(line):
                fields = {
                    "topic": match["topic"],
                    "qos": int(match["qos"]),
                    "retain": match["retain"] == "1",
                }
                events.append(
                    BrokerEvent("publish", match["client_id"], float(match["time"]), fields)
                )
            elif (match := _DISCONNECT_LINE.match(line)) and match["client_id"] != "<unknown>":
                events.append(BrokerEvent("disconnect", match["client_id"], float(match["time"])))
        return events

    # -- configuration ----------------------------------------------------------------
    def _write_password_file(self, passwd_program: Path) -> Path:
        path = self.workdir / "mosquitto-passwords"
        # Plain text first, hashed in place with -U: the password never goes on a command line.
        path.write_text(
            "".join(f"{user}:{password}\n" for user, password in (self.users or {}).items()),
            encoding="utf-8",
        )
        path.chmod(0o644)
        result = lifetime.run([str(passwd_program), "-U", str(path)], timeout=30, check=False,
                              text=True)
        if result.returncode != 0:
            raise BrokerError(f"mosquitto_passwd failed: {result.stdout.strip()}")
        return path

    def _write_config(self, port: int, tls_port: int | None, password_file: Path | None) -> Path:
        # Persistence on, so a restart with keep_state finds its retained messages and
        # sessions (mosquitto writes the database when it stops); _forget_state drops it.
        lines = ["per_listener_settings false", "persistence true",
                 f"persistence_location {self.workdir}/", f"persistence_file {_DB_FILE}",
                 "log_type all"]
        if os.geteuid() == 0:
            # As root mosquitto drops to its own user before reading keys in our 0700 workdir.
            lines.append("user root")
        if password_file is not None:
            lines += ["allow_anonymous false", f"password_file {password_file}"]
        else:
            lines.append("allow_anonymous true")
        lines.append(f"listener {port} {self.host}")
        if tls_port is not None and self.tls is not None:
            lines += [
                f"listener {tls_port} {self.host}",
                f"certfile {self.tls.chain_pem}",
                f"keyfile {self.tls.key_pem}",
            ]
        path = self.workdir / "mosquitto.conf"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    # -- lifecycle ----------------------------------------------------------------------
    def _start(self, timeout: float) -> None:
        program, passwd_program = find_mosquitto()
        if self.tls is not None:
            self.tls.check_files()
        check_port_free(self.host, self._wanted_port)
        check_port_free(self.host, self._wanted_tls_port)
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self._saved_state is None:
            self._forget_state()  # a fresh start never inherits an earlier run's database
        password_file = self._write_password_file(passwd_program) if self.users else None
        deadline = Deadline(timeout, "mosquitto to accept connections")
        for attempt in range(1, _ATTEMPTS + 1):
            port = self._wanted_port or pick_free_port(self.host)
            tls_port = None
            if self.tls is not None:
                tls_port = self._wanted_tls_port or pick_free_port(self.host)
            config = self._write_config(port, tls_port, password_file)
            with self._log_path.open("ab") as log_file:
                self._process = lifetime.spawn(
                    [str(program), "-v", "-c", str(config)],
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,  # Ctrl-C in a terminal goes to us, we stop it
                )
            if self._wait_ready(port, tls_port, deadline):
                self._port, self._tls_port = port, tls_port
                return
            in_use = "Address already in use" in self.log_text()
            self._kill()
            if not in_use or self._wanted_port or attempt == _ATTEMPTS:
                break
        tail = " | ".join(self.log_text().strip().splitlines()[-3:])
        raise BrokerError(f"mosquitto did not start: {tail or 'no output'} (log: {self._log_path})")

    def _wait_ready(self, port: int, tls_port: int | None, deadline: Deadline) -> bool:
        """True once every listener accepts TCP; False if the process exits first."""
        assert self._process is not None
        pending = [p for p in (port, tls_port) if p is not None]
        while pending:
            if self._process.poll() is not None:
                return False
            try:
                with socket.create_connection((self.host, pending[0]), timeout=0.5):
                    pending.pop(0)
                    continue
            except OSError:
                pass
            if deadline.expired:
                last_lines = self.log_text().strip().splitlines()
                raise deadline.fail(last_lines[-1] if last_lines else "no log output")
            time.sleep(min(0.02, deadline.remaining()))  # retry interval of a polled wait
        return True

    def _kill(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            lifetime.stop(process)

    def _stop(self) -> None:
        self._kill()
        self._port = self._tls_port = None

    def _save_state(self) -> Any:
        return True  # mosquitto saves its database itself when it stops

    def _forget_state(self) -> None:
        (self.workdir / _DB_FILE).unlink(missing_ok=True)
