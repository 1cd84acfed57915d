"""The environment is read in one place (harness.env) into typed values the edges pass
down; the package index comes from pip's own configuration, asked of pip."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.emulator import umqtt_source
from harness.emulator.umqtt_source import DEFAULT_INDEX_URL, PackageSources, index_url
from harness.env import HarnessEnv
from harness.errors import ConfigError

pytestmark = pytest.mark.unit


def test_each_variable_lands_in_its_field(tmp_path: Path) -> None:
    env = HarnessEnv.from_environ({
        "HIL_CACHE_DIR": str(tmp_path / "cache"), "HIL_UMQTT_SDIST": "/s/simple.tar.gz",
        "HIL_UMQTT_ROBUST_SDIST": "/s/robust.tar.gz", "HIL_MICROPYTHON_LIB": "/src/lib",
        "HIL_LOCK_DIR": "/run/locks", "HIL_BOARD_WAIT": "120", "HIL_WIFI_SSID": "lab",
        "HIL_WIFI_PASSWORD": "", "LG_COORDINATOR": "lab:20408", "LG_PLACE": "bench-3"})
    assert env == HarnessEnv(
        cache_dir=tmp_path / "cache", umqtt_sdist=Path("/s/simple.tar.gz"),
        umqtt_robust_sdist=Path("/s/robust.tar.gz"), micropython_lib=Path("/src/lib"),
        lock_dir=Path("/run/locks"), board_wait_s=120.0, wifi_ssid="lab", wifi_password="",
        labgrid_coordinator="lab:20408", labgrid_place="bench-3")
    assert "wifi_password" not in repr(env)
    sources = PackageSources.from_env(env)
    assert sources.cache_dir == tmp_path / "cache"
    assert sources.offline == {umqtt_source.SDIST_PROJECT: Path("/s/simple.tar.gz"),
                               umqtt_source.ROBUST_PROJECT: Path("/s/robust.tar.gz")}


def test_nothing_set_means_the_defaults() -> None:
    env = HarnessEnv.from_environ({})
    assert env == HarnessEnv() and env.wifi_password is None
    assert PackageSources.from_env(env) == PackageSources()


def test_a_board_wait_that_is_not_a_number_is_one_line() -> None:
    with pytest.raises(ConfigError, match=r"^HIL_BOARD_WAIT='soon' is not a number of seconds"):
        HarnessEnv.from_environ({"HIL_BOARD_WAIT": "soon"})


def test_the_index_is_the_one_pip_is_configured_for(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PIP_INDEX_URL", raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # no pip.conf at all
    assert index_url() == DEFAULT_INDEX_URL
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nindex-url = http://mirror.internal/pypi/simple/\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    assert index_url() == "http://mirror.internal/pypi/simple"
    monkeypatch.setenv("PIP_INDEX_URL", "http://other.internal/simple")  # pip: env wins
    assert index_url() == "http://other.internal/simple"
