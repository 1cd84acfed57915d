"""``python -m harness broker``: ready info file, live decoded packets, clean exit on
SIGTERM/SIGINT leaving nothing behind, and one-line errors."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness import lifetime
from harness.broker import Observer
from harness.broker.cli import PASSWORD_ENV
from harness.broker.mosquitto_broker import find_mosquitto
from harness.deadline import Deadline
from harness.errors import BrokerNotInstalled

pytestmark = pytest.mark.unit


def start_cli(tmp_path: Path, *args: str,
              env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], Path]:
    out = tmp_path / "cli.out"
    with out.open("wb") as sink:
        process = lifetime.spawn(
            [sys.executable, "-m", "harness", "broker", *args],
            stdout=sink, stderr=subprocess.STDOUT, cwd=tmp_path,
            env={**os.environ, **(env or {})},
        )  # fmt: skip
    return process, out


def wait_info(process: subprocess.Popen[bytes], info_file: Path, out: Path) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        if process.poll() is not None:
            raise AssertionError(f"CLI exited early: {out.read_text()}")
        return json.loads(info_file.read_text()) if info_file.exists() else None

    return Deadline(30, "the broker CLI's info file").poll(ready, interval=0.05, seen=out.read_text)


@pytest.mark.parametrize("backend", ["amqtt", "mosquitto"])
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_cli_serves_tls_with_sni_and_cleans_up(
    tmp_path: Path, backend: str, stop_signal: signal.Signals
) -> None:
    if backend == "mosquitto":
        try:
            find_mosquitto()
        except BrokerNotInstalled as exc:
            pytest.skip(str(exc))
    info_file = tmp_path / "info.json"
    process, out = start_cli(
        tmp_path, "--backend", backend, "--tls", "--require-sni", "localhost",
        "--user", "emqx", "--info-file", str(info_file), "-v",
        env={PASSWORD_ENV: "cli-secret-9"},
    )  # fmt: skip
    try:
        info = wait_info(process, info_file, out)
        assert {"host", "port", "tls_port", "ca_pem", "ca_der", "username", "password",
                "require_sni", "tap_log"} <= info.keys()  # fmt: skip
        assert (info["username"], info["password"], info["require_sni"]) == (
            "emqx", "cli-secret-9", "localhost",
        )  # fmt: skip
        assert Path(info["ca_der"]).read_bytes()[:1] == b"\x30"  # DER SEQUENCE
        with Observer("127.0.0.1", info["tls_port"], ca_file=Path(info["ca_pem"]),
                      server_hostname="localhost", username="emqx",
                      password="cli-secret-9", client_id="cli-check") as observer:  # fmt: skip
            observer.subscribe("cli/t")
            observer.publish("cli/t", "via cli")
            observer.wait_for_messages(1, "cli/t")
        workdir = Path(info["tap_log"]).parent
        tap_lines = [json.loads(x) for x in Path(info["tap_log"]).read_text().splitlines()]
        assert any(x.get("type") == "CONNECT" for x in tap_lines)
        assert any(x["kind"] == "sni" and x["detail"] == "localhost" for x in tap_lines)
    finally:
        process.send_signal(stop_signal)
        assert process.wait(timeout=20) == 0
    text = out.read_text()
    assert "broker ready" in text and '"client_id": "cli-check"' in text and "b2c CONNACK" in text
    assert "cli-secret-9" not in text
    assert not info_file.exists() and not workdir.exists()
    for port in (info["port"], info["tls_port"]):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()


def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return lifetime.run(
        [sys.executable, "-m", "harness", "broker", *args],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False,
    )  # fmt: skip


def test_cli_user_without_password_is_one_line(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "--user", "emqx")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "harness broker: error: --user needs a password and a password needs --user — give "
        f"--user with {PASSWORD_ENV} or --password-file, or neither"
    )


def test_cli_refuses_a_password_on_the_command_line(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "--user", "emqx", "--password", "in-ps-for-all")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert "would show the password to every user in `ps`" in result.stderr
    assert "in-ps-for-all" not in result.stderr


def test_cli_reads_the_password_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("from-a-file\n")
    info_file = tmp_path / "info.json"
    process, out = start_cli(tmp_path, "--user", "emqx", "--password-file", str(secret),
                             "--info-file", str(info_file))
    try:
        info = wait_info(process, info_file, out)
        assert info["password"] == "from-a-file"
        with Observer("127.0.0.1", info["port"], username="emqx", password="from-a-file",
                      client_id="pw-file-check") as observer:
            observer.subscribe("pw/t")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0


def test_cli_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run_cli(tmp_path, "--port", str(port))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
