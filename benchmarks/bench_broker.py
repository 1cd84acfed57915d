"""Broker-side benchmarks; prints medians.

    .venv/bin/python benchmarks/bench_broker.py [--quick]

- start-to-ready time of amqtt and mosquitto (with a password file and a TLS listener)
- echo round trip client -> broker -> client, direct and through the wire tap (plain and
  TLS), and the tap's overhead as a ratio
- messages per second through the tap (QoS 0, one publisher, one subscriber)
"""

from __future__ import annotations

import argparse
import ssl
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from paho.mqtt import client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from harness.broker import Broker, Tap, TapTls, TestPki, open_broker
from harness.broker.mosquitto_broker import find_mosquitto
from harness.errors import BrokerNotInstalled

USERS = {"bench": "bench-pw"}


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:8.2f} ms (n={len(samples)})"


def bench_start(backend: str, pki: TestPki, runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as workdir:
            broker = open_broker(backend, users=USERS, tls=pki.server, workdir=Path(workdir))
            began = time.perf_counter()
            broker.start()
            samples.append(time.perf_counter() - began)
            broker.stop()
    return samples


class EchoClient:
    """One paho client subscribed to its own topic; ``round_trip()`` times one echo."""

    def __init__(self, host: str, port: int, ca: Path | None, name: str) -> None:
        self.received = threading.Event()
        self.count = 0
        self.all_in = threading.Event()
        self.expect = 0
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name,
                                  protocol=mqtt.MQTTv311)  # fmt: skip
        self.client.username_pw_set(*next(iter(USERS.items())))
        if ca is not None:
            context = ssl.create_default_context(cafile=str(ca))
            self.client.tls_set_context(context)
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_args: subscribed.set()
        self.client.connect(host, port)
        self.client.loop_start()
        self.client.subscribe("bench/echo", qos=0)
        if not subscribed.wait(10):
            raise RuntimeError("no SUBACK within 10 s")

    def _on_message(self, _c: Any, _u: Any, _m: Any) -> None:
        self.count += 1
        self.received.set()
        if self.expect and self.count >= self.expect:
            self.all_in.set()

    def round_trip(self) -> float:
        self.received.clear()
        began = time.perf_counter()
        self.client.publish("bench/echo", b'{"msg": 0}')
        if not self.received.wait(10):
            raise RuntimeError("echo did not come back within 10 s")
        return time.perf_counter() - began

    def throughput(self, messages: int) -> float:
        self.count, self.expect = 0, messages
        self.all_in.clear()
        began = time.perf_counter()
        for n in range(messages):
            self.client.publish("bench/echo", f'{{"msg": {n}}}')
        if not self.all_in.wait(120):
            raise RuntimeError(f"only {self.count}/{messages} messages arrived within 120 s")
        return messages / (time.perf_counter() - began)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def bench_paths(broker: Broker, pki: TestPki, rounds: int, messages: int) -> None:
    assert broker.tls_port is not None
    plain_tap = Tap((broker.host, broker.port)).start()
    tls_tap = Tap((broker.host, broker.port), TapTls(pki.server)).start()
    paths = {
        "direct plain": (broker.port, None),
        "tap plain": (plain_tap.port, None),
        "direct TLS": (broker.tls_port, pki.ca_pem),
        "tap TLS": (tls_tap.port, pki.ca_pem),
    }
    rtt: dict[str, float] = {}
    rate: dict[str, float] = {}
    try:
        for label, (port, ca) in paths.items():
            client = EchoClient("localhost", port, ca, f"bench-{label.replace(' ', '-')}")
            try:
                for _ in range(20):  # warm-up
                    client.round_trip()
                samples = [client.round_trip() for _ in range(rounds)]
                rtt[label] = statistics.median(samples)
                print(f"  echo round trip, {label:13s}: {median_ms(samples)}")
                rate[label] = statistics.median([client.throughput(messages) for _ in range(3)])
            finally:
                client.close()
    finally:
        plain_tap.stop()
        tls_tap.stop()
    print(f"  tap overhead (round-trip ratio): plain {rtt['tap plain'] / rtt['direct plain']:.2f}x,"
          f" TLS {rtt['tap TLS'] / rtt['direct TLS']:.2f}x")  # fmt: skip
    for label in paths:
        print(f"  messages/s, {label:13s}: {rate[label]:9.0f} (median of 3 x {messages})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    starts, rounds, messages = (5, 50, 500) if args.quick else (15, 300, 3000)
    backends = ["amqtt"]
    try:
        find_mosquitto()
        backends.append("mosquitto")
    except BrokerNotInstalled as exc:
        print(f"mosquitto skipped: {exc}")
    with tempfile.TemporaryDirectory() as pki_dir:
        pki = TestPki.create(Path(pki_dir))
        print("broker start-to-ready (password file + TLS listener):")
        for backend in backends:
            print(f"  {backend:9s}: {median_ms(bench_start(backend, pki, starts))}")
        for backend in backends:
            print(f"{backend}:")
            with (
                tempfile.TemporaryDirectory() as workdir,
                open_broker(backend, users=USERS, tls=pki.server, workdir=Path(workdir)) as broker,
            ):
                bench_paths(broker, pki, rounds, messages)
    return 0


if __name__ == "__main__":
    sys.exit(main())
