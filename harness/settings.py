"""The settings contract between the harness and a device program (CPython side).

The harness writes ``/settings.json`` on the device; the device program reads it at start.
The rules (keys, types, defaults, ranges, the rules between keys and the path) live once, in
``device_src/settings.py``, which runs on MicroPython and CPython alike: this module loads
that file and adds the host's view of it, a typed :class:`DeviceSettings` that refuses bad
values with one :class:`SettingsError` line naming the key, what each key means (README and
docs/settings.md quote the table), the file's bytes, and a redacted view for logs.
``tests/unit/test_settings.py`` runs the same file under MicroPython to show the device
accepts and refuses what the host does.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from harness.errors import SettingsError
from harness.redact import MASK

# The device program's settings module: the one home of the rules.
DEVICE_RULES_FILE = Path(__file__).resolve().parents[1] / "device_src" / "settings.py"


def _load_rules(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("harness._device_settings", path)
    if spec is None or spec.loader is None or not path.is_file():
        raise SettingsError(f"the settings rules {path} are missing",
                            hint="run the harness from its source checkout (./hil)")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_RULES = _load_rules(DEVICE_RULES_FILE)
_HINT = "see docs/settings.md for the settings format"

SETTINGS_PATH: str = _RULES.PATH

# Keys whose values are secrets: masked in redacted() and fed to harness.redact.
SECRET_KEYS = ("password", "wifi_password")

# What each key means: the host's documentation only (the device needs no prose).
_MEANING: dict[str, str] = {
    "server": "Broker host name or IP; also the SNI name and the name printed in "
              "`Connected to MQTT Broker \"<server>\"`.",
    "port": "Broker port; null means 8883 with TLS, 1883 without.",
    "tls": "Connect over TLS (CA verification, CERT_REQUIRED).",
    "ca_file": "Path on the device of the PEM CA certificate (passed as `cadata`); required "
               "when `tls` is true.",
    "sni": "Send `server_hostname=<server>` (SNI) in the TLS handshake.",
    "client_id": "MQTT client id; null means `micropython-client-<random.getrandbits(8)>` as "
                 "in the guide.",
    "user": "MQTT user name; null for none.",
    "password": "MQTT password (secret); needs `user`.",
    "topic": "Topic to subscribe to and publish on.",
    "wifi_ssid": "Wi-Fi network name.",
    "wifi_password": "Wi-Fi password (secret); empty for an open network.",
    "wifi_timeout": "Seconds to wait for Wi-Fi before `ERROR wifi`; 0 waits forever, as the "
                    "guide does.",
    "publish_interval": "Seconds slept after each echo.",
    "keepalive": "MQTT keepalive in seconds (umqtt's default 0 = off).",
    "reconnect": "Retry with exponential backoff after a lost or failed connection and resume "
                 "the counter; off keeps the guide's behaviour (stop at the first error).",
    "reconnect_delay": "First backoff delay in seconds; doubles each retry.",
    "reconnect_max_delay": "Backoff ceiling in seconds.",
    "mem_log_every": "Print `Memory free: <n> bytes after <count> messages` every N messages; "
                     "0 = never.",
    "ntp_server": "NTP server that sets the board's clock before TLS on firmware that checks "
                  "certificate dates (v1.22+); null means ntptime's default, pool.ntp.org.",
}


@dataclass(frozen=True)
class SettingSpec:
    """One key of the settings file, as ``device_src/settings.py`` defines it."""

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
        return str(_RULES.TYPE_NAMES[self.type]) + (" or null" if self.nullable else "")


def _spec(key: str, tag: str, default: Any, required: bool) -> SettingSpec:
    if key not in _MEANING:
        raise SettingsError(f"settings key {key!r} of {DEVICE_RULES_FILE} has no meaning "
                            "written in harness/settings.py", hint="add it to _MEANING")
    low, high = _RULES.RANGES.get(key, (None, None))
    return SettingSpec(key, tag.rstrip("?"), default, _MEANING[key], required=required,
                       nullable=tag.endswith("?"), low=low, high=high)


# In the device file's order (CPython keeps a dict's order; MicroPython need not).
SCHEMA: tuple[SettingSpec, ...] = tuple(_spec(key, *entry)
                                        for key, entry in _RULES.SCHEMA.items())
_DEFAULT: dict[str, Any] = {spec.key: spec.default for spec in SCHEMA}


def validate(data: Mapping[str, Any], source: str = "settings") -> dict[str, Any]:
    """Check ``data`` against the contract; return it with every default filled in.

    Raises :class:`SettingsError` naming the first bad key. Values are never echoed, since
    they may be secrets.
    """
    if not isinstance(data, Mapping):
        raise SettingsError(f"{source}: must be a JSON object, not {_RULES.json_type(data)}",
                            hint=_HINT)
    try:
        checked: dict[str, Any] = _RULES.validate(dict(data))
    except _RULES.SettingsError as exc:
        raise SettingsError(f"{source}: {exc}", hint=_HINT) from None
    return checked


def settings_text(settings: Mapping[str, Any]) -> str:
    """The text of ``/settings.json`` for ``settings`` (checked or, in tests, not)."""
    return json.dumps(dict(settings), indent=1)


@dataclass(frozen=True)
class DeviceSettings:
    """One device program's settings, valid by construction (the defaults are the
    schema's; the fields are its keys, which ``validate`` enforces both ways)."""

    server: str
    topic: str
    wifi_ssid: str
    port: int | None = _DEFAULT["port"]
    tls: bool = _DEFAULT["tls"]
    ca_file: str | None = _DEFAULT["ca_file"]
    sni: bool = _DEFAULT["sni"]
    client_id: str | None = _DEFAULT["client_id"]
    user: str | None = _DEFAULT["user"]
    password: str | None = _DEFAULT["password"]
    wifi_password: str = _DEFAULT["wifi_password"]
    wifi_timeout: float = _DEFAULT["wifi_timeout"]
    publish_interval: float = _DEFAULT["publish_interval"]
    keepalive: int = _DEFAULT["keepalive"]
    reconnect: bool = _DEFAULT["reconnect"]
    reconnect_delay: float = _DEFAULT["reconnect_delay"]
    reconnect_max_delay: float = _DEFAULT["reconnect_max_delay"]
    mem_log_every: int = _DEFAULT["mem_log_every"]
    ntp_server: str | None = _DEFAULT["ntp_server"]

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
        return int(_RULES.complete(self.to_dict())["port"])

    def to_dict(self) -> dict[str, Any]:
        """Every key, in schema order: what the device reads."""
        return {spec.key: getattr(self, spec.key) for spec in SCHEMA}

    def to_json(self) -> str:
        return settings_text(self.to_dict())

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
