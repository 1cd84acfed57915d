"""Firmware profiles: which MicroPython release the emulated ESP32 pretends to run.

A profile picks the banner, the module set (the ``ussl`` alias exists up to v1.22), the
umqtt.simple generation frozen into that release's ESP32 firmware
(``ports/esp32/boards/manifest.py`` at that release's tag upstream), and what the
firmware's mbedTLS does with certificate dates: v1.22.0 turned on
``CONFIG_MBEDTLS_HAVE_TIME_DATE`` (commit 30b0ee34d3, "esp32: Enable mbedtls cert time
validation"); v1.20 and v1.21 check no dates at all.
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
    # mbedTLS checks certificate dates against the board's RTC (v1.22.0 and later)
    checks_cert_dates: bool = True
    # ``ssl.SSLContext`` exists (v1.21 and later; v1.20 has only ussl.wrap_socket)
    ssl_context: bool = True
    # The Python heap of a generic ESP32 (no PSRAM), 32-bit KiB: v1.20 allocates one fixed
    # block (min(largest free, half the IDF heap), ~110 KiB); v1.21 starts with 64 KiB,
    # v1.22+ with 56 KiB, and grow it from the IDF heap when full (MICROPY_GC_SPLIT_HEAP_AUTO,
    # ports/esp32/main.c) to about the same total.
    heap_kib: int = 110
    initial_heap_kib: int = 56

    @property
    def release(self) -> tuple[int, int, int]:
        """(1, 22, 2) for v1.22.2: ``sys.implementation.version`` on the board."""
        major, minor, micro = (int(part) for part in self.version.lstrip("v").split("."))
        return major, minor, micro

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
        Profile("v1.20", "v1.20.0", "2023-04-26", "1.3.4", ussl_alias=True,
                board="ESP32 module with ESP32", checks_cert_dates=False, ssl_context=False,
                initial_heap_kib=110),
        Profile("v1.21", "v1.21.0", "2023-10-05", "1.3.4", ussl_alias=True,
                checks_cert_dates=False, initial_heap_kib=64),
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
