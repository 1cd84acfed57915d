"""Checks for getting connected: Wi-Fi (S1), CONNECT (S2), the connected line (S3),
TLS and SNI (S9, S10) and authentication (S11)."""

from __future__ import annotations

import itertools
import re

from harness.checks.evidence import SEED_CLIENT_ID_FORM, Evidence
from harness.checks.findings import Finding, diagnose
from harness.console import (
    BROKER_CONNECTED,
    WIFI_CONNECTED,
    WIFI_WAITING,
    broker_connected,
    head,
    wifi_connected,
)

# How a device may say its TLS connection failed: an error line or the exception's text.
TLS_ERROR_LINE = re.compile(
    r"(tls|ssl|certificate|cert\b|verif|handshake|MBEDTLS|x509|CN does not match)", re.I)
# Lines about a file, not about TLS: "ERROR settings: ca_file ... copy the CA certificate
# there", "OSError: [Errno 2] ENOENT" (a CA file that is missing is not a TLS refusal).
FILE_ERROR_LINE = re.compile(r"(^ERROR settings\b|ENOENT|Errno 2\b|No such file|OSError:? 2\b)",
                             re.I)
# A serial error may trail the tap's record of the handshake by the serial line's latency,
# never precede it by more than the two host-side channels' jitter.
_ERROR_AFTER_HELLO_SLACK_S = 0.5
AUTH_ERROR_LINE = re.compile(r"(not authori[sz]ed|MQTTException: ?[45]\b|CONNACK ?[45]\b)", re.I)


def check_wifi(ev: Evidence) -> Finding:
    """S1: 'Waiting for connection...' about once a second, then 'Connected on <ip>'."""
    exp = ev.expectation
    how_long = f" (~{exp.wifi_delay:g} s here)" if exp.wifi_delay is not None else ""
    finding = Finding("S1", f"prints '{WIFI_WAITING}' about once a second until "
                      f"associated{how_long}, then '{wifi_connected(exp.wifi_ip or '<ip>')}' "
                      "with the address ifconfig()[0] reports", ev,
                      quote=(re.escape(WIFI_WAITING), head(WIFI_CONNECTED)))
    connected = ev.lines_matching(WIFI_CONNECTED)
    if not connected:
        return finding.fail(f"no '{wifi_connected('<ip>')}' line")
    first_line, match = connected[0]
    if exp.wifi_ip is None:
        finding.fail(f"'{wifi_connected(match['ip'])}', but the board reports no address of its "
                     "own (ifconfig() after the run: not connected)")
    elif match["ip"] != exp.wifi_ip:
        finding.fail(f"'{wifi_connected(match['ip'])}', but the access point gave the board "
                     f"{exp.wifi_ip} (what ifconfig()[0] reports)")
    waiting = [line for line in ev.serial if line.text.strip() == WIFI_WAITING]
    after = [line for line in waiting if line.time > first_line.time]
    if after:
        finding.fail(f"{len(after)} '{WIFI_WAITING}' line(s) after "
                     f"'{wifi_connected(match['ip'])}'")
    before = [line for line in waiting if line.time <= first_line.time]
    if exp.wifi_delay is not None and exp.wifi_delay >= 1.0:
        low, high = int(exp.wifi_delay), int(exp.wifi_delay) + 2
        if not low <= len(before) <= high:
            finding.fail(f"{len(before)} '{WIFI_WAITING}' lines during a "
                         f"{exp.wifi_delay:g} s association; expected {low}..{high} "
                         "(one per second)")
    if len(before) >= 2:
        gaps = [b.time - a.time for a, b in itertools.pairwise(before)]
        odd = [gap for gap in gaps if not 0.6 <= gap <= 1.6]
        if odd:
            finding.fail(f"'{WIFI_WAITING}' lines are not about 1 s apart: gaps "
                         + ", ".join(f"{gap:.2f} s" for gap in odd))
    return finding


def check_connect_packet(ev: Evidence) -> Finding:
    """S2: one MQTT 3.1.1 CONNECT with the configured identity, clean session, keepalive."""
    exp = ev.expectation
    form = exp.client_id_form or SEED_CLIENT_ID_FORM
    wanted_id = exp.client_id or str(form)
    finding = Finding("S2", f"one CONNECT, protocol level 4, client id {wanted_id!r}, user "
                      f"{exp.username!r} with password, clean session, keepalive "
                      f"{exp.keepalive}", ev)
    connects = ev.connects()
    if len(connects) != 1:
        return finding.fail(f"{len(connects)} CONNECT packets reached the broker")
    fields = connects[0].fields
    if fields.get("protocol_level") != 4 or fields.get("protocol_name") != "MQTT":
        finding.fail(f"protocol {fields.get('protocol_name')!r} level "
                     f"{fields.get('protocol_level')} (MQTT 3.1.1 is 'MQTT' level 4)")
    client_id = fields.get("client_id")
    if exp.client_id is not None:
        if client_id != exp.client_id:
            finding.fail(f"client id {client_id!r}, configured {exp.client_id!r}")
    elif not form.matches(str(client_id)):
        finding.fail(f"client id {client_id!r} is not of the form {form}")
    if fields.get("username") != exp.username:
        finding.fail(f"user name {fields.get('username')!r}, configured {exp.username!r}")
    if exp.username is not None and not fields.get("has_password"):
        finding.fail("no password in CONNECT although one is configured")
    if fields.get("clean_session") is not True:
        finding.fail("clean session flag is off")
    if fields.get("keepalive") != exp.keepalive:
        finding.fail(f"keepalive {fields.get('keepalive')} s, configured {exp.keepalive} s")
    return finding


def check_connected_line(ev: Evidence) -> Finding:
    """S3: 'Connected to MQTT Broker "<server>"' only after CONNACK 0."""
    exp = ev.expectation
    finding = Finding("S3", f"'{broker_connected(exp.server)}' printed once, after "
                      "the broker's CONNACK 0", ev, quote=(head(BROKER_CONNECTED),))
    lines = ev.lines_matching(BROKER_CONNECTED)
    if len(lines) != 1:
        return finding.fail(f"{len(lines)} '{broker_connected('<server>')}' lines")
    line, match = lines[0]
    if match["server"] != exp.server:
        finding.fail(f"names server {match['server']!r}, configured {exp.server!r}")
    accepted = [p for p in ev.connacks() if p.return_code == 0]
    if not accepted:
        finding.fail("printed although the broker never sent CONNACK 0")
    elif line.time < accepted[0].time:
        finding.fail(f"printed {accepted[0].time - line.time:.3f} s before CONNACK 0 "
                     "reached the device")
    return finding


def check_not_connected(ev: Evidence, item: str, title: str, *,
                        connected_line: bool = False) -> Finding:
    """Common core of every refusal: the device published nothing. With
    ``connected_line`` (S3's own check) it must not claim to be connected either; the
    other refusal checks leave that line to S3, so one defect fails one item."""
    finding = Finding(item, title, ev, quote=(head(BROKER_CONNECTED), "Error|ERROR|rror"))
    if connected_line and ev.lines_matching(BROKER_CONNECTED):
        finding.fail(f"the device printed '{broker_connected('<server>')}' anyway")
    if ev.device_publishes():
        finding.fail(f"the device published {len(ev.device_publishes())} message(s)")
    return finding


def check_tls_connected(ev: Evidence, item: str = "S9") -> Finding:
    """S9 (positive): TLS with CA + SNI succeeds and the broker side records SNI=<server>.
    S10 and S12 reuse it for an SNI-demanding broker and per firmware generation."""
    exp = ev.expectation
    finding = Finding(item, f"TLS handshake verifies the server and offers SNI {exp.server!r}; "
                      "the MQTT session then runs over TLS", ev)
    done = [h for h in ev.handshakes if h.error is None]
    if not done:
        if not ev.hellos():
            return finding.fail(f"no TLS handshake completed: {no_handshake(ev)}")
        errors = [h.error for h in ev.handshakes]
        return finding.fail("no TLS handshake completed" + (f" ({errors[0]})" if errors else ""))
    if done[0].sni != exp.server:
        finding.fail(f"SNI {done[0].sni!r}, expected {exp.server!r}")
    tls_connections = {h.connection for h in done}
    if not any(p.connection in tls_connections for p in ev.connects()):
        finding.fail("no CONNECT arrived over the TLS connection")
    if not ev.lines_matching(BROKER_CONNECTED):
        finding.fail(f"no '{broker_connected(exp.server)}' line")
    return finding


def check_tls_refused(ev: Evidence, why: str) -> Finding:
    """S9 (negative): the device begins the TLS handshake (its ClientHello reaches the tap),
    aborts it on the bad server certificate, sends no CONNECT, and says so on serial."""
    finding = check_not_connected(ev, "S9", f"the device refuses {why}: it begins the TLS "
                                  "handshake, aborts it, no CONNECT reaches the broker and "
                                  "the serial log shows a TLS error")
    hellos = ev.hellos()
    if not hellos:
        return finding.fail(f"no refusal to judge: {no_handshake(ev)}")
    # Aborted means: no MQTT over it. The tap's view of the handshake's last flight is not
    # evidence either way (mbedTLS may verify after the server has sent Finished).
    if ev.connects():
        finding.fail("a CONNECT reached the broker through the untrustworthy TLS session")
    began = hellos[0].time - _ERROR_AFTER_HELLO_SLACK_S
    if not any(TLS_ERROR_LINE.search(line.text) and not FILE_ERROR_LINE.search(line.text)
               for line in ev.serial if line.time >= began):
        finding.fail("the serial log shows no TLS/certificate error after the handshake began")
    return finding


def no_handshake(ev: Evidence) -> str:
    """Why no ClientHello reached the tap, from what did arrive and what the device said."""
    first_error = ev.first_error()
    said = f"; the first error it printed: {first_error.text}" if first_error else ""
    if ev.connections_opened == 0:
        return f"the device never began a TLS handshake: it opened no connection{said}"
    if not any(h.error for h in ev.handshakes) and ev.connects():
        return "the device never began a TLS handshake: it connected without TLS"
    errors = [h.error or "" for h in ev.handshakes]
    if errors and not errors[0].startswith(("client closed", "handshake timed out")):
        return ("the device never began a TLS handshake: it sent non-TLS bytes (plain "
                f"MQTT?) to the TLS port ({errors[0]}){said}")
    return ("the device never began a TLS handshake: it opened a connection and closed it "
            f"before any ClientHello{said}")


def check_sni_rejected(ev: Evidence) -> Finding:
    """S10 (negative): a device that sends no SNI is rejected; the cause is named. A device
    that sends SNI anyway ignores ``sni: false``: that is not applicable, unless its
    manifest claims it honours ``sni`` (then it fails)."""
    finding = check_not_connected(ev, "S10", "a broker that requires SNI rejects a device that "
                                  "sends none, and the harness names the missing SNI")
    offered = [h for h in ev.hellos() if h.sni is not None]
    if offered:
        evidence = (f"it sent SNI {offered[0].sni!r} (tap connection #{offered[0].connection}) "
                    "although sni was false")
        if "sni" not in ev.expectation.honours:
            return finding.not_applicable(f"the program ignores sni: {evidence}")
        finding.fail(f"the program claims to honour sni, but {evidence}")
    if "sent no SNI" not in diagnose(ev):
        finding.fail(f"diagnosis does not name the missing SNI: {diagnose(ev)}")
    return finding


def check_auth_refused(ev: Evidence) -> Finding:
    """S11: wrong credentials -> CONNACK 4/5, reported on serial, diagnosed."""
    finding = check_not_connected(ev, "S11", "with wrong credentials the broker answers "
                                  "CONNACK 4 or 5, the device reports it on serial, and the "
                                  "harness diagnoses 'not authorized'")
    codes = [p.return_code for p in ev.connacks()]
    if not any(code in (4, 5) for code in codes):
        finding.fail(f"CONNACK codes seen: {codes or 'none'}")
    if not any(AUTH_ERROR_LINE.search(line.text) for line in ev.serial):
        finding.fail("the serial log does not report the refusal (no 'not authorized' / "
                     "MQTTException(5) line)")
    if "not authorized" not in diagnose(ev):
        finding.fail(f"diagnosis: {diagnose(ev)}")
    return finding
