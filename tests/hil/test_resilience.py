"""R1–R6: a device program that reconnects, under faults injected on cue where emulated
and real boards share a path (the tap, the broker, the emulated access point). Each fault
is an event in the evidence next to the packets; the checks measure against it.

A program whose hil.toml does not say ``reconnect = true`` gets these reported as not
applicable (skipped with the reason), never failed. R4 needs the emulated access point,
so it is not applicable on a real board."""

import pytest

from harness.checks import resilience
from harness.hil import scenario
from harness.pytest_plugin import HilRunner, assert_spec

pytestmark = pytest.mark.hil


def test_r1_silent_loss_detected_within_keepalive_bound(hil_run: HilRunner) -> None:
    assert_spec(resilience.check_silent_loss_detected(hil_run(scenario.R_BLACK_HOLE).evidence))


def test_r2_reconnect_backoff_grows_capped_jittered(hil_run: HilRunner) -> None:
    assert_spec(resilience.check_backoff(hil_run(scenario.R_UNAVAILABLE_AT_BOOT).evidence))


def test_r3_resubscribes_and_resumes_counter(hil_run: HilRunner) -> None:
    assert_spec(resilience.check_resume(hil_run(scenario.R_RESET).evidence))


def test_r4_rejoins_dropped_wifi(hil_run: HilRunner) -> None:
    assert_spec(resilience.check_wifi_rejoined(hil_run(scenario.R_WIFI_DROP).evidence))


def test_r5_broker_unavailable_at_boot_retried(hil_run: HilRunner) -> None:
    evidence = hil_run(scenario.R_UNAVAILABLE_AT_BOOT).evidence
    assert_spec(resilience.check_unavailable_at_boot(evidence))


def test_r6_publish_and_echo_hold_under_latency(hil_run: HilRunner) -> None:
    assert_spec(resilience.check_latency(hil_run(scenario.R_LATENCY).evidence))
