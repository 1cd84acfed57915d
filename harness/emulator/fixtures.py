"""pytest fixtures for emulated boards (the plugin re-exports them; tests may import them).

``emulated_board`` is one started board with an empty flash; ``board_factory`` starts as
many as a test wants (each with its own flash) and stops them all afterwards.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import lifetime
from harness.emulator.board import EmulatedBoard
from harness.emulator.umqtt_source import PackageSources
from harness.env import HarnessEnv

BoardFactory = Callable[..., EmulatedBoard]


def mpremote(port: str, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run the unmodified mpremote CLI against ``port``; the result, whatever the exit code."""
    return lifetime.run([sys.executable, "-m", "mpremote", "connect", port, *args],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                        timeout=timeout, check=False)


@pytest.fixture
def board_factory(tmp_path: Path) -> Iterator[BoardFactory]:
    """Start emulated ESP32s: ``board_factory("name", profile="v1.22", wifi=...)``; every
    board it started is stopped when the test ends."""
    boards: list[EmulatedBoard] = []
    env = HarnessEnv.from_environ()  # this edge's reading: cache, offline sdists, checkout

    def make(name: str = "board", *, start_timeout: float = 20.0, **options: Any) -> EmulatedBoard:
        options.setdefault("packages", PackageSources.from_env(env))
        options.setdefault("micropython_lib", env.micropython_lib)
        board = EmulatedBoard(tmp_path / name / "flash", **options)
        boards.append(board)
        board.start(timeout=start_timeout)
        return board

    yield make
    for board in boards:
        board.stop()


@pytest.fixture
def emulated_board(board_factory: BoardFactory) -> EmulatedBoard:
    """One started emulated ESP32 (default profile) with its own flash folder."""
    return board_factory()
