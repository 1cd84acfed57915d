"""Firmware profiles: which MicroPython release the emulated ESP32 pretends to run.

A profile picks the banner, the module set (the ``ussl`` alias exists up to v1.22) and the
umqtt.simple generation frozen into that release's ESP32 firmware
(ports/esp32/boards/manifest.py upstream; see docs in the shared notes).
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import UnknownProfile


@dataclass(frozen=True)
class Profile:
    name: str  # "v1.22"
    version: str  # the release the banner names, "v1.22.2"
    date: str  # its build date in the banner
    umqtt_version: str  # umqtt.simple frozen into that firmware
    ussl_alias: bool  # ``import ussl`` works
    board: str = "Generic ESP32 module with ESP32"

    @property
    def banner(self) -> str:
        return f"MicroPython {self.version} on {self.date}; {self.board}"

    @property
    def umqtt_from_pypi(self) -> bool:
        """Only 1.3.4 is on the package registry; later ones come from micropython-lib."""
        return self.umqtt_version == "1.3.4"


PROFILES: dict[str, Profile] = {
    profile.name: profile
    for profile in (
        Profile("v1.22", "v1.22.2", "2024-02-22", "1.3.4", ussl_alias=True),
        Profile("v1.23", "v1.23.0", "2024-06-02", "1.4.0", ussl_alias=False),
        Profile("v1.24", "v1.24.1", "2024-11-29", "1.4.0", ussl_alias=False),
        Profile("v1.25", "v1.25.0", "2025-04-15", "1.6.0", ussl_alias=False),
    )
}

DEFAULT_PROFILE = "v1.22"


def list_profiles() -> list[str]:
    return list(PROFILES)


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(PROFILES)
        raise UnknownProfile(
            f"unknown firmware profile {name!r}; known profiles: {known}") from None
