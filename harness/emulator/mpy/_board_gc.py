# The board's `gc`: the interpreter's collector, with mem_free()/mem_alloc()/threshold() in
# the real ESP32's terms (32-bit bytes, the runtime's own memory left out, and the first
# heap area until the program outgrows it, as MICROPY_GC_SPLIT_HEAP_AUTO grows it on
# v1.21+). See harness/emulator/heap.py. Installed as sys.modules["gc"] at boot.
# Runs ON the MicroPython interpreter.
import _board

_real = _board.real["gc"]

collect = _real.collect
enable = _real.enable
disable = _real.disable
isenabled = _real.isenabled

_plan = _board.config.get("heap")
_grown = [False]


def mem_alloc():
    if not _plan:
        return _real.mem_alloc()
    used = max(0, _real.mem_alloc() - _board.heap_reserved)
    return int(used / _plan["scale"]) + _plan["boot_alloc"]


def mem_free():
    if not _plan:
        return _real.mem_free()
    alloc = mem_alloc()
    if alloc + 1024 > _plan["initial"]:
        _grown[0] = True  # a heap area once added stays (the program keeps it busy)
    total = _plan["total"] if _grown[0] else _plan["initial"]
    return max(0, min(total - alloc, int(_real.mem_free() / _plan["scale"])))


def threshold(amount=None):
    if amount is None:
        value = _real.threshold()
        return value if value < 0 or not _plan else int(value / _plan["scale"])
    _real.threshold(amount if amount < 0 or not _plan else int(amount * _plan["scale"]))
