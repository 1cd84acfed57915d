"""Histories shaped like real nightlies, for the report's browser test and the docs
screenshots: a red day (a regression, a fix, a flaky test, a test failing for days,
skipped profiles, a not-applicable check, a device program that starts leaking heap, a
resilience check that fails under an injected reset) and a green day. The matrix has two
emulated cells and a real board (where R4, which needs the emulated access point, does not
apply); in the first nights the device program did not reconnect yet, so R1–R6 were not
applicable. Each run leaves a run folder with a serial log and a tap trace (the resilience
runs with their fault events), written in the formats the rig writes, so links and
timelines are real.

    python -m tests.unit.report_days docs/   # writes docs/report-*.png
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from harness import console
from harness.faults.model import END, START, FaultEvent
from harness.hil import scenario as scenarios
from harness.report.history import History, RunRecord, TestRecord
from harness.run_files import SERIAL_LOG, TAP_TRACE

DAY = 86400.0
SHOT_HEIGHT = 1800
FIRST_NIGHT = 1_795_000_000.0  # 2026-11-18, 02:00 UTC-ish
# (backend, device, profile, broker): two emulated cells and a board on a serial port.
CELLS = (("emu", "emu", "v1.22", "amqtt"), ("emu", "emu", "v1.22", "mosquitto"),
         ("serial", "/dev/ttyUSB0", "flashed", "amqtt"))
BOARD = "serial"
SKIPPED_PROFILES = ("v1.23", "v1.24", "v1.25")
TESTS = (
    ("S1", "test_connection.py::test_s1_wifi_waits_then_reports_ip", "messaging"),
    ("S2", "test_connection.py::test_s2_connect_packet_is_mqtt311_with_configured_identity",
     "messaging"),
    ("S3", "test_connection.py::test_s3_connected_line_follows_connack_0", "messaging"),
    ("S4", "test_messaging.py::test_s4_retained_message_reaches_callback_set_before_subscribe",
     "messaging"),
    ("S6", "test_messaging.py::test_s6_publishes_consecutive_json_counter", "messaging"),
    ("S7", "test_messaging.py::test_s7_echo_in_order_on_serial_and_at_observer", "messaging"),
    ("S8", "test_messaging.py::test_s8_foreign_message_printed", "messaging"),
    ("S9", "test_tls.py::test_s9_tls_connects_and_offers_sni", "tls-sni"),
    ("S10", "test_tls.py::test_s10_device_without_sni_rejected_and_diagnosed", "tls-no-sni"),
    ("S11", "test_connection.py::test_s11_wrong_credentials_not_authorized",
     "auth-wrong-password"),
)
S7_FAILURE = (
    "S7 violated — expected: every published payload is printed as Received, in order\n"
    "  seen: no Received line for '{\"msg\": 3}' (the device printed Send for it)\n"
    "  diagnosis: the device connected to the broker\n"
    "  serial lines that matter:\n"
    "    | Send '{\"msg\": 3}' to topic 'hil/n/messaging'\n"
    "    | Send '{\"msg\": 4}' to topic 'hil/n/messaging'\n"
    "  serial log tail:\n"
    "    | Send '{\"msg\": 4}' to topic 'hil/n/messaging'"
)
S11_FAILURE = (
    "S11 violated — expected: wrong credentials give CONNACK 4 or 5, reported on serial\n"
    "  seen: the device printed no error after CONNACK 5\n"
    "  diagnosis: not authorized: the broker answered CONNACK 5 (not authorized)\n"
    "  serial lines that matter:\n"
    "    | (no such lines)"
)
S8_FLAKE = "S8 violated — expected: the foreign message is printed\n  seen: no Received line"
RESILIENCE = (
    ("R1", "test_r1_silent_loss_detected_within_keepalive_bound", scenarios.R_BLACK_HOLE),
    ("R2", "test_r2_reconnect_backoff_grows_capped_jittered", scenarios.R_UNAVAILABLE_AT_BOOT),
    ("R3", "test_r3_resubscribes_and_resumes_counter", scenarios.R_RESET),
    ("R4", "test_r4_rejoins_dropped_wifi", scenarios.R_WIFI_DROP),
    ("R5", "test_r5_broker_unavailable_at_boot_retried", scenarios.R_UNAVAILABLE_AT_BOOT),
    ("R6", "test_r6_publish_and_echo_hold_under_latency", scenarios.R_LATENCY),
)
RECONNECT_FROM_NIGHT = 3  # the device program learnt to reconnect then
NO_RECONNECT = ("not applicable: the device_src program does not say it reconnects "
                "(reconnect = true in its hil.toml): R1-R6 apply only to programs that "
                "reconnect")
NO_ACCESS_POINT = ("not applicable: wifi_new_ip needs the emulated access point; a real "
                   "board's Wi-Fi is not the harness's to drop")
R3_FAILURE = (
    "R3 violated — expected: after reconnecting, a SUBSCRIBE to 'hil/n/r-reset' on the new "
    "connection before its first PUBLISH, the counter continuing with no gap and no "
    "duplicate, and the observer seeing every payload once\n"
    "  seen: the counters on the wire are [0, 1, 2, 3, 0, 1, 2], not 0..6 once each (a gap, "
    "a duplicate, or a restart from 0)\n"
    "  serial lines that matter:\n"
    "    | Connected to MQTT Broker \"broker.test\"\n"
    "    | Send '{\"msg\": 0}' to topic 'hil/n/r-reset'"
)


def write_day(history_dir: Path, results: Path, *, red: bool, nights: int = 8) -> None:
    """Write ``nights`` nightly rounds; the last one is the day shown."""
    with History.for_writing(history_dir) as history:
        for night in range(nights):
            last = night == nights - 1
            for cell_index, cell in enumerate(CELLS):
                backend, device, profile, broker = cell
                started = FIRST_NIGHT + night * DAY + cell_index * 300
                stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(started))
                session = results / f"{backend}-{broker}" / f"{stamp}-n{night}"
                records = [_record(spec, test, scenario, night, nights, cell, red, session)
                           for spec, test, scenario in TESTS]
                if backend != BOARD:
                    records += _s12(profile, broker, session)
                records += [_resilience(spec, test, night, nights, cell, red, session)
                            for spec, test, _ in RESILIENCE]
                finished = started + 140 + night * 3 + (40 if red and last else 0)
                history.record_run(
                    RunRecord(started=started, finished=finished, batch=f"nightly-{night}",
                              exit_status=1 if any(r.bad for r in records) else 0,
                              harness_rev="4f2a9c1e07bd", host="ci-runner-3",
                              command=f"pytest tests/hil -m hil --hil-device {device} "
                                      f"--hil-profile {profile} --hil-broker {broker}"),
                    records)
                leak = red and night >= nights - 3
                for scenario in {s for _, _, s in TESTS}:
                    _write_run_folder(session / f"01-{scenario}", started, scenario,
                                      failing=red and last and broker == "mosquitto",
                                      leak=leak)
                if night >= RECONNECT_FROM_NIGHT:
                    for _, _, run in RESILIENCE:
                        _write_fault_run_folder(
                            session / f"02-{run.name}", started + 60, run,
                            failing=_r3_fails(run.name, night, nights, cell, red))


def _record(spec: str, test: str, scenario: str, night: int, nights: int,
            cell: tuple[str, str, str, str], red: bool, session: Path) -> TestRecord:
    backend, device, profile, broker = cell
    last = night == nights - 1
    outcome, message = "passed", ""
    emulated = backend != BOARD
    if spec == "S7" and broker == "mosquitto" and red and last:
        outcome, message = "failed", S7_FAILURE
    elif spec == "S4" and broker == "amqtt" and emulated and red and night == nights - 2:
        outcome, message = "failed", "S4 violated — expected: the retained message is printed"
    elif spec == "S8" and broker == "amqtt" and emulated and red and night % 2 == 1:
        outcome, message = "failed", S8_FLAKE
    elif spec == "S11" and broker == "mosquitto" and red and night >= nights - 4:
        outcome, message = "failed", S11_FAILURE
    elif spec == "S10" and broker == "amqtt" and emulated:
        outcome, message = "skipped", ("not applicable: the seed program always uses "
                                       "sni=True; scenario 'tls-no-sni' needs sni=False")
    folder = session / f"01-{scenario}"
    metrics: dict[str, float] = {}
    if spec == "S7" and emulated:
        leak = red and night >= nights - 3
        metrics = {
            "boot_to_connected_ms": 3050 + night * 9 + (420 if red and last else 0),
            "connect_ms": 4.1 + (night % 3) * 0.4 + (1 if broker == "mosquitto" else 0),
            "tls_handshake_ms": 180 + night * 2,
            "echo_rtt_p50_ms": 2.4 + (night % 2) * 0.3,
            "heap_free_bytes": 96_000 - (4_800 * 6 if leak else 0),
            "heap_loss_bytes_per_message": 4_800.0 if leak else 6.0,
        }
    return TestRecord(
        nodeid=f"tests/hil/{test}", outcome=outcome, duration=0.9 if spec != "S1" else 5.4,
        spec_item=spec, backend=backend, device=device, profile=profile, broker=broker,
        transport="tls" if scenario.startswith("tls") else "plain",
        device_rev="device_src@1cc9504a1d", message=message,
        artifacts={"serial_log": str(folder / SERIAL_LOG),
                   "tap_trace": str(folder / TAP_TRACE),
                   "broker_log": str(session.parent / "broker.log")},
        metrics=metrics,
    )


def _r3_fails(run: str, night: int, nights: int, cell: tuple[str, str, str, str],
              red: bool) -> bool:
    """The red day's resilience regression: R3 on mosquitto restarts the counter from 0."""
    return red and night == nights - 1 and cell[3] == "mosquitto" and run == "r-reset"


def _resilience(spec: str, test: str, night: int, nights: int, cell: tuple[str, str, str, str],
                red: bool, session: Path) -> TestRecord:
    backend, device, profile, broker = cell
    run = next(r for item, _, r in RESILIENCE if item == spec)
    outcome, message, artifacts = "passed", "", {}
    if night < RECONNECT_FROM_NIGHT:
        outcome, message = "skipped", NO_RECONNECT
    elif spec == "R4" and backend == BOARD:
        outcome, message = "skipped", NO_ACCESS_POINT
    else:
        folder = session / f"02-{run.name}"
        artifacts = {"serial_log": str(folder / SERIAL_LOG), "tap_trace": str(folder / TAP_TRACE),
                     "broker_log": str(session.parent / "broker.log")}
        if _r3_fails(run.name, night, nights, cell, red) and spec == "R3":
            outcome, message = "failed", R3_FAILURE
    return TestRecord(
        nodeid=f"tests/hil/test_resilience.py::{test}", outcome=outcome,
        duration=4.2 if outcome != "skipped" else 0.01, spec_item=spec, backend=backend,
        device=device, profile=profile, broker=broker, transport="plain",
        device_rev="device_src@1cc9504a1d", message=message, artifacts=artifacts)


def _s12(profile: str, broker: str, session: Path) -> list[TestRecord]:
    node = "tests/hil/test_firmware.py::test_s12_firmware_generation_connects_over_tls_with_sni"
    records = [TestRecord(nodeid=f"{node}[v1.22]", outcome="passed", duration=1.2,
                          spec_item="S12", backend="emu", device="emu", profile=profile,
                          broker=broker, transport="tls")]
    for other in SKIPPED_PROFILES:
        records.append(TestRecord(
            nodeid=f"{node}[{other}]", outcome="skipped", duration=0.01, spec_item="S12",
            backend="emu", device="emu", profile=profile, broker=broker, transport="tls",
            message=f"firmware profile {other} unavailable: umqtt.simple 1.4.0 is not on the "
                    "package index; give a micropython-lib checkout with --hil-micropython-lib"))
    return records


def _write_run_folder(folder: Path, started: float, scenario: str, *, failing: bool,
                      leak: bool) -> None:
    """A serial log (local clock-of-day stamps) and a tap trace (epoch stamps)."""
    folder.mkdir(parents=True, exist_ok=True)
    topic = "hil/n/messaging"
    lines: list[tuple[float, str]] = [(0.0, "[harness] hard reset"),
                                      (0.01, "ets Jun  8 2016 00:22:57")]
    lines += [(0.05 + i, console.WIFI_WAITING) for i in range(3)]
    lines += [(3.0, console.wifi_connected("192.168.4.23")),
              (3.05, console.broker_connected("broker.test"))]
    tap: list[dict[str, object]] = [
        {"kind": "open", "conn": 1, "t": 3.01, "detail": "from 127.0.0.1:52240"},
        {"kind": "packet", "dir": "c2b", "type": "CONNECT", "t": 3.02, "fields": {
            "client_id": "hil-dut-1", "username": "emqx", "password_present": True,
            "password_length": 6, "keepalive": 30, "protocol_level": 4, "clean_session": True}},
        {"kind": "packet", "dir": "b2c", "type": "CONNACK", "t": 3.04,
         "fields": {"return_code": 0, "return_text": "accepted"}},
        {"kind": "packet", "dir": "c2b", "type": "SUBSCRIBE", "t": 3.06,
         "fields": {"packet_id": 1, "topics": [{"filter": topic, "qos": 0}]}},
        {"kind": "packet", "dir": "b2c", "type": "SUBACK", "t": 3.07,
         "fields": {"packet_id": 1, "return_codes": [0]}},
    ]
    heap = 96_000
    for n in range(6):
        t = 3.1 + n * 0.3
        payload = json.dumps({"msg": n})
        tap.append({"kind": "packet", "dir": "c2b", "type": "PUBLISH", "t": t,
                    "fields": {"topic": topic, "qos": 0, "retain": False, "payload": payload}})
        lines.append((t + 0.001, console.send(payload, topic)))
        if failing and n >= 3:
            tap.append({"kind": "fault", "conn": 1, "t": t + 0.002,
                        "detail": "drop b2c PUBLISH (injected)"})
            continue
        tap.append({"kind": "packet", "dir": "b2c", "type": "PUBLISH", "t": t + 0.004,
                    "fields": {"topic": topic, "qos": 0, "retain": False, "payload": payload}})
        lines.append((t + 0.006, console.received(payload, topic)))
        heap -= 4_800 if leak else 16
        lines.append((t + 0.01, console.memory_free(heap, n + 1)))
    lines.append((5.2, "[harness] the harness stops the program (Ctrl-C)"))
    tap.append({"kind": "close", "conn": 1, "t": 5.25, "detail": "client closed"})
    _write_logs(folder, started, lines, tap)
    broker_log = folder.parent.parent / "broker.log"
    broker_log.parent.mkdir(parents=True, exist_ok=True)
    broker_log.write_text("broker log\n")


def _write_fault_run_folder(folder: Path, started: float, run: scenarios.Scenario, *,
                            failing: bool) -> None:
    """A resilience run: three echoes, the scenario's faults (recorded the way the fault
    injector records them), the connection reset, a new connection that subscribes again and
    goes on counting — or, failing, starts again from 0."""
    folder.mkdir(parents=True, exist_ok=True)
    topic = f"hil/n/{run.name}"
    lines: list[tuple[float, str]] = [(0.0, "[harness] hard reset"),
                                      (0.1, console.wifi_connected("192.168.4.23"))]
    tap: list[dict[str, object]] = []

    def connect(conn: int, t: float) -> None:
        tap.extend([
            {"kind": "open", "conn": conn, "t": t, "detail": f"from 127.0.0.1:{52240 + conn}"},
            {"kind": "packet", "conn": conn, "dir": "c2b", "type": "CONNECT", "t": t + 0.002,
             "fields": {"client_id": "hil-dut-1", "username": "emqx", "password_present": True,
                        "password_length": 6, "keepalive": run.keepalive,
                        "protocol_level": 4, "clean_session": True}},
            {"kind": "packet", "conn": conn, "dir": "b2c", "type": "CONNACK", "t": t + 0.004,
             "fields": {"return_code": 0, "return_text": "accepted"}},
            {"kind": "packet", "conn": conn, "dir": "c2b", "type": "SUBSCRIBE", "t": t + 0.03,
             "fields": {"packet_id": 1, "topics": [{"filter": topic, "qos": 0}]}},
            {"kind": "packet", "conn": conn, "dir": "b2c", "type": "SUBACK", "t": t + 0.031,
             "fields": {"packet_id": 1, "return_codes": [0]}}])
        lines.append((t + 0.005, console.broker_connected("broker.test")))

    def publish(conn: int, t: float, n: int) -> None:
        payload = json.dumps({"msg": n})
        lines.append((t, console.send(payload, topic)))
        for way, dt in (("c2b", 0.001), ("b2c", 0.003)):
            tap.append({"kind": "packet", "conn": conn, "dir": way, "type": "PUBLISH",
                        "t": t + dt, "fields": {"topic": topic, "qos": 0, "retain": False,
                                                "payload": payload}})
        lines.append((t + 0.004, console.received(payload, topic)))

    connect(1, 0.12)
    for n in range(3):
        publish(1, 0.2 + n * 0.3, n)
    fault_at = 0.9
    for fault in run.faults:
        length = fault.duration_s if fault.duration_s is not None else 1.0
        for phase, at, why in ((START, fault_at, "echo #3 seen"),
                               (END, fault_at + length, f"after {length:g} s")):
            event = FaultEvent(started + at, at, phase, fault, why)
            tap.append({"kind": "fault", "conn": 0, "t": at, "fields": event.fields(),
                        "detail": f"{phase} {fault.describe()}: {why}"})
        fault_at += length
    tap.append({"kind": "close", "conn": 1, "t": 0.901, "detail": "reset by fault (RST)"})
    lines.append((0.95, "ERROR: [Errno 104] ECONNRESET; reconnecting in 0.2 s"))
    connect(2, fault_at + 0.2)
    for k in range(4):
        publish(2, fault_at + 0.3 + k * 0.3, k if failing else 3 + k)
    lines.append((fault_at + 1.6, "[harness] the harness stops the program (Ctrl-C)"))
    tap.append({"kind": "close", "conn": 2, "t": fault_at + 1.65, "detail": "client closed"})
    _write_logs(folder, started, lines, tap)


def _write_logs(folder: Path, started: float, lines: list[tuple[float, str]],
                tap: list[dict[str, object]]) -> None:
    """The serial log (local clock-of-day stamps) and the tap trace (epoch stamps)."""
    with (folder / SERIAL_LOG).open("w") as out:
        for offset, text in sorted(lines, key=lambda line: line[0]):
            stamp = started + offset
            out.write(time.strftime("%H:%M:%S", time.localtime(stamp))
                      + f".{int(stamp % 1 * 1000):03d} {text}\n")
    with (folder / TAP_TRACE).open("w") as out:
        for seq, record in enumerate(sorted(tap, key=lambda r: float(str(r["t"]))), 1):
            offset = float(str(record.pop("t")))
            record.update(seq=seq, time=started + offset)
            record.setdefault("conn", 1)
            out.write(json.dumps(record) + "\n")


def main(argv: list[str]) -> int:
    import tempfile

    from harness.report.cli import build_report
    from tests.unit.chromium import browser

    docs = Path(argv[0] if argv else "docs")
    with tempfile.TemporaryDirectory(prefix="report-days-") as tmp, browser() as chromium:
        for name, red in (("red", True), ("green", False)):
            root = Path(tmp) / name
            write_day(root / "history", root / "site" / "results", red=red)
            page = build_report(root / "history", root / "site" / "index.html").html
            log = chromium.open(page)
            if log.errors() or log.network_requests():
                print(f"{name}: {log.errors()} {log.network_requests()}", file=sys.stderr)
                return 1
            # The top of the page: what a reader sees first (verdict, changes, the table).
            shot = chromium.screenshot(docs / f"report-{name}-day.png", clip=(0, SHOT_HEIGHT))
            print(f"wrote {shot}")
            if red:
                top, height = chromium.evaluate(
                    "(() => { const r = document.getElementById('cells')"
                    ".getBoundingClientRect(); return [r.top + scrollY - 12, r.height + 24]; })()")
                shot = chromium.screenshot(docs / "report-matrix.png",
                                           clip=(int(top), int(height)))
                print(f"wrote {shot}")
                for name, failure in (("report-timeline.png", "S7 violated"),
                                      ("report-timeline-faults.png", "R3 violated")):
                    chromium.open(page)
                    href = chromium.evaluate(
                        "[...document.querySelectorAll('#new-failures tr')].find(r => r"
                        f".textContent.includes({json.dumps(failure)})).querySelector("
                        "'a[href$=\"timeline.html\"]').href")
                    chromium.open(Path(href.removeprefix("file://")))
                    shot = chromium.screenshot(docs / name, clip=(0, SHOT_HEIGHT))
                    print(f"wrote {shot}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
