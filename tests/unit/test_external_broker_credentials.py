"""A whole HIL run against an external broker given by URL with its own user: the device,
the observer and the tap all use that user (the built-in one would be refused), and no
secret (MQTT password, Wi-Fi password, private key) is in any file of the results folder
that CI uploads, nor on the console."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.broker import open_broker
from harness.broker.base import Broker
from harness.device.backends.emulated import EMULATED_WIFI

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]
SECRET = "url-secret-77"


@pytest.fixture
def lab_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker that knows only alice, as a lab's or a vendor's broker knows its own users."""
    with open_broker("amqtt", users={"alice": SECRET}, workdir=tmp_path / "lab") as broker:
        yield broker


# The runs that write every kind of artifact with credentials in play: the messaging run
# (device, observer and tap on the lab's user), TLS, and a refusal (CONNACK 5 for a wrong
# password). The fault scenarios add no other kind, only time (about 35 s).
RUNS = "s4_ or s9_tls_connects or s11_"


@pytest.mark.hil_duration(13)
def test_url_credentials_are_used_and_no_secret_reaches_the_artifacts(
        lab_broker: Broker, tmp_path: Path) -> None:
    results = tmp_path / "results"
    url = f"mqtt://alice:{SECRET}@127.0.0.1:{lab_broker.port}"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-m", "hil", "-k", RUNS,
         f"--hil-broker={url}", f"--hil-results={results}",
         f"--hil-history={results / 'history'}", f"--junitxml={results / 'junit.xml'}",
         "-o", "junit_family=xunit1"],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    runs = {folder.name.split("-", 1)[1] for folder in results.glob("runs/*/*-*")}
    assert {"messaging", "tls-sni", "auth-wrong-password"} <= runs, runs
    taps = list(results.rglob("tap.jsonl"))
    assert taps, "no tap trace written"
    connects = [record["fields"] for tap in taps for record in map(json.loads, tap.read_text(
        ).splitlines()) if record.get("type") == "CONNECT"]
    assert connects and all(fields["username"] == "alice" for fields in connects), connects
    secrets = [SECRET.encode(), EMULATED_WIFI.password.encode(), b"PRIVATE KEY"]
    for secret in secrets:
        assert secret.decode() not in output
    files = [path for path in results.rglob("*") if path.is_file()]
    kinds = {path.name for path in files}
    assert {"serial.log", "tap.jsonl", "junit.xml", "hil-history.sqlite3"} <= kinds, files
    for artifact in files:
        data = artifact.read_bytes()
        for secret in secrets:
            assert secret not in data, f"{secret!r} in {artifact}"
