"""The settings contract between the harness and a device program (CPython side).

The harness writes ``/settings.json`` on the device; the device program reads it at start.
This module holds the schema as data (README and docs/settings.md quote it), a typed
:class:`DeviceSettings` that refuses bad values with one :class:`SettingsError` line naming
the key, the JSON the device reads, and a redacted view for logs.

``device_src/settings.py`` implements the same rules in MicroPython; a unit test keeps the
two in step.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.errors import SettingsError
from harness.redact import MASK

SETTINGS_PATH = "/settings.json"

# Keys whose values are secrets: masked in redacted() and fed to harness.redact.
SECRET_KEYS = ("password", "wifi_password")

_TYPE_WORDS = {"str": "a string", "bool": "true or false", "int": "an integer",
               "num": "a number"}


@dataclass(frozen=True)
class SettingSpec:
    """One key of the settings file."""

    key: str
    type: str  # "str", "bool", "int" or "num" (int or float)
    default: Any
    doc: str
    required: bool = False
    nullable: bool = False
    low: float | None = None
    high: float | None = None

    @property
    def type_text(self) -> str:
        return _TYPE_WORDS[self.type] + (" or null" if self.nullable else "")

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.nullable
        if self.type == "bool":
            return isinstance(value, bool)
        if isinstance(value, bool):  # bool is an int subclass; never a number here
            return False
        if self.type == "int":
            return isinstance(value, int)
        if self.type == "num":
            return isinstance(value, int | float) and math.isfinite(value)
        return isinstance(value, str)


SCHEMA: tuple[SettingSpec, ...] = (
    SettingSpec("server", "str", None, "Broker host name or IP; also the SNI name and the "
                "name printed in `Connected to MQTT Broker \"<server>\"`.", required=True),
    SettingSpec("port", "int", None, "Broker port; null means 8883 with TLS, 1883 without.",
                nullable=True, low=1, high=65535),
    SettingSpec("tls", "bool", False, "Connect over TLS (CA verification, CERT_REQUIRED)."),
    SettingSpec("ca_file", "str", None, "Path on the device of the PEM CA certificate "
                "(passed as `cadata`); required when `tls` is true.", nullable=True),
    SettingSpec("sni", "bool", True, "Send `server_hostname=<server>` (SNI) in the TLS "
                "handshake."),
    SettingSpec("client_id", "str", None, "MQTT client id; null means "
                "`micropython-client-<random.getrandbits(8)>` as in the guide.", nullable=True),
    SettingSpec("user", "str", None, "MQTT user name; null for none.", nullable=True),
    SettingSpec("password", "str", None, "MQTT password (secret); needs `user`.",
                nullable=True),
    SettingSpec("topic", "str", None, "Topic to subscribe to and publish on.", required=True),
    SettingSpec("wifi_ssid", "str", None, "Wi-Fi network name.", required=True),
    SettingSpec("wifi_password", "str", "", "Wi-Fi password (secret); empty for an open "
                "network."),
    SettingSpec("wifi_timeout", "num", 0, "Seconds to wait for Wi-Fi before `ERROR wifi`; "
                "0 waits forever, as the guide does.", low=0, high=86400),
    SettingSpec("publish_interval", "num", 1, "Seconds slept after each echo.",
                low=0, high=86400),
    SettingSpec("keepalive", "int", 0, "MQTT keepalive in seconds (umqtt's default 0 = off).",
                low=0, high=65535),
    SettingSpec("reconnect", "bool", False, "Retry with exponential backoff after a lost or "
                "failed connection and resume the counter; off keeps the guide's behaviour "
                "(stop at the first error)."),
    SettingSpec("reconnect_delay", "num", 1, "First backoff delay in seconds; doubles each "
                "retry.", low=0.01, high=3600),
    SettingSpec("reconnect_max_delay", "num", 60, "Backoff ceiling in seconds.",
                low=0.01, high=86400),
    SettingSpec("mem_log_every", "int", 0, "Print `Memory free: <n> bytes after <count> "
                "messages` every N messages; 0 = never.", low=0, high=1_000_000_000),
    SettingSpec("ntp_server", "str", None, "NTP server that sets the board's clock before "
                "TLS on firmware that checks certificate dates (v1.22+); null means "
                "ntptime's default, pool.ntp.org.", nullable=True),
)

SPECS: dict[str, SettingSpec] = {spec.key: spec for spec in SCHEMA}
_NOT_EMPTY = ("server", "topic", "wifi_ssid", "client_id")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list | tuple) else "an object"


def _bad(source: str, key: str, problem: str) -> SettingsError:
    return SettingsError(f"{source}: {key}: {problem}",
                         hint="see docs/settings.md for the settings format")


def validate(data: Mapping[str, Any], source: str = "settings") -> dict[str, Any]:
    """Check ``data`` against the contract; return it with every default filled in.

    Raises :class:`SettingsError` naming the first bad key. Values are never echoed, since
    they may be secrets.
    """
    if not isinstance(data, Mapping):
        raise SettingsError(f"{source}: must be a JSON object, not {_json_type(data)}",
                            hint="see docs/settings.md for the settings format")
    for key in data:
        if key not in SPECS:
            raise _bad(source, str(key), "unknown key; known keys: " + ", ".join(SPECS))
    result: dict[str, Any] = {}
    for spec in SCHEMA:
        if spec.key not in data:
            if spec.required:
                raise _bad(source, spec.key, "missing; it is required")
            result[spec.key] = spec.default
            continue
        value = data[spec.key]
        if not spec.accepts(value):
            raise _bad(source, spec.key, f"expected {spec.type_text}, got {_json_type(value)}")
        if value is not None and spec.low is not None and spec.high is not None \
                and not spec.low <= value <= spec.high:
            raise _bad(source, spec.key, f"{value} is out of range {spec.low:g}..{spec.high:g}")
        result[spec.key] = value
    for key in _NOT_EMPTY:
        if result[key] == "":
            raise _bad(source, key, "must not be empty")
    if result["tls"] and not result["ca_file"]:
        raise _bad(source, "ca_file", "required when tls is true (path of the PEM CA on the "
                   "device)")
    if result["password"] is not None and result["user"] is None:
        raise _bad(source, "user", "required when password is set")
    if result["keepalive"] and result["publish_interval"] >= result["keepalive"]:
        # The device loop sends no PINGREQ; its publishes must keep the session alive.
        raise _bad(source, "publish_interval", "must be shorter than keepalive "
                   f"({result['keepalive']} s)")
    return result


@dataclass(frozen=True)
class DeviceSettings:
    """One device program's settings, valid by construction."""

    server: str
    topic: str
    wifi_ssid: str
    port: int | None = None
    tls: bool = False
    ca_file: str | None = None
    sni: bool = True
    client_id: str | None = None
    user: str | None = None
    password: str | None = None
    wifi_password: str = ""
    wifi_timeout: float = 0
    publish_interval: float = 1
    keepalive: int = 0
    reconnect: bool = False
    reconnect_delay: float = 1
    reconnect_max_delay: float = 60
    mem_log_every: int = 0
    ntp_server: str | None = None

    def __post_init__(self) -> None:
        validate(asdict(self))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str = "settings") -> DeviceSettings:
        return cls(**validate(data, source))

    @classmethod
    def from_json(cls, text: str, source: str = "settings") -> DeviceSettings:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SettingsError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno})",
                                hint="see docs/settings.md for the settings format") from exc
        return cls.from_mapping(data, source)

    @classmethod
    def from_file(cls, path: Path) -> DeviceSettings:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SettingsError(f"settings file {path} cannot be read ({exc.strerror})",
                                hint="pass the path of an existing JSON file") from exc
        return cls.from_json(text, str(path))

    @property
    def effective_port(self) -> int:
        """The port the device connects to (umqtt's rule when ``port`` is null)."""
        if self.port is not None:
            return self.port
        return 8883 if self.tls else 1883

    def to_dict(self) -> dict[str, Any]:
        """Every key, in schema order: what the device reads."""
        return {spec.key: getattr(self, spec.key) for spec in SCHEMA}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def write(self, path: Path) -> Path:
        """Write the settings file (e.g. into an emulated board's flash directory)."""
        path.write_text(self.to_json() + "\n", encoding="utf-8")
        return path

    def secrets(self) -> list[str]:
        """The secret values, for :func:`harness.redact.redact`."""
        return [value for key in SECRET_KEYS if (value := getattr(self, key))]

    def redacted(self) -> dict[str, Any]:
        """``to_dict()`` with secrets masked, for logs and reports."""
        data = self.to_dict()
        for key in SECRET_KEYS:
            if data[key]:
                data[key] = MASK
        return data


def schema_markdown() -> str:
    """The schema as a Markdown table (docs/settings.md embeds it)."""
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for spec in SCHEMA:
        default = "required" if spec.required else f"`{json.dumps(spec.default)}`"
        rows.append(f"| `{spec.key}` | {spec.type_text} | {default} | {spec.doc} |")
    return "\n".join(rows)
