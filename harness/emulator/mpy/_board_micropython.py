# The board's `micropython` module: the interpreter's own, except kbd_intr, which sets the
# UART's interrupt character. That character is the supervisor's business (it turns the
# byte into KeyboardInterrupt while code runs), so kbd_intr tells it over the event pipe
# and leaves the interpreter's SIGINT handling alone. Runs ON the MicroPython interpreter.
import micropython as _real

import _board
from _board_wire import EVENT_INTR_CHAR, EVENT_INTR_OFF

for _name in dir(_real):
    if not _name.startswith("__"):
        globals()[_name] = getattr(_real, _name)


def kbd_intr(chr):
    # -1 (or any negative value) disables it: then \x03 reaches sys.stdin like any byte.
    _board.event(EVENT_INTR_OFF if chr < 0 else EVENT_INTR_CHAR + bytes((chr & 0xFF,)))
