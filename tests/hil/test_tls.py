"""S9, S10 and S13: TLS with CA verification and SNI, refusals, brokers that demand SNI, and
the clock set before TLS."""

import pytest

from harness.checks import clock, connection
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


def test_s13_clock_set_before_tls(hil_run: HilRunner) -> None:
    evidence = hil_run(scenario.TLS_SNI).evidence
    if evidence.expectation.cert_dates_checked is False:
        pytest.skip("not applicable: this firmware checks no certificate dates (ESP32 "
                    "firmware before v1.22), so the clock need not be set before TLS")
    assert_spec(clock.check_clock_before_tls(evidence))
