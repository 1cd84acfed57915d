"""A device program's manifest: ``hil.toml`` in the program folder.

It declares what the program always does or supports, so the rig knows which scenarios
apply before running them, and which of the harness's settings the program honours::

    settings = "constants"        # how it takes its settings: "contract" or "constants"
    firmware = ["v1.20-v1.21"]    # firmware generations it targets ("v1.22", "v1.25+")
    reconnect = false             # it re-establishes Wi-Fi + MQTT by itself (R1-R6 apply)
    honours = ["sni"]             # ignoring one of these (tls, sni) fails instead of N/A

    [always]                      # what it does whatever it is told
    tls = true
    sni = true
    keepalive = 0
    publish_interval = 1
    client_id = "micropython-client-<0..255>"

    [constants]                   # guide-shaped: its constant names, where not the guide's
    server = "BROKER_HOST"
    wifi_password = "wifi.py:password"

Every key is optional; a folder without ``hil.toml`` gets :data:`NO_MANIFEST`. A typo or
a wrong type is one :class:`~harness.errors.ConfigError` line naming the key.
"""

from __future__ import annotations

import enum
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.checks.evidence import SEED_CLIENT_ID_FORM, ClientIdForm
from harness.errors import ConfigError

MANIFEST_NAME = "hil.toml"

# Settings a program may hard-code ([always]) and the type each takes there.
ALWAYS_KEYS: dict[str, tuple[type, ...]] = {
    "tls": (bool,), "sni": (bool,), "keepalive": (int,), "publish_interval": (int, float),
    "client_id": (str,),
}
# Settings whose run-time neglect is harmless (the program does *more* than asked: TLS
# though told plain, SNI though told none); unless claimed in ``honours`` a check then
# reports "not applicable" instead of failing.
HONOURABLE = ("tls", "sni")
# Settings a guide-shaped program's constants can carry ([constants] keys).
CONSTANT_KEYS = ("server", "port", "client_id", "user", "password", "topic", "ca_file",
                 "wifi_ssid", "wifi_password", "keepalive", "publish_interval", "tls", "sni")
_TOP_KEYS = ("settings", "firmware", "reconnect", "honours", "always", "constants")
_FIRMWARE_ITEM = re.compile(r"^v?(\d+)\.(\d+)(?:(\+)|-v?(\d+)\.(\d+))?$")


class SettingsStyle(enum.Enum):
    """How a program takes its settings."""

    CONTRACT = "contract"  # reads /settings.json (README, "The settings contract")
    CONSTANTS = "constants"  # guide-shaped: constants at the top, rewritten per run


@dataclass(frozen=True)
class FirmwareRange:
    """``v1.20`` (one release line), ``v1.20-v1.21`` (inclusive) or ``v1.22+``."""

    low: tuple[int, int]
    high: tuple[int, int] | None  # None: and every later one

    @classmethod
    def parse(cls, text: str, where: str) -> FirmwareRange:
        match = _FIRMWARE_ITEM.match(text.strip())
        if not match:
            raise ConfigError(f"{where}: firmware entry {text!r} is not understood; write "
                              "'v1.20', 'v1.20-v1.21' or 'v1.22+'")
        low = (int(match[1]), int(match[2]))
        if match[3]:
            return cls(low, None)
        high = (int(match[4]), int(match[5])) if match[4] else low
        if high < low:
            raise ConfigError(f"{where}: firmware range {text!r} ends before it starts")
        return cls(low, high)

    def covers(self, version: tuple[int, int]) -> bool:
        return self.low <= version and (self.high is None or version <= self.high)

    def __str__(self) -> str:
        low = f"v{self.low[0]}.{self.low[1]}"
        if self.high is None:
            return f"{low}+"
        return low if self.high == self.low else f"{low}-v{self.high[0]}.{self.high[1]}"


def profile_version(profile: str) -> tuple[int, int] | None:
    """(1, 22) for a firmware profile name such as ``v1.22`` (None if it has no version)."""
    match = re.match(r"^v?(\d+)\.(\d+)", profile)
    return (int(match[1]), int(match[2])) if match else None


@dataclass(frozen=True)
class Manifest:
    path: Path | None = None  # None: the program has no hil.toml
    settings: SettingsStyle | None = None  # None: detected from the program's source
    firmware: tuple[FirmwareRange, ...] = ()  # empty: every generation
    # The program re-establishes Wi-Fi and its MQTT session by itself after a lost link, a
    # dropped connection or a broker that is unavailable at boot, and resumes its counter.
    # A settings-contract program does so when its settings say "reconnect": true (the rig
    # sets that for the resilience scenarios). False: R1-R6 are reported as not applicable.
    reconnect: bool = False
    honours: frozenset[str] = frozenset()
    always: Mapping[str, Any] = field(default_factory=dict)
    constants: Mapping[str, str] = field(default_factory=dict)

    @property
    def source(self) -> str:
        return str(self.path) if self.path is not None else "no hil.toml"

    def targets(self, profile: str) -> bool:
        """Whether the program is written for firmware ``profile`` (e.g. ``v1.22``)."""
        version = profile_version(profile)
        if not self.firmware or version is None:
            return True
        return any(item.covers(version) for item in self.firmware)

    @property
    def firmware_text(self) -> str:
        return ", ".join(str(item) for item in self.firmware) or "every generation"

    @property
    def client_id_form(self) -> ClientIdForm:
        form = self.always.get("client_id")
        return ClientIdForm(form) if isinstance(form, str) else SEED_CLIENT_ID_FORM

    def not_targeted(self, profile: str) -> str | None:
        """Why ``profile`` does not apply to the program, or None if it does."""
        if self.targets(profile):
            return None
        return (f"the program targets firmware {self.firmware_text} ({self.source}), "
                f"not {profile}")


NO_MANIFEST = Manifest()


def load_manifest(folder: Path) -> Manifest:
    """The manifest in ``folder`` (``hil.toml``), or :data:`NO_MANIFEST` without one."""
    path = folder / MANIFEST_NAME
    if not path.is_file():
        return NO_MANIFEST
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}; see README, 'Testing your own "
                          "program'") from exc
    return parse_manifest(data, path)


def parse_manifest(data: Mapping[str, Any], path: Path) -> Manifest:
    where = str(path)
    _refuse_unknown(data, _TOP_KEYS, where)
    settings = data.get("settings")
    style = None
    if settings is not None:
        choices = [s.value for s in SettingsStyle]
        if settings not in choices:
            raise ConfigError(f"{where}: settings = {settings!r}; use one of {choices}")
        style = SettingsStyle(settings)
    firmware_value = data.get("firmware", [])
    if isinstance(firmware_value, str):
        firmware_value = [firmware_value]
    if not isinstance(firmware_value, list) or not all(
            isinstance(item, str) for item in firmware_value):
        raise ConfigError(f"{where}: firmware must be a list of strings such as "
                          "[\"v1.20-v1.21\"]")
    firmware = tuple(FirmwareRange.parse(item, where) for item in firmware_value)
    reconnect = data.get("reconnect", False)
    if not isinstance(reconnect, bool):
        raise ConfigError(f"{where}: reconnect must be true or false")
    honours_value = data.get("honours", [])
    if not isinstance(honours_value, list) or any(
            item not in HONOURABLE for item in honours_value):
        raise ConfigError(f"{where}: honours must be a list drawn from {list(HONOURABLE)} "
                          "(every other setting is always checked)")
    always = _table(data, "always", where)
    _refuse_unknown(always, tuple(ALWAYS_KEYS), where, "[always] ")
    for key, value in always.items():
        types = ALWAYS_KEYS[key]
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            raise ConfigError(f"{where}: [always] {key} = {value!r} has the wrong type; "
                              f"expected {' or '.join(t.__name__ for t in types)}")
    if "client_id" in always:
        ClientIdForm(str(always["client_id"])).check(f"{where}: [always] client_id")
    both = sorted(set(honours_value) & set(always))
    if both:
        raise ConfigError(f"{where}: {both[0]} is both in honours and in [always]; a "
                          "program either honours a setting or always does one thing")
    constants = _table(data, "constants", where)
    _refuse_unknown(constants, CONSTANT_KEYS, where, "[constants] ")
    for key, value in constants.items():
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}: [constants] {key} must be a constant name such as "
                              "\"BROKER\" or \"wifi.py:ssid\"")
    return Manifest(path, style, firmware, reconnect, frozenset(honours_value), dict(always),
                    dict(constants))


def _table(data: Mapping[str, Any], name: str, where: str) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {name} must be a table ([{name}])")
    return value


def _refuse_unknown(data: Mapping[str, Any], known: tuple[str, ...], where: str,
                    prefix: str = "") -> None:
    for key in data:
        if key not in known:
            raise ConfigError(f"{where}: unknown key {prefix}{key!r}; known keys: "
                              f"{', '.join(known)}")
