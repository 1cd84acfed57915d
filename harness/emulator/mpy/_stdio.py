# The board's serial stdio, as an ESP32 has it. Runs ON the MicroPython unix interpreter.
#
# fd 0 and fd 1 of this process are the UART's raw RX and TX bytes (the supervisor adds and
# removes nothing; its own traffic uses another pipe). What the firmware layers on top
# (shared/runtime/sys_stdio_mphal.c, shared/runtime/stdout_helpers.c) is done here:
#   sys.stdin          text: every byte read as is, except \r which reads as \n (stdio_read)
#   sys.stdin.buffer   the raw bytes (the interpreter's own fd 0 stream)
#   sys.stdout/stderr  text: every \n goes out as \r\n (mp_hal_stdout_tx_strn_cooked)
#   sys.stdout.buffer  the raw bytes (the interpreter's own fd 1 stream)
#   print(), sys.print_exception(), REPL results: cooked, as mp_plat_print is
# Both stdin objects poll on fd 0 (select.poll), so nothing is ever read ahead.
import io
import sys as _real

import builtins

raw_in = _real.stdin.buffer
raw_out = _real.stdout.buffer
_real_print_exception = _real.print_exception

_STREAM_CLOSE = 4  # MP_STREAM_* ioctl requests (py/stream.h)
_STREAM_GET_FILENO = 10
_EPERM = 1


def write_cooked(data):
    # mp_hal_stdout_tx_strn_cooked: each \n goes out as \r\n, whatever precedes it.
    # Written piece by piece, so a large print costs no copies of the heap.
    nl = "\n" if isinstance(data, str) else b"\n"
    start = 0
    while True:
        end = data.find(nl, start)
        if end < 0:
            if start < len(data):
                raw_out.write(data[start:] if start else data)
            return
        if end > start:
            raw_out.write(data[start:end])
        raw_out.write(b"\r\n")
        start = end + 1


class _Stream(io.IOBase):
    # What the board's stdio streams answer alike: mp_stream's ioctl, close, with, repr.
    _fd = 0  # the stream's own number (its repr)
    _poll_fd = 0  # what select.poll watches for it

    def ioctl(self, request, arg):
        if request == _STREAM_GET_FILENO:
            return self._poll_fd
        if request == _STREAM_CLOSE:
            return 0
        return -1

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *args):
        pass

    def __repr__(self):
        return "<io.FileIO %d>" % self._fd


class _Stdin(_Stream):
    _poll_fd = 0  # polled on fd 0 itself: readable exactly when the host sent bytes

    def __init__(self):
        self._one = bytearray(1)

    def _getc(self):
        if not raw_in.readinto(self._one):
            return -1
        c = self._one[0]
        return 10 if c == 13 else c

    def _char(self):
        # One UTF-8 character's bytes (a text stream counts characters).
        c = self._getc()
        if c < 0:
            return b""
        out = bytearray((c,))
        more = 3 if c >= 0xF0 else 2 if c >= 0xE0 else 1 if c >= 0xC0 else 0
        while more:
            c = self._getc()
            if c < 0:
                break
            out.append(c)
            more -= 1
        return out

    def readinto(self, buf, size=-1):
        view = memoryview(buf)
        size = len(view) if size < 0 else min(size, len(view))
        for i in range(size):
            c = self._getc()
            if c < 0:
                return i
            view[i] = c
        return size

    def read(self, size=-1):
        out = bytearray()
        count = 0
        while size < 0 or count < size:
            char = self._char()
            if not char:
                break
            out += char
            count += 1
        return str(out, "utf-8")

    def readline(self, limit=-1):
        out = bytearray()
        while limit < 0 or len(out) < limit:
            c = self._getc()
            if c < 0:
                break
            out.append(c)
            if c == 10:
                break
        return str(out, "utf-8")

    def readlines(self):
        lines = []
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)

    def write(self, *args):
        raise OSError(_EPERM)

    def __iter__(self):
        return self

    def __next__(self):
        line = self.readline()
        if not line:
            raise StopIteration
        return line


_Stdin.buffer = raw_in


class _Stdout(_Stream):
    _poll_fd = 1  # stdout and stderr both go out on fd 1

    def __init__(self, fd):
        self._fd = fd

    def write(self, data, offset=None, size=None):
        # write(buf), write(buf, max_len), write(buf, off, max_len) as mp_stream_write
        if size is None and offset is not None:
            offset, size = 0, offset
        if offset is not None:
            data = bytes(memoryview(data if not isinstance(data, str) else data.encode())
                         [offset:offset + size])
        write_cooked(data)
        return len(data)

    def flush(self):
        pass

    def readinto(self, *args):
        raise OSError(_EPERM)


_Stdout.buffer = raw_out

stdin = _Stdin()
stdout = _Stdout(1)
stderr = _Stdout(2)


def print_exception(exc, file=None):
    if file is not None:
        _real_print_exception(exc, file)
        return
    buf = io.StringIO()
    _real_print_exception(exc, buf)
    write_cooked(buf.getvalue())


def board_print(*args, sep=" ", end="\n", file=None, **_ignored):
    # builtins.print: one write of the whole line, to sys.stdout (cooked) by default.
    write = (stdout if file is None else file).write
    for index, arg in enumerate(args):
        if index:
            write(" " if sep is None else sep)
        write(arg if isinstance(arg, str) else str(arg))
    write("\n" if end is None else end)


def repl_print(obj):
    # What the compiler calls for each REPL expression statement (__repl_print__).
    if obj is not None:
        write_cooked(repr(obj) + "\n")
        builtins._ = obj


# help() with no argument: the ESP32 port's text (ports/esp32/help.c), printed cooked.
_HELP = (
    "Welcome to MicroPython on the ESP32!\n\n"
    "For online docs please visit http://docs.micropython.org/\n\n"
    "For access to the hardware use the 'machine' module:\n\n"
    "import machine\n"
    "pin12 = machine.Pin(12, machine.Pin.OUT)\n"
    "pin12.value(1)\n"
    "pin13 = machine.Pin(13, machine.Pin.IN, machine.Pin.PULL_UP)\n"
    "print(pin13.value())\n"
    "i2c = machine.I2C(scl=machine.Pin(21), sda=machine.Pin(22))\n"
    "i2c.scan()\n"
    "i2c.writeto(addr, b'1234')\n"
    "i2c.readfrom(addr, 4)\n\n"
    "Basic WiFi configuration:\n\n"
    "import network\n"
    "sta_if = network.WLAN(%s); sta_if.active(True)\n"
    "sta_if.scan()                             # Scan for available access points\n"
    "sta_if.connect(\"<AP_name>\", \"<password>\") # Connect to an AP\n"
    "sta_if.isconnected()                      # Check for successful connection\n\n"
    "Control commands:\n"
    "  CTRL-A        -- on a blank line, enter raw REPL mode\n"
    "  CTRL-B        -- on a blank line, enter normal REPL mode\n"
    "  CTRL-C        -- interrupt a running program\n"
    "  CTRL-D        -- on a blank line, do a soft reset of the board\n"
    "  CTRL-E        -- on a blank line, enter paste mode\n\n"
    "For further help on a specific object, type help(obj)\n"
    "For a list of available modules, type help('modules')\n")


def _make_help(release, real_help):
    # v1.25 names the interface network.WLAN.IF_STA in its help text
    iface = "network.WLAN.IF_STA" if release >= (1, 25) else "network.STA_IF"

    def board_help(*args):
        if not args:
            write_cooked(_HELP % iface)
            return
        real_help(*args)  # help(obj), help('modules'): the interpreter's own listing

    return board_help


def install(board_sys, release=(1, 22)):
    # Give the board's sys module (sys.modules["sys"]) the board's stdio.
    board_sys.stdin = stdin
    board_sys.stdout = stdout
    board_sys.stderr = stderr
    board_sys.print_exception = print_exception
    builtins.print = board_print
    builtins.__repl_print__ = repl_print
    builtins.help = _make_help(release, builtins.help)
