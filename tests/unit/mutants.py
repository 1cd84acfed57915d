"""Deliberately broken copies of ``device_src/`` and a way to run the HIL suite on them.

Each :class:`Mutant` is one textual substitution in one file of the device program, plus
the spec items a correct suite must then fail: the item the defect is in, and the items
whose checks cannot pass without it (a device that crashes before its loop publishes
nothing, so S6 and S7 cannot hold). ``tests/unit/test_suite_sharpness.py`` runs the whole
HIL suite on each mutant and compares.

The substitution's old text must occur exactly once, so a refactor of ``device_src/``
breaks the sharpness test loudly instead of silently testing an unbroken program.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness import console, lifetime
from harness.spec_items import SPEC_ITEMS, item_of_test

REPO = Path(__file__).resolve().parents[2]
DEVICE_SRC = REPO / "device_src"
# The options that pick the device, broker and firmware are pinned, so an environment
# meant for a real board (HIL_DEVICE=...) does not turn this unit test into a HIL run.
# A mutant suite judges the spec checks. An asyncio stream collected after its loop closed
# (a teardown-time warning the project's own runs treat as an error) is not a spec item's
# failure, so it must not count as one here.
PINNED_OPTIONS = ("--hil-device", "emu", "--hil-broker", "amqtt",
                  "-W", "ignore::pytest.PytestUnraisableExceptionWarning")
DEFAULT_PROFILE = "v1.22"
ENV_DROPPED = ("HIL_DEVICE", "HIL_BROKER", "HIL_PROFILE", "HIL_DEVICE_SRC", "HIL_RESULTS",
               "HIL_FIRMWARE", "HIL_HISTORY", "HIL_HISTORY_BATCH", "PYTEST_ADDOPTS")
SUITE_TIMEOUT_S = 600.0  # ~25 s normally; a hung emulator must not hang the unit run
STOP_GRACE_S = 20.0  # after Ctrl-C, time for pytest to close the emulator and brokers


class MutationError(AssertionError):
    """The substitution no longer applies: device_src changed under the mutant."""


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str  # relative to device_src/
    old: str
    new: str
    defect_items: frozenset[str]  # the spec item(s) the defect violates
    dependent_items: frozenset[str] = frozenset()  # items that cannot pass without them
    why: str = ""  # the defect in words, and why the dependents fail
    # (item, text): every failure of that item must say this (the diagnosis names the cause).
    diagnoses: tuple[tuple[str, str], ...] = ()
    # Tests reported as not applicable on this mutant, beyond the control's skips.
    skipped_tests: frozenset[str] = frozenset()
    manifest: str | None = None  # replaces device_src/hil.toml (None: keep it)

    @property
    def expected_items(self) -> frozenset[str]:
        return self.defect_items | self.dependent_items

    def apply(self, destination: Path) -> Path:
        """Copy device_src/ to ``destination`` with the one substitution made."""
        shutil.copytree(DEVICE_SRC, destination, ignore=shutil.ignore_patterns("__pycache__"))
        if self.manifest is not None:
            (destination / "hil.toml").write_text(self.manifest, encoding="utf-8")
        path = destination / self.file
        source = path.read_text(encoding="utf-8")
        count = source.count(self.old)
        if count != 1:
            raise MutationError(
                f"mutant {self.name}: {self.old!r} occurs {count} times in device_src/"
                f"{self.file} (expected exactly once); update the mutant to the new code")
        path.write_text(source.replace(self.old, self.new), encoding="utf-8")
        return destination


def _items(*names: str) -> frozenset[str]:
    return frozenset(names)


def _all_items_but(*names: str) -> frozenset[str]:
    return frozenset(SPEC_ITEMS) - set(names)


# The items that need messages delivered to the device after it subscribes: without them
# there is no retained, echo or foreign message, the faults of R1/R3/R4 wait for echoes
# that never come, and R6 needs publishes. (S12, a TLS session per firmware generation,
# and R2/R5, retries before the first session, still hold.)
_NEEDS_DELIVERY = _items("S4", "S5", "S6", "S7", "S8", "R1", "R3", "R4", "R6")

# device_src's two lines that connect and then say so (the line is console.py's).
_CONNECT = "    client = mqtt.connect(cfg, client_id, cadata)\n"
_CONNECTED_LINE = ("    print('" + console.broker_connected("{server}")
                   + "'.format(server=cfg[\"server\"]))\n")


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "wifi_polls_ten_times_a_second", "wifi.py",
        "        time.sleep(1)\n        waited += 1",
        "        time.sleep(0.1)\n        waited += 1",
        _items("S1"),
        why=f"'{console.WIFI_WAITING}' printed every 0.1 s instead of about once a second"),
    Mutant(
        "keepalive_setting_ignored", "mqtt.py",
        'kwargs = {"keepalive": settings["keepalive"]}',
        "kwargs = {}",
        _items("S2"),
        why="keepalive not passed to MQTTClient: CONNECT carries umqtt's default 0"),
    Mutant(
        "connected_line_before_connect", "main.py",
        _CONNECT + _CONNECTED_LINE,
        _CONNECTED_LINE + _CONNECT,
        _items("S3"),
        why="the connected line is printed before CONNECT, so also when the broker refuses"),
    Mutant(
        "callback_set_after_subscribe", "main.py",
        "    client.set_callback(on_message)\n    client.subscribe(topic)\n",
        "    client.subscribe(topic)\n    client.set_callback(on_message)\n",
        _items("S4"),
        # umqtt.simple's subscribe() asserts that a callback is set, so the program dies
        # after CONNACK, before SUBSCRIBE leaves (in every scenario, TLS included).
        _NEEDS_DELIVERY - {"S4"},
        why="set_callback after subscribe: the device crashes in subscribe()",
        diagnoses=(("S4", "set_callback() must come before subscribe()"),)),
    Mutant(
        "callback_ignores_non_json", "main.py",
        "        payload = msg.decode()\n",
        "        payload = msg.decode()\n"
        "        if not payload.startswith('{'):\n"
        "            return\n",
        _items("S4", "S8"),
        why="on_message prints only JSON payloads: the retained and the foreign message "
            "are dropped silently"),
    Mutant(
        "subscribe_at_qos1", "main.py",
        "    client.subscribe(topic)\n",
        "    client.subscribe(topic, qos=1)\n",
        _items("S5"),
        why="SUBSCRIBE asks for QoS 1 instead of the guide's QoS 0"),
    Mutant(
        "publish_retained", "main.py",
        "        client.publish(topic, msg)\n",
        "        client.publish(topic, msg, retain=True)\n",
        # R6 is S6 under latency. (R3 holds: a broker forwards to existing subscribers
        # with the retain flag cleared, MQTT 3.1.1 §3.3.1.3, so the observer sees each once.)
        _items("S6"), _items("R6"),
        why="every PUBLISH has the retain flag set"),
    Mutant(
        "counter_skips", "main.py",
        "        counter.value += 1  #",
        "        counter.value += 2  #",
        # R6 is S6 under latency; R3 demands the counter without gaps across a reset.
        _items("S6"), _items("R3", "R6"),
        why='the counter goes up by 2: {"msg": 0}, {"msg": 2}, ...'),
    Mutant(
        "sni_never_sent", "mqtt.py",
        '        if sni:\n            ssl_params["server_hostname"] = server\n',
        "",
        _items("S9", "S10"),
        # Without server_hostname the v1.22 firmware refuses CERT_REQUIRED before the
        # handshake, so every check that needs a working TLS session fails with it.
        _items("S7", "S12"),
        why="server_hostname is never passed on the ssl_params path (umqtt 1.3.x)"),
    # -- the reconnect path (R1-R6) -------------------------------------------------
    Mutant(
        "no_keepalive_wait", "main.py",
        '    if not (cfg["reconnect"] and keepalive):\n',
        "    if True:\n",
        _items("R1"),
        why="the loop waits in umqtt's blocking wait_msg(): a black hole is never noticed"),
    Mutant(
        "no_backoff", "main.py",
        "        wait = backoff(delay)\n",
        "        wait = 0.01\n",
        _items("R2"),
        why="retries every 10 ms, with no growth and no jitter: a tight reconnect loop"),
    Mutant(
        "no_resubscribe", "main.py",
        '            subscribe(client, cfg["topic"])\n',
        '            if counter.value == 0:\n                subscribe(client, cfg["topic"])\n',
        _items("R3"),
        why="only the first session subscribes: after a reconnect no echo comes back"),
    Mutant(
        "counter_reset_on_reconnect", "main.py",
        "            client = connect(cfg, client_id, cadata)\n",
        "            counter = Counter()\n            client = connect(cfg, client_id, cadata)\n",
        _items("R3"),
        why="every session starts the counter at 0 again: duplicates after a reconnect"),
    # --- checks that cannot be fooled, diagnoses built from the evidence (issue 11) ---
    Mutant(
        "tls_never_attempted", "mqtt.py",
        '    if settings["tls"]:\n        kwargs.update(',
        '    if False:\n        kwargs.update(',
        _items("S9"),
        # Plain MQTT to the TLS port: no handshake, so nothing over TLS works.
        _items("S7", "S10", "S12"),
        why="the program ignores tls=true and speaks plain MQTT to the TLS port",
        diagnoses=(("S9", "never began a TLS handshake"),)),
    Mutant(
        "ca_file_missing", "main.py",
        "        cadata = config.read_ca(cfg)\n",
        '        cfg["ca_file"] += ".missing"\n        cadata = config.read_ca(cfg)\n',
        _items("S9"),
        _items("S7", "S10", "S12", "S13"),  # it stops before setting the clock
        why="the program looks for its CA file in the wrong place and stops with an "
            f"'{console.ERROR_PREFIX}settings: ca_file ... certificate' line before any TLS",
        diagnoses=(("S9", "never began a TLS handshake"), ("S9", "ca_file"))),
    Mutant(
        "crash_before_connecting", "main.py",
        _CONNECT,
        "    client = mqtt.connect(cfg, client_id, cadata, None, None)\n",
        _items("S2"),
        _all_items_but("S1", "S2", "S13"),  # Wi-Fi is up and the clock set before it
        why="a TypeError after Wi-Fi, before any connection: nothing after Wi-Fi can pass",
        diagnoses=(("S2", "TypeError"), ("S11", "TypeError"), ("S9", "TypeError"))),
    Mutant(
        "syntax_error", "main.py",
        "def subscribe(client, topic):\n",
        "def subscribe(client, topic)\n",
        _items("S1"),
        _all_items_but("S1"),
        why="main.py does not compile: the device stops before Wi-Fi",
        diagnoses=(("S1", "SyntaxError"), ("S2", "SyntaxError"))),
    Mutant(
        "subscribe_wrong_topic", "main.py",
        "    client.subscribe(topic)\n",
        '    client.subscribe(topic + "/elsewhere")\n',
        _items("S5"),
        _NEEDS_DELIVERY - {"S5"},  # nothing comes back: the first wait_msg() blocks
        why="SUBSCRIBE names another topic, so nothing is ever delivered to the device",
        diagnoses=(("S8", "never subscribed"),)),
    Mutant(
        "sni_always_sent", "mqtt.py",
        '        if sni:\n            ssl_params["server_hostname"] = server\n',
        '        ssl_params["server_hostname"] = server\n',
        _items("S10"),
        why="SNI is sent although sni is false, and hil.toml claims the program honours sni",
        diagnoses=(("S10", "claims to honour sni"),)),
    Mutant(
        "sni_always_sent_unclaimed", "mqtt.py",
        '        if sni:\n            ssl_params["server_hostname"] = server\n',
        '        ssl_params["server_hostname"] = server\n',
        _items(),
        why="SNI is sent although sni is false, and the manifest does not claim sni: the "
            "no-SNI check is not applicable (with the evidence), never failed",
        skipped_tests=frozenset({"test_s10_device_without_sni_rejected_and_diagnosed"}),
        manifest='settings = "contract"\nreconnect = true\nhonours = ["tls"]\n'),
    Mutant(
        "tls_always_unclaimed", "mqtt.py",
        '    if settings["tls"]:\n        kwargs.update(',
        '    if True:\n        kwargs.update(',
        _items(),
        why="TLS although tls is false, not claimed in the manifest: the plain scenarios "
            "run again over TLS and pass",
        manifest='settings = "contract"\nreconnect = true\nhonours = ["sni"]\n'),
    Mutant(
        "clock_never_set", "main.py",
        'needs_clock = cfg["tls"] and clock.firmware_checks_dates()',
        "needs_clock = False",
        _items("S13"),
        # On v1.22 the board's clock stays at 2000-01-01, so the broker's certificate is not
        # yet valid: every check that needs a TLS session fails with it (S12 in the v1.22
        # cell; the v1.20/v1.21 cells check no dates and pass).
        _items("S7", "S9", "S10", "S12"),
        why="the program never sets its clock before TLS (no ntptime.settime())"),
)


@dataclass(frozen=True)
class TestOutcome:
    __test__ = False  # not a pytest test class
    name: str  # e.g. test_s6_publishes_consecutive_json_counter or ...[v1.22]
    item: str | None  # "S6", from the s<n>_ in the name
    outcome: str  # passed, failed, error, skipped
    message: str  # the failure's message attribute and text


@dataclass(frozen=True)
class SuiteResult:
    outcomes: tuple[TestOutcome, ...]
    duration_s: float
    output: str  # the tail of pytest's own output, for assertion messages

    def failed(self) -> list[TestOutcome]:
        return [o for o in self.outcomes if o.outcome in ("failed", "error")]

    def failed_items(self) -> set[str]:
        return {o.item or o.name for o in self.failed()}

    def skipped(self) -> set[str]:
        return {o.name for o in self.outcomes if o.outcome == "skipped"}

    def summary(self) -> str:
        lines = [f"{o.outcome:7} {o.name}" for o in self.outcomes]
        return "\n".join(lines) + "\n--- pytest output tail ---\n" + self.output


def run_hil_suite(device_src: Path | str, results: Path, timeout_s: float = SUITE_TIMEOUT_S,
                  on_start: Callable[[subprocess.Popen[bytes]], None] | None = None,
                  profile: str = DEFAULT_PROFILE) -> SuiteResult:
    """Run ``pytest tests/hil -m hil`` on ``device_src`` (a folder, or ``seed:<path>``) with
    the emulated board on ``profile``, in a subprocess; parse its JUnit XML."""
    results.mkdir(parents=True, exist_ok=True)
    junit = results / "junit.xml"
    # hypothesis's plugin imports all of hypothesis at the end of every run (~1 s of CPU);
    # the HIL suite does not use it, and the suites run many at once.
    command = [sys.executable, "-m", "pytest", "tests/hil", "-m", "hil", "-q",
               "-p", "no:cacheprovider", "-p", "no:hypothesispytest", *PINNED_OPTIONS,
               "--hil-profile", profile,
               "--hil-device-src", str(device_src), "--hil-results", str(results),
               "--junitxml", str(junit)]
    env = {k: v for k, v in os.environ.items() if k not in ENV_DROPPED}
    started = time.monotonic()
    # Own session: on a timeout the whole tree (pytest, emulator, brokers) is killed.
    process = lifetime.spawn(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, start_new_session=True)
    if on_start is not None:  # lets a caller running suites concurrently stop this one
        on_start(process)
    try:
        output, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        output = _stop(process)
        raise AssertionError(
            f"the HIL suite on {device_src} did not finish within {timeout_s:g} s; last "
            f"output:\n{output.decode(errors='replace')[-3000:]}") from None
    except BaseException:  # Ctrl-C: leave no emulator or broker behind
        _stop(process)
        raise
    text = output.decode(errors="replace")
    if not junit.exists():
        raise AssertionError(f"the HIL suite wrote no JUnit XML (exit {process.returncode}):"
                             f"\n{text[-3000:]}")
    return SuiteResult(parse_junit(junit), time.monotonic() - started, text[-3000:])


def _stop(process: subprocess.Popen[bytes]) -> bytes:
    """Ctrl-C the run's process group so pytest tears its rig down; kill what lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    try:
        output, _ = process.communicate(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
    return output or b""


def parse_junit(path: Path) -> tuple[TestOutcome, ...]:
    outcomes = []
    for case in ET.parse(path).getroot().iter("testcase"):
        name = case.get("name", "")
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed"}.get(child.tag, child.tag)
                message = f"{child.get('message', '')}\n{child.text or ''}"
                break
        outcomes.append(TestOutcome(name, item_of_test(name), outcome, message))
    return tuple(outcomes)
