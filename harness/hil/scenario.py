"""One device run's set-up, as data: what the broker side presents and what the device is
told. The rig turns a :class:`Scenario` into evidence; checks read the evidence."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from harness.broker.ntp import NtpMode
from harness.broker.pki import ServerCert
from harness.faults.model import AfterEchoes, AtTime, Fault, FaultKind, Site


@dataclass(frozen=True)
class Scenario:
    """Device-side values (tls, sni, interval, keepalive, client_id) are preferences: a
    program with a fixed value (the seed always uses TLS, 1 s, keepalive 0) runs with its
    own, and the expectation follows it. Settings named in ``required`` must be honoured,
    or the scenario does not apply to that program."""

    name: str
    tls: bool = False
    server_cert: ServerCert = ServerCert.SERVER  # which certificate the TLS front presents
    require_sni: bool = False  # the broker side refuses handshakes without the right SNI
    sni: bool = True  # the device is told to send SNI (server_hostname)
    wrong_password: bool = False
    retained: bool = False  # a retained message waits on the topic before the device starts
    foreign: bool = False  # another client publishes to the topic mid-run
    wifi_delay: float = 0.0  # seconds until the access point associates
    publishes: int = 4  # how many Send lines to wait for in a connecting run
    publish_interval: float = 0.3
    keepalive: int = 0
    client_id: str | None = None  # None: the seed's micropython-client-<0..255>
    connack_delay: float = 0.0  # the tap holds CONNACK this long (S3's ordering check)
    mem_log_every: int = 0  # the device prints its free heap every N messages (heap trend)
    run_for_s: float = 0.0  # > 0: publish for this long instead (publishes is then a cap)
    expect_connect: bool = True
    required: frozenset[str] = frozenset()
    # Resilience (R1-R6): the device is told to reconnect, with this backoff, and the faults
    # fire on their triggers (harness.faults; recorded in the evidence next to the packets).
    reconnect: bool = False
    reconnect_delay: float = 1.0
    reconnect_max_delay: float = 60.0
    faults: tuple[Fault, ...] = ()
    ntp: NtpMode = NtpMode.UP  # what the rig's NTP server does during the run
    # Only meaningful where the firmware checks certificate dates (v1.22+); elsewhere the
    # scenario is reported as not applicable.
    needs_cert_dates: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.server_cert, ServerCert):
            raise ValueError(f"server_cert must be a ServerCert ({', '.join(ServerCert)})")
        if self.faults and not all(isinstance(f, Fault) for f in self.faults):
            raise ValueError("faults must be a tuple of harness.faults.Fault")

    @property
    def drops_wifi(self) -> bool:
        return any(f.site is Site.ACCESS_POINT for f in self.faults)

    def designed_wait_s(self) -> float:
        """What the device itself is made to wait in this scenario: nothing a harness could
        shorten. The guide's Wi-Fi loop looks once a second, so an association delay counts
        as whole seconds."""
        wait = math.ceil(self.wifi_delay) + self.connack_delay
        if self.expect_connect:
            wait += self.run_for_s or self.publishes * self.publish_interval
        return wait

    def expected_s(self) -> float:
        """About how long a run of this scenario takes: its designed waits, plus what its
        faults add (their durations, a keepalive-bound detection, each round trip held up by
        latency). A scheduling hint (``-n`` starts the longest work first), never a
        deadline: a wait ends on its evidence."""
        seconds = RUN_OVERHEAD_S + self.designed_wait_s()
        for fault in self.faults:
            seconds += fault.duration_s or 0.0
            if fault.kind is FaultKind.LATENCY:
                # CONNECT, SUBSCRIBE, then each publish and its echo: one round trip each.
                seconds += 2 * fault.latency_s * (self.publishes + 2)
        if self.faults and self.keepalive:
            seconds += 1.5 * self.keepalive
        return seconds

    def fault_allowance(self) -> float:
        """Extra seconds the run's waits allow for its faults: their durations, a
        keepalive-bound detection, and two backoff delays at the ceiling."""
        if not self.faults:
            return 0.0
        durations = sum(f.duration_s or 0.0 for f in self.faults)
        backoff = 2 * self.reconnect_max_delay if self.reconnect else 0.0
        return durations + 1.5 * self.keepalive + backoff + 5.0


# A run's own cost besides its designed waits (hard reset, deploy check, boot, connect), as
# measured on an emulated board; only for :meth:`Scenario.expected_s`.
RUN_OVERHEAD_S = 0.5
RETAINED_PAYLOAD = "retained-hello"
FOREIGN_PAYLOAD = "foreign-hello"

# The scenarios of the spec checks. Several checks share one run: the messaging run
# feeds S1–S8, which assert different things about the same evidence.
MESSAGING = Scenario("messaging", retained=True, foreign=True, wifi_delay=2.5, publishes=6,
                     keepalive=30, client_id="hil-dut-1", mem_log_every=1)
TLS_SNI = Scenario("tls-sni", tls=True, require_sni=True, publishes=3, required=frozenset({"tls"}))
TLS_UNTRUSTED = Scenario("tls-untrusted-ca", tls=True, server_cert=ServerCert.UNTRUSTED,
                         expect_connect=False, required=frozenset({"tls"}))
TLS_WRONG_HOST = Scenario("tls-wrong-host", tls=True, server_cert=ServerCert.WRONG_HOST,
                          expect_connect=False, required=frozenset({"tls"}))
TLS_EXPIRED = Scenario("tls-expired", tls=True, server_cert=ServerCert.EXPIRED,
                       expect_connect=False, required=frozenset({"tls"}), needs_cert_dates=True)
TLS_NO_SNI = Scenario("tls-no-sni", tls=True, require_sni=True, sni=False,
                      expect_connect=False, required=frozenset({"tls", "sni"}))
AUTH_WRONG = Scenario("auth-wrong-password", wrong_password=True, expect_connect=False,
                      required=frozenset({"password"}))
# Default client id (S2) and, with CONNACK held back, the order of CONNACK and the
# connected line (S3).
DEFAULT_CLIENT_ID = Scenario("default-client-id", publishes=2, connack_delay=0.5)

# The resilience scenarios (R1-R6): faults of a few seconds, a small keepalive, a backoff
# that doubles from the first delay to a ceiling a few steps up, so each run stays short.
_RECONNECTS = frozenset({"reconnect"})
NEW_WIFI_IP = "192.168.4.77"
# R1: after the 3rd echo the connection becomes a black hole (a NAT that forgot it: the
# old mapping swallows everything, new connections work). The publish into it is lost.
R_BLACK_HOLE = Scenario("r-black-hole", reconnect=True, keepalive=2, publishes=7,
                        faults=(Fault.black_hole(AfterEchoes(3)),),
                        required=_RECONNECTS, reconnect_delay=0.2, reconnect_max_delay=0.8)
# R3: after the 3rd echo the connection is reset, and so is every new one for a second.
R_RESET = Scenario("r-reset", reconnect=True, keepalive=2, publishes=7,
                   faults=(Fault.hard_reset(AfterEchoes(3), 1.0),), required=_RECONNECTS,
                   reconnect_delay=0.2, reconnect_max_delay=0.8)
# R4: after the 3rd echo the access point drops the link for 2 s; the board gets another
# address when it reassociates.
R_WIFI_DROP = Scenario("r-wifi-drop", reconnect=True, keepalive=2, publishes=6,
                       faults=(Fault(FaultKind.WIFI_NEW_IP, AfterEchoes(3), 2.0,
                                     new_ip=NEW_WIFI_IP),), required=_RECONNECTS,
                       reconnect_delay=0.2, reconnect_max_delay=0.8)
# R2 + R5: at boot the broker answers CONNACK 3 for 5.5 s (enough refused attempts to see
# the delays double 0.15 -> 0.3 -> 0.6 and then jitter at the ceiling), then nothing
# listens for 1.5 s.
R_UNAVAILABLE_AT_BOOT = Scenario(
    "r-unavailable-at-boot", reconnect=True, keepalive=2, publishes=3,
    reconnect_delay=0.15, reconnect_max_delay=0.6, required=_RECONNECTS,
    faults=(Fault(FaultKind.REFUSE, AtTime(0.0), 5.5),
            Fault(FaultKind.NO_LISTENER, AtTime(5.5), 1.5)))
# R6: 1.5 s (+-0.1 s) each way from the start; the keepalive stays above the round trip.
R_LATENCY = Scenario("r-latency", reconnect=True, keepalive=10, publishes=3,
                     faults=(Fault.latency(AtTime(0.0), 1.5, jitter_s=0.1),),
                     required=_RECONNECTS, reconnect_delay=0.2, reconnect_max_delay=0.8)

# A long run (not part of the spec suite): 1,000 messages through the tap over TLS, 0.1 s
# apart (at most 10 per second); ``soak(n)`` sets the count, ``soak(minutes=60)`` runs for
# an hour instead. The device prints its free heap every 100 messages: the heap trend.
SOAK = Scenario("soak", tls=True, publishes=1000, publish_interval=0.1, mem_log_every=100,
                required=frozenset({"tls"}))


def by_name() -> dict[str, Scenario]:
    """Every scenario defined here, by its name (runs are recorded and grouped by name)."""
    return {value.name: value for value in globals().values() if isinstance(value, Scenario)}


def soak(messages: int = SOAK.publishes, *, minutes: float = 0.0) -> Scenario:
    if messages < 1 or minutes < 0:
        raise ValueError(f"a soak needs at least 1 message and no negative duration, got "
                         f"{messages} messages, {minutes} minutes")
    if minutes:
        # Publishing for a while: the cap is what 10 messages a second would reach.
        messages = int(minutes * 60 / SOAK.publish_interval) + 1
        return replace(SOAK, name=f"soak-{minutes:g}min", run_for_s=minutes * 60,
                       publishes=messages, mem_log_every=_heap_every(messages))
    return replace(SOAK, name=f"soak-{messages}", publishes=messages,
                   mem_log_every=_heap_every(messages))


def _heap_every(messages: int) -> int:
    """At least ten heap readings, at most one per 100 messages."""
    return max(1, min(SOAK.mem_log_every, messages // 10))
