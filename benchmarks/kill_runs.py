"""Kill the HIL suite at random points and check that nothing of it is left behind.

Run: .venv/bin/python benchmarks/kill_runs.py [--rounds 30] [--seed N] [--max-delay 15]

Each round starts the HIL suite (``pytest -m hil tests/hil``, broker alternating between
amqtt and mosquitto when mosquitto is installed) with its own TMPDIR and an environment tag,
waits a random time, sends SIGINT, SIGTERM or SIGKILL (in turn), and then checks, within
10 s: no process carrying the tag is alive (board supervisor, MicroPython interpreters,
mosquitto, reapers), no listening port is held by one, and the TMPDIR holds nothing but
pytest's own base temp folder. Prints one line per round and a summary with the median
and worst time until everything was gone; exits 1 if anything was left behind.

Linux only (reads /proc).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)
TAG_VAR = "HIL_KILL_RUNS_TAG"
SETTLE_S = 10.0


def tagged(tag: str) -> dict[int, str]:
    """pid -> command line of every process whose environment carries ``tag``."""
    found = {}
    needle = f"{TAG_VAR}={tag}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(
                        b"\0", b" ").decode("utf-8", "replace")[:120]
        except OSError:
            continue
    return found


def listening_ports(pids: set[int]) -> list[int]:
    """TCP ports in LISTEN state whose socket belongs to one of ``pids``."""
    inodes: set[str] = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = str(fd.readlink())
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    ports = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A = LISTEN
                ports.append(int(fields[1].rsplit(":", 1)[1], 16))
    return sorted(ports)


def leftovers_in(tmpdir: Path) -> list[str]:
    return sorted(p.name for p in tmpdir.iterdir() if not p.name.startswith("pytest-of-"))


def mosquitto_installed() -> bool:
    from harness.broker.mosquitto_broker import mosquitto_installed as installed

    return installed()


def one_round(index: int, work: Path, rng: random.Random, max_delay: float,
              broker: str) -> tuple[bool, float, str]:
    tag = uuid.uuid4().hex
    tmpdir = work / f"tmp-{index}"
    tmpdir.mkdir()
    env = {**os.environ, "TMPDIR": str(tmpdir), TAG_VAR: tag}
    command = [sys.executable, "-m", "pytest", "-m", "hil", "tests/hil", "-q",
               "-p", "no:cacheprovider", f"--hil-results={work / f'results-{index}'}",
               f"--hil-broker={broker}"]
    sig = SIGNALS[index % len(SIGNALS)]
    delay = rng.uniform(0.2, max_delay)
    # A session of its own: a terminal's Ctrl-C must not reach it, only our signal.
    suite = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        suite.wait(timeout=delay)
        ended_by = "finished first"
    except subprocess.TimeoutExpired:
        suite.send_signal(sig)
        ended_by = f"{sig.name} after {delay:4.1f} s"
    code = suite.wait(timeout=120)
    began = time.monotonic()
    while True:
        alive = tagged(tag)
        files = leftovers_in(tmpdir)
        if (not alive and not files) or time.monotonic() - began > SETTLE_S:
            break
        time.sleep(0.05)
    settled = time.monotonic() - began
    ports = listening_ports(set(alive))
    clean = not alive and not files
    detail = "nothing" if clean else (
        f"processes {sorted(alive.values())} ports {ports} files {files}")
    for pid in alive:  # leave the machine as we found it
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    print(f"round {index + 1:2d} [{broker:9s}] {ended_by} -> exit {code:4d}; "
          f"left behind: {detail} (settled in {settled:.2f} s)", flush=True)
    return clean, settled, detail


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--max-delay", type=float, default=10.0,
                        help="latest kill, in seconds after the start (the suite takes ~20 s)")
    args = parser.parse_args()
    if not Path("/proc/self/environ").exists():
        print("kill_runs: needs Linux /proc", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    brokers = ["amqtt", "mosquitto"] if mosquitto_installed() else ["amqtt"]
    print(f"kill_runs: {args.rounds} rounds, seed {seed}, brokers {brokers}", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="hil-kill-runs-") as scratch:
        for index in range(args.rounds):
            results.append(one_round(index, Path(scratch), rng, args.max_delay,
                                     brokers[index % len(brokers)]))
    dirty = [detail for clean, _, detail in results if not clean]
    settle = [seconds for _, seconds, _ in results]
    print(f"kill_runs: {len(results) - len(dirty)}/{len(results)} rounds left nothing behind; "
          f"time until clean: median {statistics.median(settle):.2f} s, "
          f"worst {max(settle):.2f} s")
    return 1 if dirty else 0


if __name__ == "__main__":
    sys.exit(main())
