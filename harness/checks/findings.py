"""A check's verdict: which spec item, what was expected, what was seen, where to look."""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.checks.evidence import Evidence


@dataclass
class Finding:
    item: str  # spec item, e.g. "S6"
    title: str  # what the item requires, one line
    evidence: Evidence
    problems: list[str] = field(default_factory=list)
    quote: tuple[str, ...] = ()  # regexes of serial lines worth quoting on failure

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, problem: str) -> Finding:
        self.problems.append(problem)
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
    """The most likely reason a run went the way it did, in words a user can act on."""
    from harness.checks.evidence import BROKER_CONNECTED, WIFI_CONNECTED

    if not evidence.lines_matching(WIFI_CONNECTED):
        return "the device never joined Wi-Fi (no 'Connected on <ip>' line)"
    hello = any(h.hello_seen for h in evidence.handshakes)
    if evidence.expectation.tls and not hello and any(
            "server_hostname" in line.text or "SNI" in line.text for line in evidence.serial):
        return ("the device sent no SNI: it stopped before the TLS handshake because no "
                "server_hostname was given (a broker that requires SNI, as EMQX Serverless "
                "does, would refuse it anyway): pass server_hostname=<server>")
    refused = [h for h in evidence.handshakes if h.error]
    if refused and not evidence.packets_of("CONNECT"):
        handshake = refused[0]
        error = handshake.error or ""
        if handshake.sni is None and "sni" in error.lower():
            return ("TLS rejected by the broker because the device sent no SNI "
                    "(the broker requires it, as EMQX Serverless does): pass "
                    "server_hostname=<server> in the TLS parameters")
        if handshake.sni is not None and "sni" in error.lower():
            return f"TLS rejected by the broker: unknown SNI {handshake.sni!r}"
        return f"TLS handshake failed: {error}"
    if evidence.connections_opened == 0 and not evidence.packets:
        return "the device never reached the broker (host unreachable or name not resolved)"
    for connack in evidence.packets_of("CONNACK", "b2c"):
        code = connack.fields.get("return_code")
        if code in (4, 5):
            return (f"not authorized: the broker answered CONNACK {code} "
                    f"({'bad user name or password' if code == 4 else 'not authorized'})")
        if code not in (0, None):
            return f"the broker refused the connection with CONNACK {code}"
    crashes = evidence.tracebacks()
    if crashes:
        return f"the device program crashed: {crashes[0]}"
    if evidence.lines_matching(BROKER_CONNECTED):
        return "the device connected to the broker"
    return "the device opened a connection but did not complete MQTT CONNECT"
