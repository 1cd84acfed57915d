# Board state shared by the emulated board modules (network, machine, socket, ssl).
# Runs ON the MicroPython unix interpreter. board_runtime fills it in before boot.py;
# device code has no reason to import it (a real ESP32 has no such module).

config = {}  # the boot configuration written by the host-side supervisor
real = {}  # the unix port's own 'socket', 'machine' and 'vfs', before the shims hid them
_ctl = None  # pipe to the supervisor: one-byte events


def init(cfg, builtins, ctl):
    global config, _ctl
    config = cfg
    real.update(builtins)
    _ctl = ctl


def event(code):
    # one of _board_wire's EVENT_* codes
    _ctl.write(code)


def wifi():
    return config.get("wifi") or {}


def hosts():
    return config.get("hosts") or {}
