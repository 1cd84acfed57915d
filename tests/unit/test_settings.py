"""The settings contract: device_src/settings.py holds the rules; the harness checks a run's
settings with it under CPython, the device runs it under MicroPython, and both accept and
refuse the same files, naming the same key; the docs quote the table."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from harness import lifetime
from harness.errors import HarnessError, SettingsError
from harness.redact import redact
from harness.settings import SCHEMA, SETTINGS_PATH, DeviceSettings, schema_markdown, validate
from tests.unit.test_device_program_rig import DEVICE_SRC, MICROPYTHON, REPO

pytestmark = pytest.mark.unit

MINIMAL: dict[str, Any] = {"server": "broker.local", "topic": "raspberry/mqtt", "wifi_ssid": "lab"}

# (settings, the key the one-line error must name)
BAD: list[tuple[dict[str, Any], str]] = [
    ({**MINIMAL, "port": "1883"}, "port"),
    ({**MINIMAL, "port": 70000}, "port"),
    ({**MINIMAL, "port": True}, "port"),
    ({**MINIMAL, "tls": "yes"}, "tls"),
    ({**MINIMAL, "tls": True}, "ca_file"),
    ({**MINIMAL, "sni": 1}, "sni"),
    ({**MINIMAL, "keepalive": 1.5}, "keepalive"),
    ({**MINIMAL, "publish_interval": "1"}, "publish_interval"),
    ({**MINIMAL, "publish_interval": -1}, "publish_interval"),
    ({**MINIMAL, "password": 12345, "user": "emqx"}, "password"),
    ({**MINIMAL, "password": "public"}, "user"),
    ({**MINIMAL, "client_id": ""}, "client_id"),
    ({**MINIMAL, "reconnect": None}, "reconnect"),
    ({**MINIMAL, "colour": "blue"}, "colour"),
    ({"topic": "t", "wifi_ssid": "lab"}, "server"),
    ({**MINIMAL, "topic": ["a"]}, "topic"),
    ({**MINIMAL, "keepalive": 5, "publish_interval": 5}, "publish_interval"),
]
GOOD: list[dict[str, Any]] = [
    MINIMAL,
    {**MINIMAL, "tls": True, "ca_file": "/ca.pem", "sni": False, "port": None},
    {**MINIMAL, "user": "emqx", "password": "public", "client_id": "dev-1", "keepalive": 60,
     "publish_interval": 0.5, "reconnect": True, "reconnect_delay": 2, "mem_log_every": 100},
]


def test_defaults_follow_the_guide_and_umqtt() -> None:
    settings = DeviceSettings(**MINIMAL)
    assert settings.client_id is None  # -> micropython-client-<getrandbits(8)> on device
    assert (settings.keepalive, settings.publish_interval, settings.reconnect) == (0, 1, False)
    assert settings.effective_port == 1883
    assert DeviceSettings(**MINIMAL, tls=True, ca_file="/ca.pem").effective_port == 8883


@pytest.mark.parametrize(("data", "key"), BAD)
def test_a_bad_value_gives_one_line_naming_the_key(data: dict[str, Any], key: str) -> None:
    with pytest.raises(SettingsError) as info:
        DeviceSettings.from_mapping(data, source="bench.json")
    message = str(info.value)
    assert message.startswith(f"bench.json: {key}: "), message
    assert "\n" not in message
    assert "12345" not in message  # values are never echoed: they may be secrets
    assert isinstance(info.value, HarnessError)


def test_the_constructor_validates_too() -> None:
    with pytest.raises(SettingsError, match="port: expected an integer"):
        DeviceSettings(**MINIMAL, port="1883")  # type: ignore[arg-type]


def test_to_json_holds_every_key_and_reads_back() -> None:
    settings = DeviceSettings.from_mapping(GOOD[2])
    data = json.loads(settings.to_json())
    assert list(data) == [spec.key for spec in SCHEMA]
    assert DeviceSettings.from_json(settings.to_json()) == settings


def test_redacted_masks_the_secrets() -> None:
    settings = DeviceSettings(**MINIMAL, user="emqx", password="public-pw",
                              wifi_password="wifi-pw")
    view = settings.redacted()
    assert view["password"] == view["wifi_password"] == "***"
    assert view["user"] == "emqx"
    assert "public-pw" not in redact(settings.to_json(), settings.secrets())
    assert "wifi-pw" not in redact(settings.to_json(), settings.secrets())


def test_malformed_and_missing_files_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"not valid JSON"):
        DeviceSettings.from_json('{"server": ', source="s.json")
    with pytest.raises(SettingsError, match=r"cannot be read"):
        DeviceSettings.from_file(tmp_path / "absent.json")
    path = DeviceSettings(**MINIMAL).write(tmp_path / "settings.json")
    assert DeviceSettings.from_file(path) == DeviceSettings(**MINIMAL)


def test_docs_quote_the_schema_table() -> None:
    docs = (REPO / "docs" / "settings.md").read_text(encoding="utf-8")
    assert schema_markdown() in docs


# --- the device side agrees --------------------------------------------------------
DEVICE_CHECK = """\
import json, sys
sys.path.insert(0, SRC_DIR)
import settings
for case in json.loads(CASES):
    try:
        settings.check(case)
        print("ok")
    except settings.SettingsError as exc:
        print("error " + str(exc).split(":")[0])
print(json.dumps({k: [v[0], v[1], v[2]] for k, v in settings.SCHEMA.items()}))
print(json.dumps({"path": settings.PATH, "ranges": settings.RANGES}))
"""


def test_device_loader_accepts_and_refuses_the_same_settings(tmp_path: Path) -> None:
    cases = [data for data, _ in BAD] + GOOD
    script = tmp_path / "check.py"
    script.write_text(DEVICE_CHECK.replace("SRC_DIR", repr(str(DEVICE_SRC)))
                      .replace("CASES", repr(json.dumps(cases))))
    out = lifetime.run([str(MICROPYTHON), str(script)], capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    *verdicts, schema_line, rest_line = out.stdout.splitlines()
    assert verdicts == [f"error {key}" for _, key in BAD] + ["ok"] * len(GOOD)
    device_schema = json.loads(schema_line)
    assert set(device_schema) == {spec.key for spec in SCHEMA}  # MicroPython dicts: no order
    for spec in SCHEMA:
        tag, default, required = device_schema[spec.key]
        assert (tag, default, required) == (spec.type + ("?" if spec.nullable else ""),
                                            spec.default, spec.required), spec.key
    rest = json.loads(rest_line)
    assert rest["path"] == SETTINGS_PATH
    assert rest["ranges"] == {spec.key: [spec.low, spec.high] for spec in SCHEMA
                              if spec.low is not None}


def test_the_typed_view_has_every_key_with_the_schema_default() -> None:
    fields = {field.name: field.default for field in dataclasses.fields(DeviceSettings)}
    assert set(fields) == {spec.key for spec in SCHEMA}
    for spec in SCHEMA:
        if not spec.required:
            assert fields[spec.key] == spec.default, spec.key


def test_validate_fills_in_defaults() -> None:
    filled = validate(MINIMAL)
    assert set(filled) == {spec.key for spec in SCHEMA}
    assert filled["sni"] is True and filled["wifi_password"] == ""
