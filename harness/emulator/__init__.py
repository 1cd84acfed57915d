"""The emulated ESP32: a real MicroPython interpreter behind a serial line.

>>> with EmulatedBoard(Path("flash")) as board:      # doctest: +SKIP
...     subprocess.run(["mpremote", "connect", board.port, "exec", "print(1)"])
"""

from harness.emulator.board import DEFAULT_HEAP_KIB, EmulatedBoard
from harness.emulator.profiles import PROFILES, Profile, list_profiles
from harness.emulator.scenario import AccessPoint, WifiScenario

__all__ = [
    "DEFAULT_HEAP_KIB",
    "PROFILES",
    "AccessPoint",
    "EmulatedBoard",
    "Profile",
    "WifiScenario",
    "list_profiles",
]
