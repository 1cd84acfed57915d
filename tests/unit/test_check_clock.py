"""S13 (clock before TLS) on hand-made evidence."""

from __future__ import annotations

import pytest

from harness import console
from harness.checks.clock import CLOCK_DIAGNOSIS, check_clock_before_tls
from harness.checks.evidence import Evidence, Expectation, SerialLine, TlsHandshake

pytestmark = pytest.mark.unit

NOT_YET_VALID = ("ERROR tls: certificate verification failed: The certificate validity "
                 "starts in the future")


def evidence(*lines: str, handshake_error: str | None = None, ntp: tuple[float, ...] = (),
             handshake_at: float = 10.0) -> Evidence:
    ev = Evidence(Expectation(server="broker.test", topic="t", client_id=None, username=None,
                              keepalive=0, publish_interval=1.0, wifi_ip="192.168.4.23",
                              tls=True, cert_dates_checked=True))
    ev.serial = [SerialLine(1.0 + i, text) for i, text in enumerate(
        (console.wifi_connected("192.168.4.23"), *lines))]
    ev.handshakes = [TlsHandshake(handshake_at, 1, "broker.test", handshake_error)]
    ev.ntp_requests = list(ntp)
    return ev


def test_a_device_that_never_set_its_clock_fails_with_the_clock_diagnosis() -> None:
    finding = check_clock_before_tls(evidence(NOT_YET_VALID, handshake_error="bad cert"))
    assert not finding.ok
    message = finding.message()
    assert message.startswith("S13 violated")
    assert "not yet valid" in message and "asked the rig's NTP server nothing" in message
    assert f"diagnosis: {CLOCK_DIAGNOSIS}" in message


def test_a_verified_session_passes() -> None:
    finding = check_clock_before_tls(evidence(console.broker_connected("broker.test"),
                                              ntp=(5.0,)))
    assert finding.ok, finding.message()


def test_another_tls_failure_passes_only_with_an_ntp_request_before_it() -> None:
    other = "ERROR tls: handshake failed"
    assert check_clock_before_tls(evidence(other, handshake_error="x", ntp=(5.0,))).ok
    late = check_clock_before_tls(evidence(other, handshake_error="x", ntp=(11.0,)))
    assert not late.ok and "NTP server nothing" in late.message()
