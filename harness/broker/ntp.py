"""An SNTP server (RFC 4330) on the broker host, so a device can set its clock in a test.

Since firmware v1.22 an ESP32 checks certificate dates against its RTC, which starts at
2000-01-01, so a device must set its clock (``ntptime.settime()``) before TLS. The rig runs
this server next to the broker; what it answers is a scenario option (:class:`NtpMode`):
the right time, nothing at all (a server that is down), or a wrong time.

Real ``ntptime`` asks UDP port 123. The emulated board's network delivers its port-123
datagrams to this server's port (``EmulatedBoard.set_udp_ports``); for a real board, run
the harness where it may bind port 123 on the broker host (``port=123``, root or
CAP_NET_BIND_SERVICE) and give the board that host as its NTP server.
"""

from __future__ import annotations

import contextlib
import enum
import os
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass

from harness.errors import BrokerError

NTP_PORT = 123
NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 (NTP era 0) to 1970-01-01
# "Wrong time" answers two years ahead: past the end of a one-year server certificate (as
# real brokers' are, and the test PKI's), and well inside NTP era 0 (before 2036).
WRONG_TIME_OFFSET_S = 2 * 365 * 86400
_PACKET = struct.Struct("!BBbbII4sQQQQ")
_CLIENT, _SERVER = 3, 4


class NtpMode(enum.Enum):
    UP = "up"  # answers with this machine's clock
    DOWN = "down"  # receives and never answers (the client's timeout runs out)
    WRONG = "wrong"  # answers, WRONG_TIME_OFFSET_S ahead of the real time


@dataclass(frozen=True)
class NtpRequest:
    time: float  # when it arrived (time.time())
    peer: tuple[str, int]
    answered: bool


def _ntp_timestamp(unix: float) -> int:
    seconds = int(unix) + NTP_EPOCH_OFFSET
    fraction = int((unix % 1) * (1 << 32))
    return ((seconds & 0xFFFFFFFF) << 32) | fraction


class NtpServer:
    """``with NtpServer("127.0.0.1") as ntp: ... ntp.port``; ``ntp.mode`` may change any time."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *,
                 mode: NtpMode = NtpMode.UP) -> None:
        self.host = host
        self.mode = mode
        self._requested_port = port
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop_r, self._stop_w = -1, -1
        self._requests: list[NtpRequest] = []
        self._lock = threading.Lock()
        self.port = port

    def start(self) -> NtpServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((self.host, self._requested_port))
        except OSError as exc:
            sock.close()
            hint = (" (port 123 needs root or CAP_NET_BIND_SERVICE)"
                    if self._requested_port and self._requested_port < 1024 else "")
            raise BrokerError(f"the NTP server cannot listen on {self.host}:"
                              f"{self._requested_port}: {exc.strerror}{hint}") from exc
        self._sock = sock
        self.port = sock.getsockname()[1]
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._serve, name=f"ntp {self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            with contextlib.suppress(OSError):
                os.write(self._stop_w, b"!")
            self._thread.join(5.0)
            self._thread = None
        for fd in (self._stop_r, self._stop_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._stop_r = self._stop_w = -1
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> NtpServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def requests(self, since: float = 0.0) -> list[NtpRequest]:
        """Client requests that arrived at or after ``since`` (time.time())."""
        with self._lock:
            return [r for r in self._requests if r.time >= since]

    def now(self) -> float:
        """The time this server gives out now (time.time() scale)."""
        return time.time() + (WRONG_TIME_OFFSET_S if self.mode is NtpMode.WRONG else 0)

    def _serve(self) -> None:
        sock = self._sock
        assert sock is not None
        while True:
            ready, _, _ = select.select([sock.fileno(), self._stop_r], [], [])
            if self._stop_r in ready:
                return
            try:
                data, peer = sock.recvfrom(512)
            except OSError:
                continue
            arrived = time.time()
            reply = self._answer(data, arrived)
            with self._lock:
                self._requests.append(NtpRequest(arrived, peer, reply is not None))
            if reply is not None:
                with contextlib.suppress(OSError):
                    sock.sendto(reply, peer)

    def _answer(self, data: bytes, arrived: float) -> bytes | None:
        if len(data) < _PACKET.size or self.mode is NtpMode.DOWN:
            return None
        first = data[0]
        version, mode = (first >> 3) & 7, first & 7
        if mode != _CLIENT or version not in (1, 2, 3, 4):
            return None
        client_transmit = _PACKET.unpack_from(data)[10]
        shift = self.now() - time.time()
        received = _ntp_timestamp(arrived + shift)
        # leap 0, the client's version, server mode; stratum 1 with reference "LOCL".
        return _PACKET.pack((version << 3) | _SERVER, 1, 6, -20, 0, 0, b"LOCL",
                            _ntp_timestamp(arrived + shift - 1), client_transmit, received,
                            _ntp_timestamp(time.time() + shift))
