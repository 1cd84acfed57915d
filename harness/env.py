"""The environment variables that configure the layers below the edges, named once and
read once.

An edge (the pytest plugin at configure time, ``python -m harness ...``, the ``./hil``
script, a benchmark) calls :meth:`HarnessEnv.from_environ` and passes the typed values
down (``TargetOptions.env`` -> ``BoardRequest.env`` -> the backend, the emulated board's
package sources); library modules never read ``os.environ``. Variables that only stand in
for an edge's own options live with those options: each pytest option's (``HIL_DEVICE``,
...) in ``pytest_plugin.OPTIONS``, the history's in ``report.pytest_history``, the broker
command's password in ``broker.cli``. The README lists them all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import ConfigError

CACHE_DIR = "HIL_CACHE_DIR"  # where fetched packages (umqtt sdists) are cached
UMQTT_SDIST = "HIL_UMQTT_SDIST"  # offline: the umqtt.simple 1.3.4 sdist on disk
UMQTT_ROBUST_SDIST = "HIL_UMQTT_ROBUST_SDIST"  # offline: the umqtt.robust 1.0 sdist
MICROPYTHON_LIB = "HIL_MICROPYTHON_LIB"  # a micropython-lib checkout (profiles v1.23+)
LOCK_DIR = "HIL_LOCK_DIR"  # where real boards' lock files live
BOARD_WAIT = "HIL_BOARD_WAIT"  # seconds to wait for a board another session holds
WIFI_SSID = "HIL_WIFI_SSID"  # the network a real board joins (never given on argv)
WIFI_PASSWORD = "HIL_WIFI_PASSWORD"
LG_COORDINATOR = "LG_COORDINATOR"  # labgrid's own names, read the way labgrid reads them
LG_PLACE = "LG_PLACE"


@dataclass(frozen=True)
class HarnessEnv:
    """What the environment configures; None where it says nothing (the default applies)."""

    cache_dir: Path | None = None
    umqtt_sdist: Path | None = None
    umqtt_robust_sdist: Path | None = None
    micropython_lib: Path | None = None
    lock_dir: Path | None = None
    board_wait_s: float | None = None
    wifi_ssid: str | None = None
    wifi_password: str | None = field(default=None, repr=False)
    labgrid_coordinator: str | None = None
    labgrid_place: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> HarnessEnv:
        """Read the variables (of ``os.environ`` unless given); a malformed value is one
        :class:`ConfigError` line naming the variable."""
        env = os.environ if environ is None else environ

        def text(name: str) -> str | None:
            return env.get(name) or None

        def path(name: str) -> Path | None:
            value = text(name)
            return Path(value).expanduser() if value else None

        wait = text(BOARD_WAIT)
        try:
            board_wait_s = float(wait) if wait is not None else None
        except ValueError:
            raise ConfigError(f"{BOARD_WAIT}={wait!r} is not a number of seconds; give e.g. "
                              f"{BOARD_WAIT}=120, or unset it (default 60)") from None
        return cls(cache_dir=path(CACHE_DIR), umqtt_sdist=path(UMQTT_SDIST),
                   umqtt_robust_sdist=path(UMQTT_ROBUST_SDIST),
                   micropython_lib=path(MICROPYTHON_LIB), lock_dir=path(LOCK_DIR),
                   board_wait_s=board_wait_s, wifi_ssid=text(WIFI_SSID),
                   wifi_password=env.get(WIFI_PASSWORD),
                   labgrid_coordinator=text(LG_COORDINATOR), labgrid_place=text(LG_PLACE))
