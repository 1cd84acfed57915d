"""pytest plugin (registered through the ``pytest11`` entry point).

Fixtures stay thin: they read options, build the plain harness objects, yield them
and clean up. The work happens in ``harness.device``, ``harness.broker`` and friends.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hil", "ESP32 MicroPython MQTT hardware-in-the-loop")
    group.addoption(
        "--hil-device",
        default=None,
        help="device under test: emu, a serial port path, auto, or rfc2217://host:port "
        "(ini hil_device, env HIL_DEVICE; default emu)",
    )
    parser.addini("hil_device", "default for --hil-device", default="emu")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "hil: a hardware-in-the-loop spec check (S1-S12)")
    config.addinivalue_line("markers", "unit: a fast test of the harness's own parts")
