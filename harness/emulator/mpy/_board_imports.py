# Modules the interpreter has but the profile's firmware does not: importing one fails as
# on that board. Modules the firmware has but the emulator does not model: importing one
# raises NotImplementedError naming the emulator (not ImportError, which would say the
# firmware lacks it). Installed as builtins.__import__ (the unix port lets builtins be
# overridden; mp_import_name calls an overriding __import__). Runs ON MicroPython.
import builtins

import _board

# module -> the first release whose ESP32 firmware has it (checked in that tag's source)
FIRST_RELEASE = {
    "vfs": (1, 23),  # extmod/modvfs.c, new in v1.23.0
}
# The unix port's own, in no ESP32 firmware.
UNIX_ONLY = ("ffi", "termios", "jni")
# Frozen or built into the ESP32 firmware (ports/esp32/boards/manifest.py, mpconfigport.h)
# with no model in the emulator: module -> the first release that has it.
NOT_MODELLED = {
    "btree": (1, 0), "webrepl": (1, 0), "webrepl_setup": (1, 0), "neopixel": (1, 0),
    "onewire": (1, 0), "ds18x20": (1, 0), "dht": (1, 0), "apa106": (1, 0),
    "bluetooth": (1, 0), "upysh": (1, 0), "mip": (1, 0), "requests": (1, 0),
    "urequests": (1, 0), "flashbdev": (1, 0), "inisetup": (1, 0),
    "espnow": (1, 21), "aioespnow": (1, 21),
}


def install(release):
    absent = set(name for name, first in FIRST_RELEASE.items() if release < first)
    absent.update(UNIX_ONLY)
    unmodelled = set(name for name, first in NOT_MODELLED.items() if release >= first)
    real_import = builtins.__import__

    def board_import(name, *args):
        top = name.split(".")[0]
        if name in absent or top in absent:
            raise ImportError("no module named '%s'" % name)
        if top in unmodelled and (len(args) < 4 or args[3] == 0):  # level 0: absolute
            raise _board.not_modelled_error("the '%s' module" % top)
        return real_import(name, *args)

    builtins.__import__ = board_import
