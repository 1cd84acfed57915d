"""The HIL rig: everything one test session needs, set up once, and a way to run a
:class:`~harness.hil.scenario.Scenario` on it and collect the evidence.

Set up once per session (the expensive, stateful parts): the test PKI, the broker, the
observer, the device (and the emulated board behind it), and the device program, which is
deployed once and skipped when unchanged. Per run (cheap): a fresh TLS front / wire tap
configured for the scenario, a topic of its own, the settings file, and a hard reset.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.broker.ntp import NtpMode
from harness.broker.tap_records import TapRecord
from harness.checks.evidence import Evidence, Expectation, ObservedPublish, SerialLine
from harness.checks.resilience import silent_loss_bound_s
from harness.console import BROKER_CONNECTED, MEMORY_FREE, SEND
from harness.deadline import Deadline
from harness.device.device import Device
from harness.errors import (
    DeviceCodeRaised,
    ExpectTimeout,
    HarnessError,
    ProgramBootLooping,
    ProgramStopped,
    RunSettled,
)
from harness.faults import FaultInjector, FaultKind, FaultNotApplicable, FaultSchedule
from harness.hil.collect import evidence_from_tap
from harness.hil.follow import RunFollower
from harness.hil.manifest import MANIFEST_NAME
from harness.hil.programs import CA_PATH_ON_DEVICE, DeviceProgram
from harness.hil.scenario import FOREIGN_PAYLOAD, RETAINED_PAYLOAD, Scenario
from harness.hil.settle import (
    Accepted,
    DeliveryOrder,
    EchoCannotCome,
    LossNeverNoticed,
    TlsToPlain,
)
from harness.hil.targets import Target, TargetOptions
from harness.run_files import SERIAL_LOG, TAP_TRACE
from harness.settings import DeviceSettings
from harness.wire import PacketType, WireDirection

WRONG_PASSWORD = "not-the-password"

_CONNECT_TIMEOUT_S = 20.0  # Wi-Fi delay + TLS handshake on a loaded 2-core runner
_REFUSAL_SETTLE_S = 8.0  # how long a refused device gets to give up and print its error
_RETRY_GRACE_S = 1.5  # after its error, how long a retrying program gets to show it retries
# A board found boot-looping gets this long of repeated Ctrl-C (a few dozen reboots on the
# emulated board) before it is given up; every second more is a second of rebooting flat out.
_BOOT_LOOP_CTRL_C_S = 1.5


class NotApplicable(Exception):
    """The scenario needs a setting the device program under test does not have."""


@dataclass
class RunResult:
    scenario: Scenario
    evidence: Evidence
    duration_s: float
    metrics: dict[str, float] = field(default_factory=dict)


class Rig:
    def __init__(self, target: Target, program: DeviceProgram, results_dir: Path, *,
                 session_dir: Path | None = None) -> None:
        self.target = target
        self.program = program
        self.session_id = uuid.uuid4().hex[:8]
        # One folder per session, so artifacts linked from earlier reports stay valid
        # (``session_dir``: one the caller names, e.g. shared by pytest-xdist workers).
        self.results_dir = session_dir or (
            results_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{self.session_id}")
        # Keyed by the whole (frozen) scenario; a run that failed is kept as its error.
        self._runs: dict[Scenario, RunResult | HarnessError | NotApplicable] = {}
        self.lost: str | None = None  # why the device is gone, once it is
        self._counter = itertools.count(1)
        self.program_revision = program_revision(program)
        # Where long waits (a soak) report how far the device has got; None: silent.
        self.progress: Callable[[str], None] | None = None

    @classmethod
    def open(cls, options: TargetOptions, program: DeviceProgram, results_dir: Path, *,
             session_dir: Path | None = None) -> Rig:
        """Start a target for ``options``, deploy ``program`` on its board (files already
        there are skipped) and return the rig; :meth:`close` (or ``with``) stops the target.
        A start or deploy that fails stops whatever had started, then raises."""
        target = Target(options).start()
        try:
            target.device.deploy(files=program.program_files(),
                                 soft_reset=target.backend.reset_at_start)
            return cls(target, program, results_dir, session_dir=session_dir)
        except BaseException:
            target.close()
            raise

    def close(self) -> None:
        self.target.close()

    def __enter__(self) -> Rig:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def device(self) -> Device:
        return self.target.device

    # --- settings ---------------------------------------------------------------
    def settings_for(self, scenario: Scenario, topic: str) -> DeviceSettings:
        """The settings for one run, after the program's fixed values are applied, checked
        against the contract on the host (a bad value is one line here, not a device
        error later)."""
        wanted: dict[str, Any] = {
            "server": self.target.server_name,
            "port": None,  # the run's tap port, filled in once the tap listens
            "tls": scenario.tls,
            # Given even without TLS: a program that always uses TLS still finds its CA.
            "ca_file": CA_PATH_ON_DEVICE,
            "sni": scenario.sni,
            "client_id": scenario.client_id,
            "user": self.target.options.username,
            "password": (WRONG_PASSWORD if scenario.wrong_password
                         else self.target.options.password),
            "topic": topic,
            "wifi_ssid": self.target.wifi_ssid,
            "wifi_password": self.target.wifi_password,
            "publish_interval": scenario.publish_interval,
            "keepalive": scenario.keepalive,
            "reconnect": scenario.reconnect,
            "mem_log_every": scenario.mem_log_every,
            "ntp_server": self.target.ntp_server_name,
        }
        if scenario.reconnect:
            wanted["reconnect_delay"] = scenario.reconnect_delay
            wanted["reconnect_max_delay"] = scenario.reconnect_max_delay
        fixed = self.program.fixed_settings
        settable = self.program.settable
        name = self.program.name
        for key in sorted(scenario.required):
            if key in fixed and fixed[key] != wanted[key]:
                raise NotApplicable(f"the {name} program always uses {key}={fixed[key]!r} "
                                    f"({self.program.why_fixed(key)}); scenario "
                                    f"{scenario.name!r} needs {key}={wanted[key]!r}")
            if key not in fixed and key not in settable:
                raise NotApplicable(f"the {name} program has no {key} setting the harness "
                                    f"can change (no constant carries it; if one does, map it "
                                    f"in hil.toml: [constants] {key} = \"NAME\"); scenario "
                                    f"{scenario.name!r} needs {key}={wanted[key]!r}")
        for key in ("client_id", "user", "password"):
            if key not in settable:
                wanted[key] = None  # the program sends its own (or none)
        wanted.update(fixed)
        return DeviceSettings.from_mapping(wanted, source=f"settings of scenario {scenario.name!r}")

    # --- runs -------------------------------------------------------------------
    def run(self, scenario: Scenario, *, again: bool = False) -> RunResult:
        """Run ``scenario`` once per session; later calls return the same evidence, or raise
        the same error (a broken run is not run again for each test that reads it).
        ``again``: run it anew all the same (a benchmark's repeats); the new outcome is kept."""
        if again or scenario not in self._runs:
            try:
                self._runs[scenario] = self._run(scenario)
            except (HarnessError, NotApplicable) as exc:
                self._runs[scenario] = exc
        outcome = self._runs[scenario]
        if isinstance(outcome, RunResult):
            return outcome
        raise outcome

    def _run(self, scenario: Scenario) -> RunResult:
        result = self._run_once(scenario)
        plain_hellos = result.evidence.tls_on_plain
        if not scenario.tls and plain_hellos and "tls" not in self.program.manifest.honours:
            # The program opens TLS whatever it is told. Nothing in a plain scenario needs
            # plain TCP, so run it again the way the program works, and say so.
            note = (f"the program ignores tls: it sent a TLS ClientHello to the plain MQTT "
                    f"port although tls was false (tap connection #{plain_hellos[0]}); this "
                    "scenario ran again over TLS")
            result = self._run_once(replace(scenario, tls=True))
            result.evidence.notes.append(note)
        return result

    def _run_once(self, scenario: Scenario) -> RunResult:
        if scenario.needs_cert_dates and self.target.checks_cert_dates is False:
            raise NotApplicable(
                "this firmware checks no certificate dates (ESP32 firmware before v1.22 is "
                "built without CONFIG_MBEDTLS_HAVE_TIME_DATE), so no program can refuse an "
                "expired certificate on it")
        started = time.monotonic()
        suffix = "-tls" if scenario.tls and not scenario.required else ""
        run_name = f"{next(self._counter):02d}-{scenario.name}{suffix}"
        run_dir = self.results_dir / run_name
        run_dir.mkdir(parents=True, exist_ok=True)
        # A topic of its own per run (a re-run too: nothing of the first run may leak in).
        topic = f"hil/{self.session_id}/{run_name}"
        if scenario.reconnect and not self.program.manifest.reconnect:
            raise NotApplicable(f"the {self.program.name} program does not say it reconnects "
                                f"(reconnect = true in its {MANIFEST_NAME}; "
                                f"{self.program.manifest.source}): R1-R6 apply only to "
                                "programs that reconnect")
        settings = self.settings_for(scenario, topic)
        # A program with fixed TLS (the seed) runs every scenario over TLS.
        scenario = replace(scenario, tls=settings.tls)
        with self.target.tap_for(scenario, run_dir / TAP_TRACE) as tap:
            settings = replace(settings, port=tap.port)
            schedule = self._fault_schedule(scenario, tap, topic)
            return self._drive(scenario, settings, tap, topic, run_dir, started, schedule)

    def _fault_schedule(self, scenario: Scenario, tap: Any,
                        topic: str) -> FaultSchedule | None:
        """The run's faults, armed on the tap's records (None without faults)."""
        if not scenario.faults:
            return None
        injector = FaultInjector(tap, self.target.broker, self.target.backend,
                                 observer=self.target.observer)
        try:
            schedule = FaultSchedule(injector, scenario.faults, topic)
        except FaultNotApplicable as exc:
            raise NotApplicable(str(exc)) from None
        tap.add_listener(schedule.on_record)
        return schedule

    def _drive(self, scenario: Scenario, settings: DeviceSettings, tap: Any, topic: str,
               run_dir: Path, started: float, schedule: FaultSchedule | None = None,
               ) -> RunResult:
        observer = self.target.observer
        observer.subscribe(topic)
        if scenario.retained:
            observer.publish(topic, RETAINED_PAYLOAD, retain=True)
            observer.wait_for_messages(1, topic, timeout=5.0)
        self.target.prepare_wifi(delay=scenario.wifi_delay, link_control=scenario.drops_wifi)
        if not self.target.prepare_ntp(scenario.ntp) and scenario.ntp is not NtpMode.UP:
            raise NotApplicable(f"scenario {scenario.name!r} needs the rig's own NTP server "
                                f"{scenario.ntp.value}: {self.target.ntp_note}")
        since = time.time()
        files = self.program.run_files(settings.to_dict(), self.target.ca_pem)
        self.device.deploy(files=files)
        if schedule is not None:
            schedule.begin()  # t = 0 of AtTime triggers: the reset
        begin = self.device.log.position()  # the run's own serial log starts at its reset
        mark = self.device.hard_reset()
        notes: list[str] = []
        boot_loop: str | None = None
        run = RunFollower(self.device.log, mark, heap_every=scenario.mem_log_every)
        deliveries = DeliveryOrder(topic)
        # The settle rules, and the delivery order that ends the foreign message's wait.
        listeners: list[Callable[[TapRecord], None]] = [
            *self._settlers(scenario, settings, topic, run), deliveries]
        for listener in listeners:
            tap.add_listener(listener)
            for record in tap.records():  # what came before the listener
                listener(record)
        try:
            if scenario.expect_connect:
                self._wait_for_echoes(scenario, topic, run, deliveries)
            else:
                self._wait_for_refusal(run)
        except ProgramStopped as exc:
            notes.append(f"run ended early: {exc.message}")  # a crash, named as one
            if isinstance(exc, ProgramBootLooping):
                boot_loop = exc.loop
        except RunSettled as exc:
            notes.append(f"run ended early: {exc.message}")
        except ExpectTimeout as exc:
            # Not fatal: the checks say which spec items the device got wrong, unless
            # the port itself is gone.
            self.device.check_alive()
            notes.append(f"run ended early: {exc.message.splitlines()[0]}")
        finally:
            for listener in listeners:
                tap.remove_listener(listener)
            if schedule is not None:  # every fault ends with the run
                schedule.close()
                notes += [f"fault: {error}" for error in schedule.errors]
                notes += [f"fault never triggered: {f.describe()}" for f in schedule.untriggered]
            # Evidence ends here: the KeyboardInterrupt that stops the program is ours.
            stop = self.device.log.mark("the harness stops the program (Ctrl-C)")
            stopped = False
            with contextlib.suppress(HarnessError):
                if boot_loop is None:
                    self.device.interrupt()
                else:
                    self.device.interrupt(timeout=_BOOT_LOOP_CTRL_C_S)
                stopped = True
            if not stopped and boot_loop is not None:
                # A real board in such a loop misses Ctrl-C too; nothing more can be deployed.
                self.lost = (f"{boot_loop}, and it does not stop on Ctrl-C; fix the program "
                             "or erase the flash (esptool erase-flash)")
            device_ip = self._device_ip() if stopped and not self.target.wifi_ip else None
        published = len(self._sends(mark))
        # The wire and the observer trail the serial line by a moment: let them catch up.
        def tapped_publishes() -> list[TapRecord]:
            found: list[TapRecord] = tap.packets(PacketType.PUBLISH,
                                                 WireDirection.CLIENT_TO_BROKER)
            return found

        with contextlib.suppress(HarnessError):
            Deadline(3.0, "the tap to record every PUBLISH the device printed").poll(
                lambda: True if len(tapped_publishes()) >= published else None)
        device_publishes = tapped_publishes()
        if device_publishes:
            last = bytes(device_publishes[-1].fields.get("payload") or b"")
            with contextlib.suppress(HarnessError):
                Deadline(3.0, "the observer to receive the device's last PUBLISH").poll(
                    lambda: True if any(m.payload == last for m in observer.messages(topic))
                    else None)
        if scenario.retained:
            observer.publish(topic, "", retain=True)  # leave no retained message behind
        evidence = Evidence(
            expectation=Expectation(
                server=settings.server, topic=topic,
                client_id=settings.client_id, username=settings.user,
                keepalive=settings.keepalive,
                publish_interval=float(settings.publish_interval),
                # The address the board's Wi-Fi configuration gives it (the emulated
                # access point's); a real board's DHCP lease only the board itself knows.
                wifi_ip=self.target.wifi_ip or device_ip,
                # Only the emulated access point's association time is known.
                wifi_delay=scenario.wifi_delay if self.target.backend.controls_wifi else None,
                tls=settings.tls,
                retained_payload=RETAINED_PAYLOAD if scenario.retained else None,
                foreign_payloads=(FOREIGN_PAYLOAD,) if scenario.foreign else (),
                reconnect_delay=settings.reconnect_delay if settings.reconnect else None,
                reconnect_max_delay=(settings.reconnect_max_delay if settings.reconnect
                                     else None),
                honours=self.program.manifest.honours,
                client_id_form=self.program.manifest.client_id_form,
                cert_dates_checked=self.target.checks_cert_dates,
            ),
            serial=[SerialLine(line.time, line.content)
                    for line in self.device.log.lines(mark, until=stop)],
            observed=[ObservedPublish(m.time, m.topic, m.payload, m.retain)
                      for m in observer.messages(topic)],
        )
        evidence.notes = notes
        evidence.ntp_requests = self.target.ntp_requests(since)
        if self.target.ntp_note and settings.tls:
            evidence.notes.append(self.target.ntp_note)
        evidence_from_tap(evidence, tap)
        evidence.artifacts = self._save_artifacts(run_dir, begin, tap)
        return RunResult(scenario, evidence, time.monotonic() - started,
                         metrics={**run_metrics(evidence), **run.cost_metrics()})

    def _settlers(self, scenario: Scenario, settings: DeviceSettings, topic: str,
                  run: RunFollower) -> list[Callable[[TapRecord], None]]:
        """The wire evidence that ends this run's waits (harness.hil.settle)."""
        rules: list[Callable[[TapRecord], None]] = []
        if not scenario.tls and "tls" not in self.program.manifest.honours:
            rules.append(TlsToPlain(run))  # then run again over TLS (:meth:`_run`)
        rules.append(EchoCannotCome(run, topic) if scenario.expect_connect else Accepted(run))
        if settings.keepalive > 0 and any(f.kind is FaultKind.TIMEOUT for f in scenario.faults):
            rules.append(LossNeverNoticed(run, silent_loss_bound_s(
                settings.keepalive, float(settings.publish_interval))))
        return rules

    def _sends(self, mark: int) -> list[str]:
        return [line.content for line in self.device.log.lines(mark)
                if SEND.match(line.content)]

    def _wait_for_echoes(self, scenario: Scenario, topic: str, run: RunFollower,
                         deliveries: DeliveryOrder) -> None:
        """Follow the device's loop by its line structure, not by payload numbers, so a
        device with a wrong counter still gets the foreign message (S8 stays independent
        of S6). Every wait also ends when the program stops (a crash, or the prompt); a
        program told to reconnect prints ERROR lines and carries on. The foreign message's
        wait also ends once the device has read past it without printing it."""
        slack = scenario.fault_allowance()
        run.until(lambda r: r.connected, _CONNECT_TIMEOUT_S + scenario.wifi_delay + slack,
                  "'Connected to MQTT Broker \"...\"'")
        per_message = scenario.publish_interval + 5.0 + 2 * sum(
            f.latency_s + f.jitter_s for f in scenario.faults)
        if scenario.foreign:
            run.until(lambda r: r.sends >= 2, 2 * per_message, "a second Send line")
            self.target.observer.publish(topic, FOREIGN_PAYLOAD)
            run.until(lambda r: FOREIGN_PAYLOAD in r.received
                      or deliveries.read_past(FOREIGN_PAYLOAD, r.received), 2 * per_message,
                      f"'Received {FOREIGN_PAYLOAD!r}'")
        wanted = scenario.publishes
        ends = time.monotonic() + scenario.run_for_s if scenario.run_for_s else None
        report = self.progress
        # Each iteration shows up within its own budget, or the loop has stalled (a device
        # that never gets its echo): no need to wait out the whole run's budget for it.
        run.until(lambda r: r.sends >= wanted or (ends is not None and time.monotonic() >= ends),
                  per_message * wanted + slack, f"{wanted} Send lines",
                  idle=per_message + slack,
                  progress=None if report is None else lambda r: report(
                      f"{scenario.name}: {r.completed} messages echoed"
                      + (f" of {wanted}" if ends is None else
                         f", {max(0.0, ends - time.monotonic()) / 60:.1f} min to go")))
        wanted = min(wanted, run.sends)  # a timed run ends with the iteration in flight
        # The last awaited iteration is complete: its wait_msg() has printed what came.
        run.until(lambda r: r.completed >= wanted, per_message,
                  f"the Received line after Send line {wanted}")

    def _wait_for_refusal(self, run: RunFollower) -> None:
        """A refused device prints its error and stops at the REPL (or keeps retrying):
        the wait ends at the prompt that follows the error."""
        with contextlib.suppress(ProgramStopped, ExpectTimeout):
            run.until(lambda r: bool(r.errors) or r.crashed, _REFUSAL_SETTLE_S,
                      "an ERROR line or a traceback")
        if (run.errors or run.crashed) and not run.stopped:
            # Give a retrying program a moment to show what it does next.
            run.until_stopped(_RETRY_GRACE_S)

    def _device_ip(self) -> str | None:
        """What ``ifconfig()[0]`` says on a real board that is still associated (S1
        compares against it); None when it is not connected, so S1 never expects 0.0.0.0.
        A board that cannot say (the query raised on it: no ``network`` module) gives None;
        a lost port, a REPL that no longer answers or a bug raises."""
        try:
            out = self.device.exec("import network\nw = network.WLAN(network.STA_IF)\n"
                                   "print(w.ifconfig()[0] if w.isconnected() else '-')")
        except DeviceCodeRaised:
            return None
        lines = out.strip().splitlines()
        address = lines[-1].strip() if lines else "-"
        return None if address in ("-", "0.0.0.0") else address

    def _save_artifacts(self, run_dir: Path, since: int, tap: Any) -> dict[str, Path]:
        artifacts = {"serial log": self.device.log.save(run_dir / SERIAL_LOG, since)}
        record = getattr(tap, "record_path", None)
        if record and Path(record).exists():
            artifacts["tap trace"] = Path(record)
        broker_log = self.target.broker_log
        if broker_log is not None and broker_log.exists():
            artifacts["broker log"] = broker_log
        return artifacts


def program_revision(program: DeviceProgram) -> str:
    """A short content hash of the device program, for telling runs apart in history."""
    digest = hashlib.sha256()
    for path, content in sorted(program.program_files().items()):
        digest.update(path.encode() + b"\0" + content + b"\0")
    return f"{program.name}@{digest.hexdigest()[:10]}"


def run_metrics(evidence: Evidence) -> dict[str, float]:
    """Device metrics for the history: connect time, TLS handshake, echo round trips."""
    from harness.checks.messaging import echo_round_trips

    metrics: dict[str, float] = {}
    connects = evidence.connects()
    acks = evidence.connacks()
    if connects and acks:
        metrics["connect_ms"] = (acks[0].time - connects[0].time) * 1000
    done = [h for h in evidence.handshakes if h.error is None]
    if connects and done:
        # TCP accepted -> first MQTT packet: the TLS handshake as the device experiences it.
        metrics["tls_handshake_ms"] = (connects[0].time - done[0].time) * 1000
    trips = sorted(echo_round_trips(evidence))
    if trips:
        metrics["echo_rtt_p50_ms"] = trips[len(trips) // 2] * 1000
        metrics["echo_rtt_p95_ms"] = trips[min(len(trips) - 1, int(len(trips) * 0.95))] * 1000
    metrics.update(boot_and_heap_metrics(evidence))
    metrics["messages_sent"] = float(len(evidence.device_publishes()))
    metrics["messages_received"] = float(len(evidence.receives()))
    return metrics


def boot_and_heap_metrics(evidence: Evidence) -> dict[str, float]:
    """Boot (the first line after the reset) to the connected line, and the device's free
    heap: the last reading and how much it loses per message (a least-squares slope)."""
    metrics: dict[str, float] = {}
    connected = evidence.lines_matching(BROKER_CONNECTED)
    if evidence.serial and connected:
        metrics["boot_to_connected_ms"] = (connected[0][0].time - evidence.serial[0].time) * 1000
    heap = [(int(m["count"]), int(m["free"])) for _, m in evidence.lines_matching(MEMORY_FREE)
            if int(m["free"]) >= 0]
    if heap:
        metrics["heap_free_bytes"] = float(heap[-1][1])
    if len({count for count, _ in heap}) >= 2:
        mean_x = sum(c for c, _ in heap) / len(heap)
        mean_y = sum(f for _, f in heap) / len(heap)
        slope = (sum((c - mean_x) * (f - mean_y) for c, f in heap)
                 / sum((c - mean_x) ** 2 for c, _ in heap))
        metrics["heap_loss_bytes_per_message"] = -slope
    return metrics
