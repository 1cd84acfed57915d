"""S1–S3 and S11: joining Wi-Fi, the CONNECT packet, the connected line, and auth."""

import pytest

from harness.checks import connection
from harness.hil import scenario
from harness.pytest_plugin import HilRunner, assert_spec

pytestmark = pytest.mark.hil


def test_s1_wifi_waits_then_reports_ip(hil_run: HilRunner) -> None:
    assert_spec(connection.check_wifi(hil_run(scenario.MESSAGING).evidence))


def test_s2_connect_packet_is_mqtt311_with_configured_identity(hil_run: HilRunner) -> None:
    assert_spec(connection.check_connect_packet(hil_run(scenario.MESSAGING).evidence))


def test_s2_default_client_id_has_seed_form(hil_run: HilRunner) -> None:
    assert_spec(connection.check_connect_packet(hil_run(scenario.DEFAULT_CLIENT_ID).evidence))


def test_s3_connected_line_follows_connack_0(hil_run: HilRunner) -> None:
    # In this run the tap holds CONNACK 0.5 s, so a line printed early cannot hide in jitter.
    assert_spec(connection.check_connected_line(hil_run(scenario.DEFAULT_CLIENT_ID).evidence))


def test_s3_no_connected_line_without_connack_0(hil_run: HilRunner) -> None:
    evidence = hil_run(scenario.AUTH_WRONG).evidence
    assert_spec(connection.check_not_connected(
        evidence, "S3", "no 'Connected to MQTT Broker' line when the broker refuses",
        connected_line=True))


def test_s11_wrong_credentials_not_authorized(hil_run: HilRunner) -> None:
    assert_spec(connection.check_auth_refused(hil_run(scenario.AUTH_WRONG).evidence))
