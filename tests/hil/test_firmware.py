"""S12: the device program works on every umqtt.simple generation the firmware may carry
(1.3.4 on v1.20–v1.22, 1.4.0 on v1.23–v1.24, 1.6+ on v1.25+)."""

import pytest

from harness.checks import connection, messaging
from harness.hil import scenario
from harness.pytest_plugin import HilRunner, _ProfileRigs, assert_spec, known_profiles

pytestmark = pytest.mark.hil


@pytest.mark.parametrize("profile", known_profiles())
def test_s12_firmware_generation_connects_over_tls_and_echoes(
    profile: str, profile_rigs: _ProfileRigs, request: pytest.FixtureRequest
) -> None:
    runner = HilRunner(profile_rigs.get(profile), request.node)
    evidence = runner(scenario.TLS_SNI).evidence
    tls = connection.check_tls_connected(evidence)
    tls.item = "S12"
    assert_spec(tls)
    echo = messaging.check_echo(evidence)
    echo.item = "S12"
    assert_spec(echo)
