"""hil.toml: what a device program declares about itself, parsed strictly."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.checks.evidence import ClientIdForm
from harness.errors import ConfigError
from harness.hil.manifest import NO_MANIFEST, SettingsStyle, load_manifest
from harness.hil.programs import ContractProgram

pytestmark = pytest.mark.unit

EXAMPLE = """
settings = "constants"
firmware = ["v1.20-v1.21"]
reconnect = false
honours = ["sni"]

[always]
tls = true
keepalive = 0
publish_interval = 1
client_id = "micropython-client-<0..255>"

[constants]
server = "BROKER_HOST"
wifi_password = "wifi.py:password"
"""


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "hil.toml").write_text(text, encoding="utf-8")
    return tmp_path


def test_the_readme_example_parses(tmp_path: Path) -> None:
    manifest = load_manifest(_write(tmp_path, EXAMPLE))
    assert manifest.settings is SettingsStyle.CONSTANTS
    assert manifest.reconnect is False
    assert manifest.honours == {"sni"}
    assert manifest.always["tls"] is True
    assert manifest.constants["server"] == "BROKER_HOST"
    assert manifest.targets("v1.20") and manifest.targets("v1.21")
    assert not manifest.targets("v1.22")
    assert "v1.20-v1.21" in (manifest.not_targeted("v1.22") or "")
    assert manifest.client_id_form.matches("micropython-client-7")


def test_no_manifest_means_nothing_declared(tmp_path: Path) -> None:
    manifest = load_manifest(tmp_path)
    assert manifest is NO_MANIFEST
    assert manifest.reconnect is False and manifest.targets("v1.25")


def test_firmware_forms(tmp_path: Path) -> None:
    manifest = load_manifest(_write(tmp_path, 'firmware = ["v1.22+"]\n'))
    assert not manifest.targets("v1.21") and manifest.targets("v1.22")
    assert manifest.targets("v1.30")
    single = load_manifest(_write(tmp_path, 'firmware = "v1.23"\n'))
    assert single.targets("v1.23") and not single.targets("v1.24")


@pytest.mark.parametrize(("text", "words"), [
    ("reconect = true\n", "unknown key 'reconect'"),
    ("reconnect = 1\n", "reconnect must be true or false"),
    ("[always]\ntls = 'yes'\n", "[always] tls"),
    ("[always]\nretain = true\n", "unknown key [always] 'retain'"),
    ('honours = ["keepalive"]\n', "honours must be a list"),
    ('honours = ["sni"]\n[always]\nsni = true\n', "both in honours and in [always]"),
    ('firmware = ["1.2x"]\n', "firmware entry '1.2x'"),
    ('settings = "json"\n', "settings = 'json'"),
    ("[constants]\nserver = 3\n", "[constants] server"),
    ("this is = not toml", "not valid TOML"),
])
def test_bad_manifests_are_one_line_errors(tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_manifest(_write(tmp_path, text))
    assert words in str(caught.value)
    assert "\n" not in str(caught.value)


def test_client_id_forms() -> None:
    seed = ClientIdForm("micropython-client-<0..255>")
    assert seed.matches("micropython-client-0") and seed.matches("micropython-client-255")
    assert not seed.matches("micropython-client-256")
    assert not seed.matches("micropython-client-01")
    assert ClientIdForm("re:esp32-[0-9a-f]{12}").matches("esp32-0123456789ab")


def test_device_src_declares_reconnect_and_is_not_deployed_with_it() -> None:
    program = ContractProgram(Path(__file__).resolve().parents[2] / "device_src")
    assert program.manifest.reconnect is True
    assert program.manifest.honours == {"tls", "sni"}
    assert "/hil.toml" not in program.program_files()
