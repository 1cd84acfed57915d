"""A pool of real boards shared by every session on this machine.

Each board (a port path or URL) has a lock file; a session holds an exclusive ``flock`` on
it for as long as it uses the board, so two pytest sessions, or two pytest-xdist workers,
never drive the same board. The kernel drops the lock when the holder dies, however it
dies, so a killed session never leaves a board locked. The file is removed by its last
holder (the inode check in :meth:`BoardLock.try_acquire` makes that race-free).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness import env as hil_env
from harness.deadline import Deadline
from harness.errors import PortBusy

ENV_LOCK_DIR = hil_env.LOCK_DIR
ENV_BOARD_WAIT = hil_env.BOARD_WAIT
BOARD_WAIT_S = 60.0  # how long a session waits for a board another session holds
_RETRY_S = 0.5


def lock_dir(configured: Path | None = None) -> Path:
    """Where the lock files live: shared by every user of this machine's boards
    (``configured``: HIL_LOCK_DIR, read at the edge)."""
    return configured or Path(tempfile.gettempdir()) / "esp32-mqtt-hil-locks"


class BoardLock:
    """An exclusive, process-lifetime claim on one board."""

    def __init__(self, board: str, directory: Path | None = None) -> None:
        self.board = board
        key = os.path.realpath(board) if board.startswith("/") else board
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", key).strip("_") or "board"
        self.path = (directory or lock_dir()) / f"{name}.lock"
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; never blocks."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            # The previous holder may have unlinked the file between our open and flock:
            # then we locked an orphan inode; start over on the current file.
            try:
                same = self.path.stat().st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} ({_process_name()})\n".encode())
        self._fd = fd
        return True

    def holder(self) -> str:
        """Who holds the lock, as written by the holder ("pid 123 (pytest)")."""
        try:
            return self.path.read_text(encoding="utf-8").strip() or "another session"
        except OSError:
            return "another session"

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # while still holding it: nobody can be mid-acquire on it
        os.close(self._fd)
        self._fd = None


@dataclass(frozen=True)
class Claim:
    board: str
    lock: BoardLock


def claim_board(boards: Sequence[str], *, worker_index: int = 0, worker_count: int = 1,
                wait_s: float | None = None, directory: Path | None = None) -> Claim:
    """Lock one of ``boards`` for this session.

    Worker ``i`` of ``n`` tries board ``i`` first, so workers spread without contending.
    Fewer boards than workers is a user error (one line naming both counts); boards held
    by other sessions are waited for, up to ``wait_s``.
    """
    if worker_count > len(boards) and worker_index >= len(boards):
        listed = ", ".join(boards)
        raise PortBusy(f"{worker_count} pytest-xdist workers but only {len(boards)} "
                       f"board(s) ({listed}); run with -n {len(boards)} or attach/list more "
                       "boards (--hil-device auto, or PORT1,PORT2,...)")
    order = [boards[(worker_index + k) % len(boards)] for k in range(len(boards))]
    locks = [BoardLock(board, directory) for board in order]
    deadline = Deadline(BOARD_WAIT_S if wait_s is None else wait_s,
                        f"a free board among {', '.join(boards)}")
    announced = False
    while True:
        for lock in locks:
            if lock.try_acquire():
                return Claim(lock.board, lock)
        if deadline.expired:
            held = "; ".join(f"{lock.board} held by {lock.holder()}" for lock in locks)
            raise PortBusy(f"every board is in use by another session ({held}) after "
                           f"waiting {deadline.seconds:g} s; wait for it to finish, or set "
                           f"{ENV_BOARD_WAIT} to wait longer")
        if not announced:
            _progress(f"every board is in use ({', '.join(lock.holder() for lock in locks)});"
                      f" waiting up to {deadline.seconds:g} s for one to be free")
            announced = True
        time.sleep(min(_RETRY_S, deadline.remaining()))


def _process_name() -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{os.getpid()}/comm").read_text(encoding="utf-8").strip()
    return Path(sys.argv[0]).name if sys.argv else "?"


def _progress(message: str) -> None:
    if sys.__stderr__ is not None:
        sys.__stderr__.write(f"[hil] {message}\n")
