# Modules the interpreter has but the profile's firmware does not: importing one fails as
# on that board. Installed as builtins.__import__ (the unix port lets builtins be
# overridden; mp_import_name calls an overriding __import__). Runs ON MicroPython.
import builtins

# module -> the first release whose ESP32 firmware has it (checked in that tag's source)
FIRST_RELEASE = {
    "vfs": (1, 23),  # extmod/modvfs.c, new in v1.23.0
}


def install(release):
    absent = set(name for name, first in FIRST_RELEASE.items() if release < first)
    if not absent:
        return
    real_import = builtins.__import__

    def board_import(name, *args):
        if name in absent or name.split(".")[0] in absent:
            raise ImportError("no module named '%s'" % name)
        return real_import(name, *args)

    builtins.__import__ = board_import
