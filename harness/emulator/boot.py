"""One boot of the emulated ESP32: the interpreter process, its configuration, and what
the chip prints around it (ROM lines, cooked stdout)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from harness import lifetime
from harness.emulator.mpy._board_wire import DEEPSLEEP_RESET, HARD_RESET, PWRON_RESET, WDT_RESET
from harness.emulator.profiles import Profile
from harness.emulator.scenario import LINK_CONTROL_FILE, WIFI_STATE_FILE, WifiScenario
from harness.esp32 import rom

DEFAULT_MAC = rom.DEFAULT_MAC.hex()  # as text, the form the boot config carries

# The ROM's reset line per reset cause (machine.reset_cause()).
ROM_BOOT = {
    PWRON_RESET: rom.RESET_LINE_POWERON,
    HARD_RESET: rom.RESET_LINE_SW_CPU,
    # the task watchdog panics; the panic handler restarts the CPU
    WDT_RESET: rom.RESET_LINE_SW_CPU,
    DEEPSLEEP_RESET: rom.RESET_LINE_DEEPSLEEP,
}
CRASH_LIMIT = 3
CTRL_C = 0x03


class BootProcess:
    """One boot: an interpreter process and its pipes."""

    def __init__(self, argv: list[str], ctl_read: int, ctl_write: int) -> None:
        self.proc = lifetime.spawn(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            pass_fds=(ctl_write,), start_new_session=True, bufsize=0)
        os.close(ctl_write)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin = self.proc.stdin.fileno()
        self.stdout = self.proc.stdout.fileno()
        self.ctl = ctl_read
        for fd in (self.stdin, self.stdout, self.ctl):
            os.set_blocking(fd, False)
        self.pending = bytearray()  # serial input not yet accepted by the pipe
        self.partial_event = b""  # an event split across reads of the event pipe
        self.intr_char: int | None = None  # the UART interrupt character, while armed
        self.executing = False
        self.sigint_sent = False
        self.booted = False

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                stream.close()  # type: ignore[union-attr]
        with contextlib.suppress(OSError):
            os.close(self.ctl)




def write_boot_config(path: Path, *, flash: Path, scratch: Path, module_dirs: Sequence[Path],
                      profile: Profile, mode: str, cause: int, wifi: WifiScenario,
                      hosts: Mapping[str, str], mac: str, skip_boot: bool = False,
                      rtc: Path | None = None, udp_ports: Mapping[int, int] | None = None,
                      heap: Mapping[str, float | int] | None = None) -> None:
    """What mpy/board_runtime.py reads at boot (see its header). ``skip_boot`` starts
    straight at the REPL, without boot.py/main.py."""
    path.write_text(json.dumps({
        "flash": str(flash),
        "scratch": str(scratch),
        "module_dirs": [str(d) for d in module_dirs],
        # importable whatever the flash holds, like frozen modules
        "preload": ["_board", "time", "network", "machine", "socket", "ssl", "umqtt.simple",
                    "umqtt.robust", "ntptime", "esp", "esp32"],
        "aliases": {"usocket": "socket", "umachine": "machine", "utime": "time",
                    **({"ussl": "ssl"} if profile.ussl_alias else {})},
        "banner": profile.banner,
        "mode": mode,
        "skip_boot": skip_boot,
        "reset_cause": cause,
        "wifi": wifi.to_board(),
        "link_control_file": LINK_CONTROL_FILE,  # in scratch
        "wifi_state_file": WIFI_STATE_FILE,  # in scratch
        "hosts": dict(hosts),
        "mac": mac,
        "rtc": str(rtc) if rtc else None,  # the board clock (harness/emulator/clock.py)
        "udp_ports": {str(k): v for k, v in (udp_ports or {}).items()},
        "heap": dict(heap) if heap else None,  # harness/emulator/heap.py
        "profile": {"name": profile.name, "release": list(profile.release),
                    "version": profile.version, "date": profile.date,
                    "machine": profile.board,
                    "ssl_context": profile.ssl_context,
                    "checks_cert_dates": profile.checks_cert_dates},
    }), encoding="utf-8")
