"""A guide-shaped program (tests/fixtures/device_programs/guide_tls: constants at the top,
TLS hard-coded as in a broker vendor's example, the CA file opened by name, Wi-Fi in
wifi.py, time.sleep(1)) runs through --hil-device-src as written: it passes every check
that applies and every other one is skipped with the reason, never failed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.mutants import REPO, STOP_GRACE_S, SUITE_TIMEOUT_S, run_hil_suite

# A whole HIL suite per mutant runs inside the first test that needs it.
pytestmark = [pytest.mark.unit, pytest.mark.timeout(SUITE_TIMEOUT_S + STOP_GRACE_S + 60)]

GUIDE_TLS = REPO / "tests" / "fixtures" / "device_programs" / "guide_tls"
TARGETED_PROFILE = "v1.21"


@pytest.mark.hil_duration(17)
def test_guide_shaped_tls_program_passes_what_applies_and_skips_the_rest(
        tmp_path: Path) -> None:
    # On the generation its manifest targets (the guide's: v1.20-v1.21, no date checks).
    result = run_hil_suite(GUIDE_TLS, tmp_path / "results", profile=TARGETED_PROFILE)
    assert not result.failed(), result.summary()
    passed = {o.item for o in result.outcomes if o.outcome == "passed"}
    # S1-S12 hold (S12 on the targeted generations); S13 does not apply where no
    # certificate date is checked.
    assert {f"S{n}" for n in range(1, 13)} <= passed, result.summary()
    skipped = [o for o in result.outcomes if o.outcome == "skipped"]
    for outcome in skipped:
        assert "not applicable" in outcome.message or "unavailable" in outcome.message, (
            f"{outcome.name} skipped without a reason:\n{outcome.message}")
    no_sni = next(o for o in result.outcomes
                  if o.name == "test_s10_device_without_sni_rejected_and_diagnosed")
    assert no_sni.outcome == "skipped" and "always uses sni=True" in no_sni.message
    s12 = {o.name.rpartition("[")[2].rstrip("]"): o for o in result.outcomes
           if o.item == "S12"}
    for profile, outcome in s12.items():
        if profile in ("v1.20", "v1.21"):
            assert outcome.outcome == "passed", outcome.message
        else:
            assert "targets firmware v1.20-v1.21" in outcome.message, outcome.message
