"""S13: the clock before TLS. Since firmware v1.22 an ESP32 checks certificate dates
against its RTC, which starts at 2000-01-01 on power-on; a program must set it (NTP)
before its TLS handshake, or every broker certificate is "not yet valid"."""

from __future__ import annotations

import re

from harness.checks.evidence import Evidence
from harness.checks.findings import Finding
from harness.console import BROKER_CONNECTED, broker_connected

# How mbedTLS (and a device's error line) says a certificate is not valid yet.
NOT_YET_VALID = re.compile(r"(validity starts in the future|not yet valid|BADCERT_FUTURE)", re.I)
CLOCK_DIAGNOSIS = ("certificate not yet valid: the board's clock is at 2000-01-01; set it "
                   "(ntptime) before connecting")


def clock_not_set(ev: Evidence) -> bool:
    """The device refused the broker's certificate as not yet valid."""
    return any(NOT_YET_VALID.search(line.text) for line in ev.serial)


def check_clock_before_tls(ev: Evidence) -> Finding:
    """S13: on firmware that checks certificate dates, the board's clock is set before
    TLS, so a valid certificate verifies and the session runs."""
    finding = Finding("S13", "the device sets its clock (e.g. ntptime.settime()) before the "
                      "TLS handshake, so the broker's valid certificate is accepted on "
                      "firmware that checks certificate dates (v1.22+)", ev,
                      quote=(NOT_YET_VALID.pattern, "ERROR|rror"))
    if clock_not_set(ev):
        finding.fail("the device refused the broker's valid certificate as not yet valid"
                     + ("" if ev.ntp_requests else ", and asked the rig's NTP server nothing"))
        return finding
    if any(h.error is None for h in ev.handshakes):
        if not ev.lines_matching(BROKER_CONNECTED):
            finding.fail(f"no '{broker_connected(ev.expectation.server)}' line after the "
                         "TLS handshake")
        return finding  # a verified session on this firmware: the clock was right
    # The handshake failed for another reason (other checks say which): S13 holds if the
    # device asked for the time before it tried.
    first_try = min((h.time for h in ev.handshakes), default=None)
    asked = [t for t in ev.ntp_requests if first_try is None or t <= first_try]
    if not asked:
        errors = [h.error for h in ev.handshakes if h.error]
        finding.fail("no TLS handshake completed" + (f" ({errors[0]})" if errors else "")
                     + " and the device asked the rig's NTP server nothing before it")
    return finding
