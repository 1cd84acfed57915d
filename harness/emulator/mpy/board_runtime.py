# The emulated ESP32's firmware main loop. Runs ON the MicroPython unix interpreter.
#
# It does what ports/esp32/main.c and shared/runtime/pyexec.c do on a real board:
# mount the flash as "/", run boot.py (and main.py in friendly mode), then serve the
# friendly REPL, paste mode, raw REPL and raw-paste on the serial line. Code is compiled
# and run by this interpreter's own compiler with exec().
#
# The serial line is two pipes to the host-side supervisor (harness/emulator/board.py):
#   stdin  <- the UART's RX bytes, exactly as the host sent them
#   stdout -> the UART's TX bytes, exactly as written (the firmware's \n -> \r\n on the
#             text path is done here, in _stdio.py, as stdout_helpers.c does on the chip)
#   argv[2] -> an inherited pipe for events, out of band: B booted, X running user code,
#             I back in the REPL, K<c>/k interrupt character set/disabled (kbd_intr),
#             H/D hard reset / deep sleep requests (from machine.py)
# The REPL reads stdin one byte at a time, as readline.c does from the ring buffer, so
# whatever it does not consume is left for the program's own sys.stdin reads.
# Ctrl-C while user code runs arrives as SIGINT (KeyboardInterrupt), like the ESP32's
# UART interrupt character; otherwise it arrives in-band as \x03.
# Exit codes (soft reset into the friendly or raw REPL) and event codes: _board_wire.py.
import gc
import io
import json
import os
import sys

import vfs

RAW_PASTE_WINDOW = 128  # what an ESP32 announces (MICROPY_REPL_STDIN_BUFFER_MAX)
PASTE_NAME = "<stdin>"  # the file name raw-paste code compiles under, as on the board

_ctl = open(int(sys.argv[2]), "wb")
with open(sys.argv[1]) as _f:
    CFG = json.load(_f)

# --- board modules ------------------------------------------------------------------
# Take the unix port's own built-ins before the board's .py shims hide them.
sys.path[:] = []
import machine as _unix_machine  # noqa: E402
import socket as _unix_socket  # noqa: E402
import time as _unix_time  # noqa: E402
import gc as _unix_gc  # noqa: E402

for _name in ("machine", "socket", "time"):
    sys.modules.pop(_name, None)
sys.path[:] = CFG["module_dirs"]
import _board  # noqa: E402

_board.init(CFG, {"socket": _unix_socket, "machine": _unix_machine, "time": _unix_time,
                  "os": os, "gc": _unix_gc, "vfs": vfs}, _ctl)
# Like frozen modules on a real ESP32: importable whatever the flash holds.
# (aliases as soon as their module exists: umqtt 1.3.4 does `import usocket`)
for _name in CFG["preload"]:
    __import__(_name)
    gc.collect()  # see below: each module's compile garbage freed before the next
    for _alias, _target in CFG["aliases"].items():
        if _target in sys.modules:
            sys.modules[_alias] = sys.modules[_target]
# The firmware's own os and gc (what they contain, what they report; sys below).
sys.modules["os"] = sys.modules["uos"] = __import__("_board_os")
sys.modules["gc"] = __import__("_board_gc")

from _board_wire import (EVENT_BOOTED, EVENT_REPL, EVENT_RUNNING,  # noqa: E402
                         EXIT_SOFT_FRIENDLY, EXIT_SOFT_RAW)

_write = sys.stdout.write
_write_bytes = sys.stdout.buffer.write
_read = sys.stdin.buffer.read


def event(code):
    _ctl.write(code)


def user_code_starts():
    _board.reclaim_repl_room()
    event(EVENT_RUNNING)


def user_code_ends():
    event(EVENT_REPL)
    _board.lend_repl_room()


# --- the board's stdio ----------------------------------------------------------------
# On the board's sys, with its micropython.kbd_intr (importable like frozen modules).
import _readline  # noqa: E402
import _stdio  # noqa: E402

_board_sys = __import__("_board_sys")
_RELEASE = tuple(int(p) for p in CFG["banner"].split()[1][1:].split("-")[0].split(".")[:2])
_stdio.install(_board_sys, _RELEASE)
sys.modules["sys"] = sys.modules["usys"] = _board_sys
sys.modules["micropython"] = __import__("_board_micropython")
_board_imports = __import__("_board_imports")
# A real ESP32 runs these modules frozen in flash; here they are compiled into the heap at
# start-up, and their compile garbage, interleaved with the code it leaves, would fragment
# the heap device code gets (a 640-byte allocation failing with 80 KB free). Collecting
# after each compile keeps the long-lived code together at the bottom of the heap.
gc.collect()


# --- flash filesystem ----------------------------------------------------------------
from _flashfs import FlashFS  # noqa: E402

_scratch = vfs.VfsPosix(CFG["scratch"])  # board-private, never mounted
_flash = FlashFS(CFG["flash"], _scratch, PASTE_NAME, int(CFG.get("flash_blocks", 512)))
vfs.umount("/")
vfs.mount(_flash, "/")
os.chdir("/")
sys.path[:] = ["", ".frozen", "/lib"]

# --- running code -------------------------------------------------------------------
_globals = {"__name__": "__main__"}
_host_prefixes = CFG["module_dirs"]


def _print_exception(exc):
    # The traceback as the board prints it: without this loop's own frames, and with
    # board-module paths shown relative, as frozen modules are.
    buf = io.StringIO()
    sys.print_exception(exc, buf)
    out = []
    for line in buf.getvalue().split("\n"):
        if line.startswith('  File "') and (__file__ in line or "_board_imports.py" in line):
            continue
        for prefix in _host_prefixes:
            line = line.replace('"' + prefix + "/", '"')
        out.append(line)
    _stdio.write_cooked("\n".join(out))


def execute(source, mode, filename="<stdin>"):
    # Returns (system_exit, exception): the pyexec.c outcome of one compile+run. The
    # outcome is built after user_code_ends(), so a full heap has the REPL's room for it.
    user_code_starts()
    system_exit, error = False, None
    try:
        exec(compile(source, filename, mode), _globals)
    except SystemExit:
        system_exit = True
    except BaseException as exc:  # noqa: BLE001 -- the REPL reports everything
        error = exc
    finally:
        user_code_ends()
    return system_exit, error


def run_file(name):
    # pyexec_file_if_exists: True if the file is absent or ran without an exception.
    try:
        with open(name) as f:
            source = f.read()
    except OSError:
        return True, False
    system_exit, exc = execute(source, "exec", name)
    if exc is not None:
        _print_exception(exc)
    return exc is None, system_exit


# --- the serial line ----------------------------------------------------------------
_rx_into = _stdio.raw_in.readinto
_rx_one = bytearray(1)


def getc():
    # mp_hal_stdin_rx_chr: the next byte from the UART, waiting for it.
    if not _rx_into(_rx_one):
        sys.exit(0)  # the supervisor is gone: power off
    return _rx_one[0]


# The C modules of an ESP32 build: what Tab offers after "import " (py/repl.c test_qstr).
_BUILTIN_MODULES = (
    "__main__", "_asyncio", "_onewire", "_thread", "_webrepl", "array", "binascii",
    "bluetooth", "builtins", "cmath", "collections", "cryptolib", "deflate", "errno", "esp",
    "esp32", "framebuf", "gc", "hashlib", "heapq", "io", "json", "machine", "math",
    "micropython", "network", "os", "platform", "random", "re", "select", "socket", "ssl",
    "struct", "sys", "time", "uctypes", "vfs", "websocket")
_editor = _readline.Readline(getc, _write, _stdio.write_cooked, _globals, _BUILTIN_MODULES)


def board_input(prompt=""):
    # input(): the prompt printed as a str, then readline (so with its line editing and
    # history), as mp_builtin_input does.
    if prompt:
        _stdio.write_cooked(str(prompt))
    code, line = _editor.readline("", "")
    if code == 3:
        raise KeyboardInterrupt
    if code == 4 and not line:
        raise EOFError
    return line


import builtins  # noqa: E402

builtins.input = board_input


class SoftReset(Exception):
    pass


def soft_reset(raw):
    _write("MPY: soft reboot\r\n")
    raise SoftReset(EXIT_SOFT_RAW if raw else EXIT_SOFT_FRIENDLY)


def _receive_paste(out):
    # Raw-paste flow control (mp_reader_stdin_readbyte): the device grants
    # RAW_PASTE_WINDOW bytes at a time with \x01; \x04 ends the data, \x03 aborts.
    # Returns False if aborted.
    remain = RAW_PASTE_WINDOW
    chunk = bytearray()
    while True:
        c = getc()
        if c == 3 or c == 4:
            out.write(chunk)
            _write_bytes(b"\x04")
            return c == 4
        chunk.append(c)
        remain -= 1
        if remain == 0:
            out.write(chunk)
            chunk = bytearray()
            _write_bytes(b"\x01")
            remain = RAW_PASTE_WINDOW


def raw_paste():
    # The ESP32 compiles raw-paste input as it streams in, never holding the script in
    # its heap. Here it is spooled to a board-private scratch file and compiled from there
    # by the interpreter's file reader (execfile): the same heap cost, the same behaviour.
    _write_bytes(b"R\x01" + bytes((RAW_PASTE_WINDOW & 0xFF, RAW_PASTE_WINDOW >> 8)) + b"\x01")
    with _scratch.open("/paste.py", "wb") as spool:
        complete = _receive_paste(spool)
    if not complete:
        _write("\x04")
        _print_exception(KeyboardInterrupt())
        _write("\x04")
        return
    _flash.paste = "/paste.py"
    user_code_starts()
    try:
        try:
            if os.getcwd() == _flash.getcwd():
                execfile(PASTE_NAME, _globals)  # PASTE_NAME resolves on the flash
            else:  # the cwd is on another filesystem (mpremote mount): from memory
                with _scratch.open("/paste.py", "rb") as spool:
                    source = spool.read()
                exec(compile(source, PASTE_NAME, "exec"), _globals)
                source = None
            system_exit, exc = False, None
        except SystemExit:
            system_exit, exc = True, None
        except BaseException as e:  # noqa: BLE001 -- the REPL reports everything
            system_exit, exc = False, e
    finally:
        _flash.paste = None
        user_code_ends()
    _raw_reply(system_exit, exc)


def raw_repl_exec(source):
    _raw_reply(*execute(source, "exec"))


def _raw_reply(system_exit, exc):
    # What the raw REPL sends after running code (pyexec_raw_repl): EOT, the exception's
    # traceback if any, EOT; a SystemExit then soft-resets the board.
    _write("\x04")
    if exc is not None:
        _print_exception(exc)
    _write("\x04")
    if system_exit:
        soft_reset(True)


def raw_repl():
    # Returns when Ctrl-B switches to the friendly REPL.
    _write("raw REPL; CTRL-B to exit\r\n")
    while True:
        _write(">")
        line = bytearray()
        while True:
            c = getc()
            if c > 4:
                line.append(c)  # any other raw 8-bit value is code
                continue
            if c == 1:
                if len(line) == 2 and line[0] == 5:  # Ctrl-E <cmd> Ctrl-A: raw-paste
                    if line[1] == ord("A"):
                        raw_paste()
                    else:
                        _write_bytes(b"R\x00")  # an unsupported command
                    break
                _write("raw REPL; CTRL-B to exit\r\n")
                line = bytearray()
                break
            if c == 2:
                _write("\r\n")
                return
            if c == 3:
                line = bytearray()
                continue
            if c == 4:
                # Ctrl-D: run what was sent, or soft reset on an empty buffer.
                _write("OK")
                if not line:
                    _write("\r\n")
                    soft_reset(True)
                raw_repl_exec(bytes(line))
                break
            line.append(c)  # \x00


def friendly_exec(source, mode):
    system_exit, exc = execute(source, mode)
    if exc is not None:
        _print_exception(exc)
    if system_exit:
        soft_reset(False)


def paste_mode():
    _write("\r\npaste mode; Ctrl-C to cancel, Ctrl-D to finish\r\n=== ")
    text = bytearray()
    while True:
        c = getc()
        if c == 3:
            _write("\r\n")
            return
        if c == 4:
            _write("\r\n")
            friendly_exec(bytes(text), "exec")
            return
        text.append(c)  # \r stays in the source, as vstr_add_byte keeps it
        if c == 13:
            _write("\r\n=== ")
        else:
            _write_bytes(bytes((c,)))


def friendly_repl():
    # pyexec_friendly_repl. Returns when Ctrl-A switches to the raw REPL.
    _write(CFG["banner"] + '\r\nType "help()" for more information.\r\n')
    while True:
        code, line = _editor.readline("", ">>> ")
        if code == 1:
            _write("\r\n")
            return
        if code == 2:
            _write("\r\n")
            _write(CFG["banner"] + '\r\nType "help()" for more information.\r\n')
            continue
        if code == 3:
            _write("\r\n")
            continue
        if code == 4:
            _write("\r\n")
            soft_reset(False)
        if code == 5:
            paste_mode()
            continue
        if not line:
            continue
        cancelled = False
        while _readline.continue_with_input(line):
            code, line = _editor.readline(line + "\n", "... ")
            if code == 3:
                _write("\r\n")
                cancelled = True
                break
            if code == 4:
                break  # Ctrl-D ends a compound statement early
        if not cancelled:
            friendly_exec(line, "single")


_mode = [CFG["mode"]]  # the REPL mode now: "raw" or "friendly"


def boot():
    raw = _mode[0] == "raw"
    event(EVENT_BOOTED)
    ok, system_exit = run_file("boot.py")
    if system_exit:
        soft_reset(raw)
    if ok and not raw:
        _ok, system_exit = run_file("main.py")
        if system_exit:
            soft_reset(raw)


def repl():
    while True:
        if _mode[0] == "raw":
            raw_repl()
            _mode[0] = "friendly"
        else:
            friendly_repl()
            _mode[0] = "raw"


# From here on, what the profile's firmware lacks fails to import (release from the banner).
_board_imports.install(
    tuple(int(p) for p in CFG["banner"].split()[1][1:].split("-")[0].split(".")[:2]))
_board.lock_runtime_heap()  # device code gets the real board's heap, no more (collects)
_board.lend_repl_room()  # the REPL comes first (boot.py and main.py take it back)
_code = 0
_step = repl if CFG.get("skip_boot") else boot
while True:
    try:
        _step()
        _step = repl
    except SoftReset as reset:
        _code = reset.args[0]
        break
    except KeyboardInterrupt:
        # A Ctrl-C that landed just after user code ended: the REPL starts over in its
        # current mode (boot.py/main.py are not run again).
        _write("\r\n")
        _step = repl
sys.exit(_code)
