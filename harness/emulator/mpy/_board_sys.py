# The board's `sys` (and `usys`): the interpreter's own, plus the board's serial stdio
# (_stdio.install), and what the firmware reports about itself (py/modsys.c at the
# profile's tag): platform "esp32", the firmware's version in sys.implementation and
# sys.version. Installed as sys.modules["sys"] at boot. Runs ON the MicroPython interpreter.
import sys as _real

import _board

for _name in dir(_real):
    if not _name.startswith("__"):
        globals()[_name] = getattr(_real, _name)

_profile = _board.config["profile"]
_release = tuple(_profile["release"])
_MPY_XTENSAWIN = 10  # MP_NATIVE_ARCH_XTENSAWIN (py/persistentcode.h)
_MPY_SUB_VERSION = 1 if _release < (1, 22) else 2 if _release < (1, 23) else 3


class _Implementation:
    # sys.implementation: an attrtuple on the chip (name, version, _machine, _mpy).
    def __init__(self):
        # v1.22 added the release level ('' or 'preview') to the version tuple.
        self.name = "micropython"
        self.version = _release + (("",) if _release >= (1, 22) else ())
        self._machine = _profile["machine"]
        self._mpy = 6 | ((_MPY_SUB_VERSION | _MPY_XTENSAWIN << 2) << 8)

    def __getitem__(self, index):
        return (self.name, self.version, self._machine, self._mpy)[index]

    def __len__(self):
        return 4

    def __repr__(self):
        return "(name={!r}, version={!r}, _machine={!r}, _mpy={})".format(
            self.name, self.version, self._machine, self._mpy)


platform = "esp32"
implementation = _Implementation()
version = "3.4.0; MicroPython {} on {}".format(_profile["version"], _profile["date"])
version_info = (3, 4, 0)
