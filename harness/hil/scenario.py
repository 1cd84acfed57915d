"""One device run's set-up, as data: what the broker side presents and what the device is
told. The rig turns a :class:`Scenario` into evidence; checks read the evidence."""

from __future__ import annotations

from dataclasses import dataclass

# Which certificate the TLS front presents (names of TestPki attributes).
SERVER_CERTS = ("server", "wrong_host", "expired", "untrusted")


@dataclass(frozen=True)
class Scenario:
    """Device-side values (tls, sni, interval, keepalive, client_id) are preferences: a
    program with a fixed value (the seed always uses TLS, 1 s, keepalive 0) runs with its
    own, and the expectation follows it. Settings named in ``required`` must be honoured,
    or the scenario does not apply to that program."""

    name: str
    tls: bool = False
    server_cert: str = "server"
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
    expect_connect: bool = True
    required: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.server_cert not in SERVER_CERTS:
            raise ValueError(f"server_cert must be one of {SERVER_CERTS}")


RETAINED_PAYLOAD = "retained-hello"
FOREIGN_PAYLOAD = "foreign-hello"

# The scenarios of the spec checks. Several checks share one run: the messaging run
# feeds S1–S8, which assert different things about the same evidence.
MESSAGING = Scenario("messaging", retained=True, foreign=True, wifi_delay=2.5, publishes=6,
                     keepalive=30, client_id="hil-dut-1", mem_log_every=1)
TLS_SNI = Scenario("tls-sni", tls=True, require_sni=True, publishes=3, required=frozenset({"tls"}))
TLS_UNTRUSTED = Scenario("tls-untrusted-ca", tls=True, server_cert="untrusted",
                         expect_connect=False, required=frozenset({"tls"}))
TLS_WRONG_HOST = Scenario("tls-wrong-host", tls=True, server_cert="wrong_host",
                          expect_connect=False, required=frozenset({"tls"}))
TLS_EXPIRED = Scenario("tls-expired", tls=True, server_cert="expired", expect_connect=False,
                       required=frozenset({"tls"}))
TLS_NO_SNI = Scenario("tls-no-sni", tls=True, require_sni=True, sni=False,
                      expect_connect=False, required=frozenset({"tls", "sni"}))
AUTH_WRONG = Scenario("auth-wrong-password", wrong_password=True, expect_connect=False)
# Default client id (S2) and, with CONNACK held back, the order of CONNACK and the
# connected line (S3).
DEFAULT_CLIENT_ID = Scenario("default-client-id", publishes=2, connack_delay=0.5)
