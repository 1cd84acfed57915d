"""S9 and S10: TLS with CA verification and SNI, refusals, and brokers that demand SNI."""

import pytest

from harness.checks import connection
from harness.hil import scenario
from harness.pytest_plugin import HilRunner, assert_spec

pytestmark = pytest.mark.hil


def test_s9_tls_connects_and_offers_sni(hil_run: HilRunner) -> None:
    assert_spec(connection.check_tls_connected(hil_run(scenario.TLS_SNI).evidence))


def test_s9_tls_untrusted_ca_refused(hil_run: HilRunner) -> None:
    evidence = hil_run(scenario.TLS_UNTRUSTED).evidence
    assert_spec(connection.check_tls_refused(evidence, "a certificate from an untrusted CA"))


def test_s9_tls_wrong_host_refused(hil_run: HilRunner) -> None:
    evidence = hil_run(scenario.TLS_WRONG_HOST).evidence
    assert_spec(connection.check_tls_refused(evidence, "a certificate for another host name"))


def test_s9_tls_expired_certificate_refused(hil_run: HilRunner) -> None:
    evidence = hil_run(scenario.TLS_EXPIRED).evidence
    assert_spec(connection.check_tls_refused(evidence, "an expired certificate"))


def test_s10_sni_required_device_with_sni_connects(hil_run: HilRunner) -> None:
    assert_spec(connection.check_tls_connected(hil_run(scenario.TLS_SNI).evidence, "S10"))


def test_s10_device_without_sni_rejected_and_diagnosed(hil_run: HilRunner) -> None:
    assert_spec(connection.check_sni_rejected(hil_run(scenario.TLS_NO_SNI).evidence))
