"""What the wire tap does to the byte stream while faults are active (loop thread only).

:class:`FaultState` holds the tap's active faults; each direction of each connection
forwards through an :class:`Outlet`, which writes straight through while nothing applies
(the common case costs one check per chunk) and otherwise queues chunks with a due time:
latency and jitter (order kept), a bandwidth budget, slices, and a stall that holds
everything until it ends. A black hole (``timeout``) is decided before the outlet: the
chunk is recorded, marked swallowed, and never forwarded.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import socket
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.broker.mqtt_codec import DecodeResult, MqttPacket
from harness.faults.model import Fault, FaultKind

# Kinds that shape the bytes an outlet delivers (the others act on connections).
_SHAPING = frozenset({FaultKind.LATENCY, FaultKind.BANDWIDTH, FaultKind.STALL,
                      FaultKind.SLICER})


def reset_connection(writer: asyncio.StreamWriter | None) -> None:
    """Close with an RST (SO_LINGER 0), as a peer that resets the connection does."""
    if writer is None:
        return
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@dataclass
class ActiveFault:
    fault: Fault
    # Connections the fault holds (a black hole without new_connections takes only those
    # live when it began); None = every connection, including later ones.
    connections: frozenset[int] | None

    def applies(self, conn_id: int, upstream: bool) -> bool:
        if self.connections is not None and conn_id not in self.connections:
            return False
        return self.fault.direction.covers(upstream)


class FaultState:
    """The tap's active faults. ``changed`` wakes outlets waiting for a stall to end."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self.active: dict[int, ActiveFault] = {}
        self._ids = itertools.count(1)
        self.rng = rng or random.Random()
        self._changed = asyncio.Event()
        self.shaping = False  # any byte-shaping fault active: outlets take the slow path

    def add(self, fault: Fault, live_connections: frozenset[int]) -> int:
        scope = live_connections if (fault.kind is FaultKind.TIMEOUT
                                     and not fault.new_connections) else None
        handle = next(self._ids)
        self.active[handle] = ActiveFault(fault, scope)
        self._notify()
        return handle

    def remove(self, handle: int) -> Fault | None:
        found = self.active.pop(handle, None)
        self._notify()
        return found.fault if found else None

    def _notify(self) -> None:
        self.shaping = any(a.fault.kind in _SHAPING for a in self.active.values())
        old, self._changed = self._changed, asyncio.Event()
        old.set()

    async def wait_changed(self) -> None:
        await self._changed.wait()

    def has(self, kind: FaultKind) -> bool:
        return any(a.fault.kind is kind for a in self.active.values())

    def applying(self, kind: FaultKind, conn_id: int, upstream: bool) -> list[Fault]:
        return [a.fault for a in self.active.values()
                if a.fault.kind is kind and a.applies(conn_id, upstream)]


def without_packets(data: bytes, results: list[DecodeResult], held_before: int,
                    drop: Callable[[MqttPacket], bool]) -> tuple[bytes, int]:
    """``data`` with the whole packets ``drop`` picks cut out, and how many were cut.

    ``results`` are what the decoder made of (its ``held_before`` leftover bytes + data);
    a packet that began in an earlier chunk was already forwarded and stays."""
    pos = -held_before
    kept = bytearray()
    last = 0
    cut = 0
    for result in results:
        end = pos + result.size
        if not isinstance(result, MqttPacket):
            break  # after a framing error sizes mean nothing: keep the rest as it is
        if pos >= 0 and drop(result):
            kept += data[last:pos]
            last = end
            cut += 1
        pos = end
    if not cut:
        return data, 0
    kept += data[last:]
    return bytes(kept), cut


class Outlet:
    """One direction of one connection, from the tap to ``sink``."""

    def __init__(self, state: FaultState, sink: Any, conn_id: int, upstream: bool) -> None:
        self._state = state
        self._sink = sink
        self._conn = conn_id
        self._upstream = upstream
        self._queue: deque[tuple[float, bytes]] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_due = 0.0
        self._budget_until = 0.0  # bandwidth: when the bytes already sent are paid for

    def write(self, data: bytes) -> None:
        if not self._state.shaping and not self._queue:
            self._sink.write(data)
            return
        self._queue.append((self._due(), data))
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._deliver())
        self._wake.set()

    async def drain(self) -> None:
        if not self._queue:
            await self._sink.drain()

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def _faults(self, kind: FaultKind) -> list[Fault]:
        return self._state.applying(kind, self._conn, self._upstream)

    def _due(self) -> float:
        now = time.monotonic()
        due = now
        for fault in self._faults(FaultKind.LATENCY):
            jitter = self._state.rng.uniform(-fault.jitter_s, fault.jitter_s)
            due += max(0.0, fault.latency_s + jitter)
        # Jitter never reorders a byte stream (TCP would not): never before the previous.
        due = max(due, self._last_due)
        self._last_due = due
        return due

    async def _deliver(self) -> None:
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            due, data = self._queue[0]
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            while self._faults(FaultKind.STALL):
                await self._state.wait_changed()
            self._queue.popleft()
            await self._send(data)

    async def _send(self, data: bytes) -> None:
        slicers = self._faults(FaultKind.SLICER)
        size = min(f.slice_bytes for f in slicers) if slicers else len(data)
        pause = max(f.slice_delay_s for f in slicers) if slicers else 0.0
        for start in range(0, len(data), size):
            piece = data[start:start + size]
            rates = [f.rate_bps for f in self._faults(FaultKind.BANDWIDTH)]
            if rates:
                begin = max(time.monotonic(), self._budget_until)
                self._budget_until = begin + len(piece) / min(rates)
                await asyncio.sleep(max(0.0, self._budget_until - time.monotonic()))
            self._sink.write(piece)
            await self._sink.drain()
            if pause and start + size < len(data):
                await asyncio.sleep(pause)
