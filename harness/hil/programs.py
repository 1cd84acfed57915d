"""Device programs the HIL suite can put under test.

- :class:`ContractProgram`: any folder with a ``main.py`` that reads ``/settings.json``
  (the settings contract in README); ``device_src/`` is the reference one.
- :class:`SeedProgram`: the seed guide's own program, extracted from the seed document and
  run verbatim except for its settings constants, as the reference behaviour.

A program says which settings it hard-codes (``fixed_settings``), so a check that needs
another value is reported as not applicable instead of failing for the wrong reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from harness.device.device import collect_files
from harness.errors import ConfigError
from harness.hil.manifest import MANIFEST_NAME, NO_MANIFEST, Manifest, load_manifest

CA_PATH_ON_DEVICE = "/ca.pem"
SETTINGS_PATH_ON_DEVICE = "/settings.json"

class DeviceProgram(Protocol):
    name: str

    @property
    def manifest(self) -> Manifest:
        """What the program declares about itself (``hil.toml``; R1-R6 read ``reconnect``)."""

    @property
    def fixed_settings(self) -> Mapping[str, Any]:
        """Settings the program hard-codes, whatever the settings file says."""

    def program_files(self) -> dict[str, bytes]:
        """Files that do not depend on the run's settings (deployed once per session)."""

    def run_files(self, settings: Mapping[str, Any], ca_pem: bytes | None) -> dict[str, bytes]:
        """Files carrying one run's settings."""


@dataclass
class ContractProgram:
    src_dir: Path
    name: str = "device_src"
    manifest: Manifest = NO_MANIFEST

    def __post_init__(self) -> None:
        if not (self.src_dir / "main.py").is_file():
            raise ConfigError(f"device program folder {self.src_dir} has no main.py; point "
                              "--hil-device-src at a folder with main.py (e.g. device_src/)")
        self.name = self.src_dir.name
        self.manifest = load_manifest(self.src_dir)

    @property
    def fixed_settings(self) -> Mapping[str, Any]:
        # A client-id form is what the program's own id looks like, not a fixed id.
        return {k: v for k, v in self.manifest.always.items() if k != "client_id"}

    def program_files(self) -> dict[str, bytes]:
        files = collect_files(self.src_dir)
        files.pop("/" + MANIFEST_NAME, None)  # the harness reads it; the board does not
        return files

    def run_files(self, settings: Mapping[str, Any], ca_pem: bytes | None) -> dict[str, bytes]:
        files = {SETTINGS_PATH_ON_DEVICE: json.dumps(dict(settings), indent=1).encode()}
        if ca_pem is not None:
            files[CA_PATH_ON_DEVICE] = ca_pem
        return files


@dataclass
class SeedProgram:
    """The seed's ``wifi.py`` and MQTT client, with only their settings constants replaced."""

    seed_path: Path
    name: str = "seed"
    # TLS with SNI to SERVER, a 1 s sleep, umqtt's default keepalive, a random client id.
    fixed_settings: Mapping[str, Any] = field(default_factory=lambda: {
        "tls": True, "sni": True, "publish_interval": 1.0, "keepalive": 0, "client_id": None})
    _blocks: dict[str, str] = field(default_factory=dict)
    manifest: Manifest = NO_MANIFEST

    def __post_init__(self) -> None:
        if not self.seed_path.is_file():
            raise ConfigError(f"seed document {self.seed_path} not found; pass its path with "
                              "--hil-device-src seed:<path>")
        self._blocks = extract_seed_program(self.seed_path.read_text(encoding="utf-8"))

    def program_files(self) -> dict[str, bytes]:
        return {}

    def run_files(self, settings: Mapping[str, Any], ca_pem: bytes | None) -> dict[str, bytes]:
        wifi = _replace(self._blocks["wifi.py"], {
            "'NAME OF YOUR WIFI NETWORK'": repr(settings["wifi_ssid"]),
            "'PASSWORD OF YOUR WIFI NETWORK'": repr(settings["wifi_password"]),
        })
        main = _replace(self._blocks["main.py"], {
            '"broker.emqx.io"': json.dumps(settings["server"]),
            "PORT = 8883": f"PORT = {int(settings['port'])}",
            "'emqx'": repr(settings["user"]),
            "'public'": repr(settings["password"]),
            '"raspberry/mqtt"': json.dumps(settings["topic"]),
            "'broker.emqx.io-ca.crt'": repr(CA_PATH_ON_DEVICE),
        })
        files = {"/wifi.py": wifi.encode(), "/main.py": main.encode(),
                 SETTINGS_PATH_ON_DEVICE: b"{}"}
        if ca_pem is not None:
            files[CA_PATH_ON_DEVICE] = ca_pem
        return files


def extract_seed_program(document: str) -> dict[str, str]:
    """The complete program at the end of the seed guide (its last two python blocks,
    after the heading "完整代码"), as ``{"wifi.py": ..., "main.py": ...}``."""
    _, _, tail = document.partition("## 完整代码")
    blocks = re.findall(r"```python\n(.*?)```", tail, flags=re.S)
    wifi = next((b for b in blocks if "def connect():" in b and "network.WLAN" in b), None)
    client = next((b for b in blocks if "MQTTClient" in b and "def run()" in b), None)
    if wifi is None or client is None:
        raise ConfigError("could not find the complete program (wifi.py and the MQTT client) "
                          "in the seed document; is it the EMQX ESP32 guide?")
    # The guide's wifi.py indents with tabs; MicroPython accepts them as written.
    return {"wifi.py": wifi, "main.py": client}


def _replace(source: str, replacements: Mapping[str, str]) -> str:
    for old, new in replacements.items():
        if old not in source:
            raise ConfigError(f"the seed program no longer contains {old}; its settings "
                              "cannot be substituted")
        source = source.replace(old, new, 1)
    return source
