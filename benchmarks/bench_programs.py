"""Guide-shaped programs vs the settings contract (issue 11), printed as medians.

* the HIL suite's wall time (S1-S12; R1-R6 apply to device_src only, so they are left
  out of both) on ``device_src/`` (settings contract) and on a guide-shaped
  program (``tests/fixtures/device_programs/guide_tls``, TLS hard-coded, its settings in
  constants), measured side by side in one run, alternating, ``--rounds`` times each. So
  that both do the same device work per scenario, the guide-shaped copy takes its publish
  interval from a constant (``PUBLISH_INTERVAL``) instead of its literal ``sleep(1)``;
  ``--as-written`` also times the fixture unchanged (1 s between messages);
* what the rewriting itself costs: parsing the program with ``ast`` once and rewriting
  its constants for every scenario of a session, in process, as a share of the suite.

Run: ``python benchmarks/bench_programs.py [--rounds 3] [--as-written]``
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.hil.programs import open_program

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO / "tests" / "fixtures" / "device_programs" / "guide_tls"
# The generation the guide-shaped example targets (it never sets the clock v1.22+ needs);
# device_src runs the same profile, so both do the same work.
PROFILE = "v1.21"
SCENARIOS_PER_SESSION = 8  # the runs tests/hil makes on one profile
RUN = {"server": "broker.test", "port": 40123, "client_id": "hil-dut-1", "user": "emqx",
       "password": "public", "topic": "hil/bench/messaging", "wifi_ssid": "hil-ap",
       "wifi_password": "hil-wifi-secret", "keepalive": 30, "publish_interval": 0.3,
       "tls": True, "sni": True}


def guide_with_interval_constant(destination: Path) -> Path:
    shutil.copytree(GUIDE, destination)
    main = destination / "main.py"
    text = main.read_text(encoding="utf-8")
    text = text.replace('CA_CERT = "emqxsl-ca.crt"\n',
                        'CA_CERT = "emqxsl-ca.crt"\nPUBLISH_INTERVAL = 1\n', 1)
    text = text.replace("        time.sleep(1)\n", "        time.sleep(PUBLISH_INTERVAL)\n", 1)
    main.write_text(text, encoding="utf-8")
    # Its manifest fixes the interval at 1 s; this copy makes it a setting instead.
    manifest = destination / "hil.toml"
    manifest.write_text(manifest.read_text(encoding="utf-8").replace(
        "publish_interval = 1 ", "# publish_interval: PUBLISH_INTERVAL "), encoding="utf-8")
    return destination


def suite_seconds(program: Path, results: Path) -> float:
    started = time.perf_counter()
    # R1-R6 apply only to a program that reconnects (device_src): both run the S items.
    done = subprocess.run([sys.executable, "-m", "pytest", "tests/hil", "-m", "hil", "-q",
                           "-k", "not test_r",
                           "-p", "no:cacheprovider", "--hil-device", "emu",
                           "--hil-profile", PROFILE, "--hil-device-src", str(program),
                           f"--hil-results={results}"],
                          cwd=REPO, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"the HIL suite on {program} failed (exit {done.returncode}):\n"
                         + done.stdout[-3000:])
    return elapsed


def rewrite_seconds(program_dir: Path, repeat: int = 20) -> float:
    """One session's rewriting: parse once, rewrite for every scenario."""
    ca = b"-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n"
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        program = open_program(program_dir)
        for index in range(SCENARIOS_PER_SESSION):
            program.run_files({**RUN, "topic": f"hil/bench/{index}"}, ca)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--as-written", action="store_true",
                        help="also time the fixture unchanged (1 s between messages)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-programs-") as tmp:
        base = Path(tmp)
        guide = guide_with_interval_constant(base / "guide_interval")
        programs = {"device_src (settings contract)": REPO / "device_src",
                    "guide-shaped (constants rewritten)": guide}
        if args.as_written:
            programs["guide-shaped as written (sleep(1))"] = GUIDE
        times: dict[str, list[float]] = {name: [] for name in programs}
        for round_index in range(args.rounds):
            for name, path in programs.items():
                times[name].append(suite_seconds(path, base / f"results-{round_index}"))
        medians = {name: statistics.median(values) for name, values in times.items()}
        contract = medians["device_src (settings contract)"]
        for name, median in medians.items():
            print(f"HIL suite on {name}: median {median:.2f} s over {args.rounds} "
                  f"(min {min(times[name]):.2f}, max {max(times[name]):.2f}); "
                  f"ratio to device_src {median / contract:.3f}")
        rewrite = rewrite_seconds(guide)
        guided = medians["guide-shaped (constants rewritten)"]
        print(f"rewriting one session (ast parse + {SCENARIOS_PER_SESSION} rewrites): median "
              f"{rewrite * 1000:.2f} ms = {rewrite / guided * 100:.3f} % of the guide-shaped "
              "suite (budget: 5 %)")


if __name__ == "__main__":
    main()
