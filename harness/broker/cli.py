"""``python -m harness broker``: a broker (and, with ``--tls``, the TLS/SNI front and
wire tap) for a developer with a board on the desk. Runs until SIGINT/SIGTERM and then
removes everything it made (including the info file, whose paths would be stale)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
from contextlib import ExitStack
from pathlib import Path
from types import FrameType
from typing import Any

from harness import lifetime
from harness.broker.base import open_broker
from harness.broker.pki import DEFAULT_NAMES, TestPki
from harness.broker.tap import Tap, TapTls
from harness.broker.tap_records import TapRecord
from harness.errors import ConfigError
from harness.redact import redact
from harness.run_files import TAP_TRACE


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        choices=("amqtt", "mosquitto"),
        default="amqtt",
        help="broker to run (default: embedded amqtt)",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="add the TLS/SNI front and MQTT wire tap with a fresh test PKI",
    )
    parser.add_argument(
        "--require-sni",
        metavar="NAME",
        help="refuse TLS handshakes without this SNI (implies --tls)",
    )
    parser.add_argument("--user", metavar="U", help="require this MQTT user name; its password "
                        f"comes from ${PASSWORD_ENV} or --password-file (never argv, which "
                        "`ps` shows)")
    parser.add_argument("--password-file", type=Path, metavar="FILE",
                        help="file holding the password for --user (first line)")
    # Refused with a pointer to the safe ways: a password on argv is visible in `ps`.
    parser.add_argument("--password", metavar="P", help=argparse.SUPPRESS)
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on; a board on the LAN needs this host's LAN "
        "address (default 127.0.0.1)",
    )
    parser.add_argument("--port", type=int, default=0, help="plain MQTT port (default: free port)")
    parser.add_argument(
        "--tls-port", type=int, default=0, help="TLS front port (default: free port)"
    )
    parser.add_argument(
        "--name",
        dest="names",
        action="append",
        metavar="NAME",
        help=f"server certificate SAN (repeatable; default: {', '.join(DEFAULT_NAMES)} and --host)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="keep certificates, logs and the tap record here (default: a "
        "temporary directory removed at exit)",
    )
    parser.add_argument(
        "--info-file",
        type=Path,
        metavar="FILE",
        help="write connection details as JSON here once ready",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="print the tap's decoded packets live (with --tls)",
    )


PASSWORD_ENV = "HIL_BROKER_PASSWORD"


def _validate(args: argparse.Namespace) -> None:
    if args.password is not None:
        raise ConfigError("--password would show the password to every user in `ps`",
                          hint=f"set {PASSWORD_ENV} in the environment or use --password-file")
    args.password = _read_password(args)
    if (args.user is None) != (args.password is None):
        raise ConfigError("--user needs a password and a password needs --user",
                          hint=f"give --user with {PASSWORD_ENV} or --password-file, or neither")
    for option in ("port", "tls_port"):
        value = getattr(args, option)
        if not 0 <= value <= 65535:
            raise ConfigError(f"--{option.replace('_', '-')} {value} is not a TCP port (0-65535)")
    if args.require_sni:
        args.tls = True


def _read_password(args: argparse.Namespace) -> str | None:
    if args.password_file is not None:
        try:
            lines = args.password_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(f"cannot read --password-file {args.password_file}: "
                              f"{exc.strerror or exc}") from exc
        if not lines or not lines[0]:
            raise ConfigError(f"--password-file {args.password_file} is empty",
                              hint="write the password on its first line")
        return str(lines[0])
    return os.environ.get(PASSWORD_ENV) or None


def _write_info(path: Path, info: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    temporary.chmod(0o600)  # it holds the MQTT password
    temporary.replace(path)


def run(args: argparse.Namespace) -> int:
    _validate(args)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    users = {args.user: args.password} if args.user else None
    secrets = [args.password] if args.password else []
    own_workdir = args.workdir is None
    workdir: Path = lifetime.temp_dir("hil-broker-") if own_workdir else args.workdir
    try:
        with ExitStack() as stack:
            info = _start(args, stack, workdir, users, secrets)
            if args.info_file is not None:
                _write_info(args.info_file, info)
                stack.callback(args.info_file.unlink, missing_ok=True)
            shown = {k: v for k, v in info.items() if k != "password"}
            print(redact(f"broker ready: {json.dumps(shown)}", secrets), flush=True)
            print("press Ctrl-C to stop", flush=True)
            stop.wait()
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if own_workdir:
            lifetime.remove_dir(workdir)


def _start(
    args: argparse.Namespace,
    stack: ExitStack,
    workdir: Path,
    users: dict[str, str] | None,
    secrets: list[str],
) -> dict[str, Any]:
    """Start broker (and front) on ``stack``; the info-file contents."""
    workdir.mkdir(parents=True, exist_ok=True)
    pki = None
    if args.tls:
        names = tuple(args.names or DEFAULT_NAMES)
        if args.host not in names and args.host != "0.0.0.0":
            names += (args.host,)
        pki = TestPki.create(workdir / "pki", names)
    broker = open_broker(
        args.backend, users=users, workdir=workdir / "broker", host=args.host, port=args.port
    )
    stack.callback(broker.stop)
    broker.start()
    tap = None
    if pki is not None:

        def show(record: TapRecord) -> None:
            print(redact(record.summary(), secrets), flush=True)

        tap = Tap(
            (broker.host, broker.port),
            TapTls(pki.server, require_sni=args.require_sni),
            record_path=workdir / TAP_TRACE,
            listen_host=args.host,
            listen_port=args.tls_port,
            secrets=secrets,
            on_record=show if args.verbose else None,
        )
        stack.callback(tap.stop)
        tap.start()
    return {
        "backend": args.backend,
        "host": args.host,
        "port": broker.port,
        "tls_port": tap.port if tap is not None else None,
        "ca_pem": str(pki.ca_pem) if pki else None,
        "ca_der": str(pki.ca_der) if pki else None,
        "username": args.user,
        "password": args.password,
        "require_sni": args.require_sni,
        "tap_log": str(tap.record_path) if tap is not None else None,
        "broker_log": str(broker.log_path) if broker.log_path else None,
        "pid": os.getpid(),
    }
