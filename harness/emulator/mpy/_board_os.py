# The board's `os` (and `uos`): the ESP32 firmware's set (extmod/modos.c with
# ports/esp32/mpconfigport.h at the profile's tag), over the interpreter's own functions
# and the board's flash. What the unix port adds (system, getenv, putenv, unsetenv, errno,
# sep, VfsPosix, VfsLfs1) is absent, as on the chip. Installed as sys.modules["os"] at boot.
# Runs ON the MicroPython interpreter.
import _board

_real = _board.real["os"]
_profile = _board.config["profile"]

chdir = _real.chdir
getcwd = _real.getcwd
ilistdir = _real.ilistdir
listdir = _real.listdir
mkdir = _real.mkdir
remove = _real.remove
unlink = _real.remove
rename = _real.rename
rmdir = _real.rmdir
stat = _real.stat
statvfs = _real.statvfs
urandom = _real.urandom
mount = _real.mount
umount = _real.umount
VfsFat = _real.VfsFat
VfsLfs2 = _real.VfsLfs2


class _Uname:
    # os.uname(): an attrtuple (sysname, nodename, release, version, machine).
    _fields = ("sysname", "nodename", "release", "version", "machine")

    def __init__(self, values):
        self._values = values
        for field, value in zip(self._fields, values):
            setattr(self, field, value)

    def __getitem__(self, index):
        return self._values[index]

    def __len__(self):
        return 5

    def __repr__(self):
        return "(" + ", ".join("{}={!r}".format(f, v)
                               for f, v in zip(self._fields, self._values)) + ")"


def uname():
    release = _profile["version"].lstrip("v")
    return _Uname(("esp32", "esp32", release,
                   "{} on {}".format(_profile["version"], _profile["date"]),
                   _profile["machine"]))


def sync():
    pass  # the flash is written through


_dupterm = [None]


def dupterm(stream_object=None, index=0):
    # Kept, not used: the emulated UART is the only REPL terminal.
    previous = _dupterm[0]
    _dupterm[0] = stream_object
    return previous


def dupterm_notify(obj_in):
    pass
