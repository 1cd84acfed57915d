"""Device programs the HIL suite can put under test, each run as its author wrote it.

- :class:`ContractProgram`: a folder whose ``main.py`` reads ``/settings.json`` (the
  settings contract in README); ``device_src/`` is the reference one.
- :class:`ConstantsProgram`: a guide-shaped program with its settings in constants, its
  CA file opened by name and its Wi-Fi credentials in ``wifi.py``; only those values are
  rewritten per run (:mod:`harness.hil.constants`). The seed guide's own program, taken
  from the seed document, is one of these.

Either may carry a manifest (``hil.toml``, :mod:`harness.hil.manifest`). A program tells
the rig which settings it takes (``settable``) and which it hard-codes
(``fixed_settings``, with the evidence in ``why_fixed``), so a scenario that needs
another value is reported as not applicable instead of failing for the wrong reason.
"""

from __future__ import annotations

import ast
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from harness.device.device import collect_files
from harness.errors import ConfigError
from harness.hil.constants import NOT_LITERAL, ProgramSource
from harness.hil.manifest import (
    MANIFEST_NAME,
    NO_MANIFEST,
    Manifest,
    SettingsStyle,
    load_manifest,
)
from harness.settings import SETTINGS_PATH, settings_text

CA_PATH_ON_DEVICE = "/ca.pem"
# Every setting a run may give a program (the settings contract's keys the rig varies).
RUN_SETTINGS = frozenset({"server", "port", "tls", "ca_file", "sni", "client_id", "user",
                          "password", "topic", "wifi_ssid", "wifi_password",
                          "publish_interval", "keepalive", "reconnect"})
# What a guide-shaped program does where neither its code nor its manifest says: the
# guide's own behaviour (umqtt's keepalive 0, a 1 s sleep, the seed's client id form).
GUIDE_DEFAULTS: dict[str, Any] = {"keepalive": 0, "publish_interval": 1.0}


class DeviceProgram(Protocol):
    name: str

    @property
    def manifest(self) -> Manifest:
        """What the program declares about itself (``hil.toml``; R1-R6 read ``reconnect``)."""

    @property
    def settable(self) -> frozenset[str]:
        """Settings the harness can give the program per run."""

    @property
    def fixed_settings(self) -> Mapping[str, Any]:
        """Settings the program hard-codes, whatever it is told."""

    def why_fixed(self, key: str) -> str:
        """Where ``fixed_settings[key]`` comes from (the manifest, or the line of code)."""

    def program_files(self) -> dict[str, bytes]:
        """Files that do not depend on the run's settings (deployed once per session)."""

    def run_files(self, settings: Mapping[str, Any], ca_pem: bytes) -> dict[str, bytes]:
        """Files carrying one run's settings, and the CA certificate where it looks."""


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
        if self.manifest is NO_MANIFEST:
            self.manifest = load_manifest(self.src_dir)

    @property
    def settable(self) -> frozenset[str]:
        return RUN_SETTINGS - set(self.fixed_settings)

    @property
    def fixed_settings(self) -> Mapping[str, Any]:
        # A client-id form is what the program's own id looks like, not a fixed id.
        return {k: v for k, v in self.manifest.always.items() if k != "client_id"}

    def why_fixed(self, key: str) -> str:
        return f"[always] {key} in {self.manifest.source}"

    def program_files(self) -> dict[str, bytes]:
        files = collect_files(self.src_dir)
        files.pop("/" + MANIFEST_NAME, None)  # the harness reads it; the board does not
        return files

    def run_files(self, settings: Mapping[str, Any], ca_pem: bytes) -> dict[str, bytes]:
        return {SETTINGS_PATH: settings_text(settings).encode(),
                CA_PATH_ON_DEVICE: ca_pem}


@dataclass
class ConstantsProgram:
    """A guide-shaped program: the values of its settings constants are rewritten per run;
    every other byte is deployed as written."""

    files: dict[str, bytes]
    name: str
    manifest: Manifest = NO_MANIFEST
    label: str = ""
    source: ProgramSource = field(init=False)
    _fixed: dict[str, Any] = field(init=False, default_factory=dict)
    _why: dict[str, str] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        if "/main.py" not in self.files:
            raise ConfigError(f"{self.label or self.name} has no main.py; point "
                              "--hil-device-src at the folder with the program's main.py")
        self.source = ProgramSource(self.files, self.manifest.constants,
                                    label=self.label or self.name)
        self.source.require()
        self._derive_fixed()

    @classmethod
    def from_folder(cls, folder: Path, manifest: Manifest) -> ConstantsProgram:
        files = collect_files(folder)
        files.pop("/" + MANIFEST_NAME, None)
        return cls(files, folder.name, manifest, label=f"the program in {folder}")

    def _derive_fixed(self) -> None:
        """What the program always does: the manifest's word first, then its code, then
        the guide's defaults."""
        facts, evidence, sites = self.source.facts, self.source.evidence, self.source.sites
        for key, value in self.manifest.always.items():
            if key != "client_id":
                self._fixed[key] = value
                self._why[key] = f"[always] {key} in {self.manifest.source}"
        if "tls" not in self._fixed and "tls" not in sites:
            tls = bool(facts.get("tls")) or "ca_file" in sites
            self._fixed["tls"] = tls
            self._why["tls"] = (evidence.get("tls") or (
                f"it opens its CA file ({sites['ca_file'][0].where})" if "ca_file" in sites
                else "its code has no TLS (no ssl=, ssl_params, SSLContext or CA file)"))
        if "sni" not in self._fixed and "sni" not in sites and facts.get("sni"):
            self._fixed["sni"] = True
            self._why["sni"] = evidence["sni"]
        # A literal keepalive= configures the keepalive (S2 checks "the one configured").
        # A literal sleep in the loop does not move S6's "about 1 s apart": only the
        # manifest or a constant the harness sets does.
        if "keepalive" in facts and not {"keepalive"} & (set(self._fixed) | set(sites)):
            self._fixed["keepalive"], self._why["keepalive"] = facts["keepalive"], \
                evidence["keepalive"]
        for key, default in GUIDE_DEFAULTS.items():
            if key in self._fixed or key in sites:
                continue
            self._fixed[key] = default
            self._why[key] = f"the guide's {default!r} (no {key} setting in its code" + (
                f"; it has {evidence[key]}" if key in evidence else "") + ")"

    @property
    def settable(self) -> frozenset[str]:
        found = set(self.source.sites) - {"ca_file"}
        # A program always takes its CA where it opens it, if it uses TLS at all.
        return frozenset(found - set(self._fixed))

    @property
    def fixed_settings(self) -> Mapping[str, Any]:
        return dict(self._fixed)

    def why_fixed(self, key: str) -> str:
        return self._why.get(key, "its code")

    @property
    def ca_path(self) -> str:
        sites = self.source.sites.get("ca_file")
        if sites and isinstance(sites[0].value, str):
            name = sites[0].value
            return name if name.startswith("/") else "/" + name
        return CA_PATH_ON_DEVICE

    def program_files(self) -> dict[str, bytes]:
        changing = self.source.files_with_sites()
        return {path: data for path, data in self.files.items() if path not in changing}

    def run_files(self, settings: Mapping[str, Any], ca_pem: bytes) -> dict[str, bytes]:
        values = {key: settings.get(key) for key in self.settable}
        if "publish_interval" in values and self.source.facts.get("interval_unit_ms"):
            values["publish_interval"] = int(float(settings["publish_interval"]) * 1000)
        files = {path: self.files[path] for path in self.source.files_with_sites()}
        files.update(self.source.rewrite(values))
        ca = ssl.PEM_cert_to_DER_cert(ca_pem.decode()) if self.ca_path.endswith(".der") \
            else ca_pem
        files[self.ca_path] = ca
        return files

    def constant_report(self) -> list[str]:
        """One line per setting found: where it is written (for progress output, docs)."""
        lines = []
        for key, sites in sorted(self.source.sites.items()):
            shown = "an expression" if sites[0].value is NOT_LITERAL else "found"
            lines.append(f"{key}: {sites[0].where} ({shown})")
        return lines


def seed_program(seed_path: Path) -> ConstantsProgram:
    """The seed guide's own program (its ``wifi.py`` and MQTT client), as a guide-shaped
    program: only its settings constants are rewritten."""
    if not seed_path.is_file():
        raise ConfigError(f"seed document {seed_path} not found; pass its path with "
                          "--hil-device-src seed:<path>")
    blocks = extract_seed_program(seed_path.read_text(encoding="utf-8"))
    files = {"/main.py": blocks["main.py"].encode(), "/wifi.py": blocks["wifi.py"].encode()}
    return ConstantsProgram(files, "seed", NO_MANIFEST, label="the seed program")


def open_program(folder: Path) -> ContractProgram | ConstantsProgram:
    """The program in ``folder``, taken the way it takes its settings: the manifest says,
    or a program that names ``settings.json`` follows the contract."""
    if not folder.is_dir():
        raise ConfigError(f"device program folder {folder} does not exist; pass an existing "
                          "folder with --hil-device-src")
    if not (folder / "main.py").is_file():
        raise ConfigError(f"device program folder {folder} has no main.py; point "
                          "--hil-device-src at a folder with main.py (e.g. device_src/)")
    manifest = load_manifest(folder)
    style = manifest.settings or detect_style(folder)
    if style is SettingsStyle.CONTRACT:
        return ContractProgram(folder, manifest=manifest)
    return ConstantsProgram.from_folder(folder, manifest)


def detect_style(folder: Path) -> SettingsStyle:
    """A program whose code (not its comments) names ``settings.json`` reads it."""
    name = PurePosixPath(SETTINGS_PATH).name
    for path in sorted(folder.rglob("*.py")):
        text = path.read_text(encoding="utf-8", errors="replace")
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError):
            if name in text:
                return SettingsStyle.CONTRACT
            continue
        if any(isinstance(node, ast.Constant) and isinstance(node.value, str)
               and name in node.value for node in ast.walk(tree)):
            return SettingsStyle.CONTRACT
    return SettingsStyle.CONSTANTS


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
