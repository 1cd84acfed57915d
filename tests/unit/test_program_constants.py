"""Guide-shaped programs: the settings a program hard-codes are found with Python's ast
and only their values are rewritten; every other byte stays as the author wrote it."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.hil.constants import ProgramSource
from harness.hil.manifest import SettingsStyle, load_manifest
from harness.hil.programs import (
    ConstantsProgram,
    ContractProgram,
    detect_style,
    open_program,
    seed_program,
)

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
SEED = REPO.parent.parent / "shared" / "seeds" / "000_1d65173659e48ce4.txt"
GUIDE_TLS = REPO / "tests" / "fixtures" / "device_programs" / "guide_tls"
RUN = {"server": "broker.test", "port": 40123, "client_id": "hil-dut-1", "user": "emqx",
       "password": "s3cret", "topic": "hil/x/messaging", "wifi_ssid": "hil-ap",
       "wifi_password": "wifi-secret", "keepalive": 30, "publish_interval": 0.3,
       "tls": True, "sni": True}

TCP_PROGRAM = b'''import time
from umqtt.simple import MQTTClient
import wifi

BROKER = "broker.emqx.io"
MQTT_PORT = "1883"  # a string on purpose: the rewrite keeps the type

def run():
    wifi.connect()
    c = MQTTClient("fixed-id", BROKER, int(MQTT_PORT), keepalive=60)
    c.connect()
    c.subscribe(b"sensors/t")
    n = 0
    while True:
        c.publish(b"sensors/t", '{"msg": %d}' % n)
        c.wait_msg()
        n += 1
        time.sleep(2)

run()
'''
WIFI = b'''import network
def connect():
    w = network.WLAN(network.STA_IF)
    w.active(True)
    w.connect("home-net", "home-pass")
'''


def _changed_lines(before: bytes, after: bytes) -> list[str]:
    return [line for line in difflib.unified_diff(before.decode().splitlines(),
                                                  after.decode().splitlines(), lineterm="")
            if line.startswith(("+", "-")) and not line.startswith(("+++", "---"))]


@pytest.mark.skipif(not SEED.is_file(), reason="the seed document is not in this checkout")
def test_seed_constants_are_found_and_only_their_values_change() -> None:
    program = seed_program(SEED)
    assert {"server", "port", "client_id", "user", "password", "topic", "wifi_ssid",
            "wifi_password", "ca_file"} <= set(program.source.sites)
    assert program.fixed_settings == {"tls": True, "sni": True, "keepalive": 0,
                                      "publish_interval": 1.0}
    assert program.ca_path == "/broker.emqx.io-ca.crt"
    files = program.run_files(RUN, b"PEM")
    assert files["/broker.emqx.io-ca.crt"] == b"PEM"
    main = _changed_lines(program.files["/main.py"], files["/main.py"])
    assert main == ['-SERVER = "broker.emqx.io"', '-PORT = 8883', "-CLIENT_ID = 'micropython-"
                    "client-{id}'.format(id=random.getrandbits(8))",
                    "+SERVER = 'broker.test'", "+PORT = 40123", "+CLIENT_ID = 'hil-dut-1'",
                    "-PASSWORD = 'public'", '-TOPIC = "raspberry/mqtt"',
                    "+PASSWORD = 's3cret'", "+TOPIC = 'hil/x/messaging'"]
    wifi = _changed_lines(program.files["/wifi.py"], files["/wifi.py"])
    assert wifi == ["-\tssid = 'NAME OF YOUR WIFI NETWORK'",
                    "-\tpassword = 'PASSWORD OF YOUR WIFI NETWORK'",
                    "+\tssid = 'hil-ap'", "+\tpassword = 'wifi-secret'"]


@pytest.mark.skipif(not SEED.is_file(), reason="the seed document is not in this checkout")
def test_default_client_id_keeps_the_programs_own_expression() -> None:
    program = seed_program(SEED)
    files = program.run_files({**RUN, "client_id": None}, b"PEM")
    assert b"CLIENT_ID = 'micropython-client-{id}'.format(id=random.getrandbits(8))" in (
        files["/main.py"])


def test_literal_arguments_and_types_are_kept() -> None:
    program = ConstantsProgram({"/main.py": TCP_PROGRAM, "/wifi.py": WIFI}, "tcp")
    assert program.fixed_settings["tls"] is False
    assert program.fixed_settings["keepalive"] == 60
    # S6 asks for about 1 s unless the manifest or a constant says otherwise.
    assert program.fixed_settings["publish_interval"] == 1.0
    assert "sleep(2) in the publish loop" in program.why_fixed("publish_interval")
    files = program.run_files(RUN, b"PEM")
    main = _changed_lines(TCP_PROGRAM, files["/main.py"])
    assert '+MQTT_PORT = \'40123\'  # a string on purpose: the rewrite keeps the type' in main
    assert "+    c = MQTTClient('hil-dut-1', BROKER, int(MQTT_PORT), keepalive=60)" in main
    assert "+        c.publish(b'hil/x/messaging', '{\"msg\": %d}' % n)" in main, main
    assert b'w.connect(\'hil-ap\', \'wifi-secret\')' in files["/wifi.py"]
    assert "user" not in program.settable and "password" not in program.settable


def test_constants_imported_from_a_config_module() -> None:
    main = (b"from config import HOST, PORT as P\nimport secrets\nfrom umqtt.simple import "
            b"MQTTClient\nimport network\n"
            b"w = network.WLAN(network.STA_IF)\nw.connect(secrets.SSID, secrets.KEY)\n"
            b"c = MQTTClient('id', HOST, P)\nc.subscribe(secrets.TOPIC)\n")
    config = b"HOST = 'h'\nPORT = 1883\n"
    secrets = b"SSID = 's'\nKEY = 'k'\nTOPIC = 't'\n"
    source = ProgramSource({"/main.py": main, "/config.py": config, "/secrets.py": secrets})
    assert source.missing() == []
    rewritten = source.rewrite({"server": "broker.test", "port": 5, "wifi_password": "x",
                                "topic": "hil/t"})
    assert rewritten["/config.py"] == b"HOST = 'broker.test'\nPORT = 5\n"
    assert rewritten["/secrets.py"] == b"SSID = 's'\nKEY = 'x'\nTOPIC = 'hil/t'\n"


def test_manifest_maps_other_names(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_bytes(
        b"import w\nENDPOINT = 'e'\nNUM = 1\nCHAN = 'c'\nw.go()\n")
    (tmp_path / "w.py").write_bytes(b"NET = 'n'\nPW = 'p'\n")
    with pytest.raises(ConfigError) as caught:
        open_program(tmp_path)
    message = str(caught.value)
    assert "cannot find its server" in message and "[constants] server" in message
    assert "\n" not in message
    (tmp_path / "hil.toml").write_text(
        '[constants]\nserver = "ENDPOINT"\nport = "NUM"\ntopic = "CHAN"\n'
        'wifi_ssid = "w.py:NET"\nwifi_password = "w.py:PW"\n', encoding="utf-8")
    program = open_program(tmp_path)
    assert isinstance(program, ConstantsProgram)
    assert program.run_files(RUN, b"PEM")["/w.py"] == b"NET = 'hil-ap'\nPW = 'wifi-secret'\n"


def test_a_mapped_name_that_is_not_there_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_bytes(TCP_PROGRAM)
    (tmp_path / "wifi.py").write_bytes(WIFI)
    (tmp_path / "hil.toml").write_text('[constants]\nserver = "NOPE"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="maps server to 'NOPE'"):
        open_program(tmp_path)


def test_a_file_python_cannot_parse_is_left_as_written() -> None:
    broken = b"def oops(:\n    pass\n"
    program = ConstantsProgram({"/main.py": TCP_PROGRAM, "/wifi.py": WIFI,
                                "/extra.py": broken}, "tcp")
    assert program.program_files()["/extra.py"] == broken
    assert "/extra.py" in program.source.unparsed


def test_styles_are_detected_from_code_not_comments(tmp_path: Path) -> None:
    assert detect_style(REPO / "device_src") is SettingsStyle.CONTRACT
    assert detect_style(GUIDE_TLS) is SettingsStyle.CONSTANTS
    assert isinstance(open_program(REPO / "device_src"), ContractProgram)
    guide = open_program(GUIDE_TLS)
    assert isinstance(guide, ConstantsProgram)
    assert guide.fixed_settings["tls"] is True and guide.fixed_settings["sni"] is True
    assert guide.ca_path == "/emqxsl-ca.crt"
    assert load_manifest(GUIDE_TLS).firmware  # it declares the generations it targets
