"""The soak run (``pytest -m soak``; not part of the default run): the device publishes
for a long stretch through the tap over TLS, and every message must arrive and come back
in order, the harness's cost per message must stay flat, and the device's free heap must
not shrink. ``--hil-soak-minutes 60`` makes it an hour (the nightly's ``--soak-minutes``)."""

import pytest

from harness.checks import messaging
from harness.hil.rig import RunResult
from harness.pytest_plugin import assert_spec

pytestmark = pytest.mark.soak

# The later half of the run against the earlier: a wait that rescans the log, or any
# other per-message cost that grows with the run, reads about 3x; flat reads 1 give or
# take the machine's load.
MAX_COST_GROWTH = 1.5
# gc.collect() runs every loop, so free heap should stay level; a leak of a byte per
# message is ~36 KB an hour, which an ESP32 does not have to spare.
MAX_HEAP_LOSS_BYTES_PER_MESSAGE = 1.0


def test_soak_every_message_arrives_in_order(soak_run: RunResult) -> None:
    evidence = soak_run.evidence
    assert not evidence.notes, evidence.notes
    assert_spec(messaging.check_publish(evidence))
    assert_spec(messaging.check_echo(evidence))
    if not soak_run.scenario.run_for_s:
        assert len(evidence.device_publishes()) >= soak_run.scenario.publishes


def test_soak_harness_cost_per_message_stays_flat(soak_run: RunResult) -> None:
    metrics = soak_run.metrics
    if soak_run.scenario.publishes < 20:
        pytest.skip("too few messages to compare the run's halves")
    assert metrics["harness_cpu_growth"] < MAX_COST_GROWTH, (
        f"harness CPU per message grew {metrics['harness_cpu_growth']:.2f}x from the first "
        f"half of the run to the second ({metrics['harness_cpu_ms_per_message']:.2f} ms "
        "per message overall)")


def test_soak_device_heap_does_not_shrink(soak_run: RunResult) -> None:
    metrics = soak_run.metrics
    if "heap_loss_bytes_per_message" not in metrics:
        pytest.skip("the device program printed fewer than two 'Memory free' lines "
                    "(mem_log_every is a device_src setting)")
    assert metrics["heap_loss_bytes_per_message"] <= MAX_HEAP_LOSS_BYTES_PER_MESSAGE, (
        f"free heap falls by {metrics['heap_loss_bytes_per_message']:.2f} bytes per message "
        f"(last reading {metrics.get('heap_free_bytes', 0):.0f} bytes)")
