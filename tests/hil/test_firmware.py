"""S12: the device program works on every umqtt.simple generation the firmware may carry
(1.3.4 on v1.20–v1.22: ``ssl=True, ssl_params``; 1.4.0 on v1.23–v1.24: ``ssl=SSLContext``;
1.6+ on v1.25+: both). What differs between generations is the TLS API, so the check is a
verified TLS connection with SNI on each; the message flow itself is S4–S8's business."""

import pytest

from harness.checks import connection
from harness.hil import scenario
from harness.pytest_plugin import HilRunner, _ProfileRigs, assert_spec, known_profiles

pytestmark = pytest.mark.hil


@pytest.mark.parametrize("profile", known_profiles())
def test_s12_firmware_generation_connects_over_tls_with_sni(
    profile: str, profile_rigs: _ProfileRigs, request: pytest.FixtureRequest
) -> None:
    runner = HilRunner(profile_rigs.get(profile), request.node)
    evidence = runner(scenario.TLS_SNI).evidence
    assert_spec(connection.check_tls_connected(evidence, "S12"))
