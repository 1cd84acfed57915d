"""A check's verdict: which spec item, what was expected, what was seen, where to look."""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.checks.evidence import Evidence
from harness.console import BROKER_CONNECTED, WIFI_CONNECTED, wifi_connected
from harness.wire import PacketType


@dataclass
class Finding:
    item: str  # spec item, e.g. "S6"
    title: str  # what the item requires, one line
    evidence: Evidence
    problems: list[str] = field(default_factory=list)
    quote: tuple[str, ...] = ()  # regexes of serial lines worth quoting on failure
    # Why the item cannot be judged on this program (it ignored a setting the check needs
    # and does not claim to honour it), with the evidence; reported as skipped.
    inapplicable: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, problem: str) -> Finding:
        self.problems.append(problem)
        return self

    def not_applicable(self, why: str) -> Finding:
        self.inapplicable = why
        self.problems.clear()
        return self

    def message(self) -> str:
        """The failure text a firmware engineer reads first."""
        lines = [f"{self.item} violated — expected: {self.title}"]
        lines += [f"  seen: {problem}" for problem in self.problems]
        lines.append(f"  diagnosis: {diagnose(self.evidence)}")
        lines += [f"  note: {note}" for note in self.evidence.notes]
        if self.quote:
            lines.append("  serial lines that matter:")
            lines.append(self.evidence.quote(*self.quote))
        lines.append("  serial log tail:")
        lines.append(self.evidence.tail(8))
        for name, path in sorted(self.evidence.artifacts.items()):
            lines.append(f"  {name}: {path}")
        return "\n".join(lines)


def diagnose(evidence: Evidence) -> str:
    """The most likely reason a run went the way it did, in words a user can act on. Each
    answer is built from the evidence it names: what the device printed, what reached the
    tap, what the broker answered."""
    exp = evidence.expectation
    first_error = evidence.first_error()
    error_text = f"{first_error.text}" if first_error is not None else None
    if not evidence.lines_matching(WIFI_CONNECTED):
        if error_text is not None and evidence.connections_opened == 0:
            return (f"the device program stopped before joining Wi-Fi; the first error it "
                    f"printed: {error_text}")
        return f"the device never joined Wi-Fi (no '{wifi_connected('<ip>')}' line)"
    hellos = evidence.hellos()
    if exp.tls and not hellos and _mentions_sni(evidence):
        return ("the device sent no SNI: it stopped before the TLS handshake because no "
                "server_hostname was given (a broker that requires SNI, as EMQX Serverless "
                "does, would refuse it anyway): pass server_hostname=<server>")
    if not exp.tls and evidence.tls_on_plain:
        return ("the device opened TLS although tls was false: a TLS ClientHello arrived at "
                "the plain MQTT port")
    from harness.checks.clock import CLOCK_DIAGNOSIS, clock_not_set

    if evidence.expectation.tls and clock_not_set(evidence):
        return CLOCK_DIAGNOSIS
    refused = [h for h in evidence.handshakes if h.error]
    if refused and not evidence.packets_of(PacketType.CONNECT):
        handshake = refused[0]
        error = handshake.error or ""
        if not handshake.hello_seen:
            return _no_hello(evidence, error, error_text)
        if handshake.sni is None and "sni" in error.lower():
            return ("TLS rejected by the broker because the device sent no SNI "
                    "(the broker requires it, as EMQX Serverless does): pass "
                    "server_hostname=<server> in the TLS parameters")
        if handshake.sni is not None and "sni" in error.lower():
            return f"TLS rejected by the broker: unknown SNI {handshake.sni!r}"
        return f"TLS handshake failed: {error}"
    if evidence.connections_opened == 0:
        if error_text is not None:
            return (f"the device joined Wi-Fi, then stopped before opening any connection; "
                    f"the first error it printed: {error_text}")
        return ("the device joined Wi-Fi but opened no connection to the broker and printed "
                "no error")
    for connack in evidence.connacks():
        code = connack.return_code
        if code in (4, 5):
            return (f"not authorized: the broker answered CONNACK {code} "
                    f"({'bad user name or password' if code == 4 else 'not authorized'})")
        if code not in (0, None):
            return f"the broker refused the connection with CONNACK {code}"
    crashes = evidence.crashes()
    if crashes:
        return f"the device program crashed: {crashes[0].exception}"
    if evidence.lines_matching(BROKER_CONNECTED):
        return "the device connected to the broker"
    if error_text is not None:
        return (f"the device opened a connection but did not complete MQTT CONNECT; it "
                f"printed: {error_text}")
    return "the device opened a connection but did not complete MQTT CONNECT"


def _mentions_sni(evidence: Evidence) -> bool:
    return any("server_hostname" in line.text or "SNI" in line.text
               for line in evidence.serial)


def _no_hello(evidence: Evidence, error: str, error_text: str | None) -> str:
    """A TLS port that got no ClientHello: plain MQTT, or a device that gave up first."""
    if not error.startswith(("client closed", "handshake timed out")):
        # Bytes arrived, but not a ClientHello: the device spoke plain MQTT.
        return ("the device never began a TLS handshake: it sent non-TLS bytes (plain MQTT?) "
                f"to the TLS port (no ClientHello; the tap's TLS front: {error})")
    stopped = f"; the first error it printed: {error_text}" if error_text else ""
    return ("the device opened a connection but never began the TLS handshake (no "
            f"ClientHello reached the tap){stopped}")
