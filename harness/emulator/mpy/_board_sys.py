# The board's `sys`: the interpreter's own, plus the board's serial stdio (_stdio.install).
# Installed as sys.modules["sys"] at boot. Runs ON the MicroPython interpreter.
import sys as _real

for _name in dir(_real):
    if not _name.startswith("__"):
        globals()[_name] = getattr(_real, _name)
