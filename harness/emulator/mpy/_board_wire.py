# The emulated board's private protocol between the host-side supervisor
# (harness/emulator/board.py, boot.py) and the firmware loop on the MicroPython interpreter
# (board_runtime.py and the board modules). Both CPython and MicroPython import this file,
# so it holds plain constants only.

# Exit codes of the interpreter process: a soft reset into the friendly or the raw REPL.
EXIT_SOFT_FRIENDLY = 40
EXIT_SOFT_RAW = 41

# One-byte events on the control pipe (argv[2]), board -> supervisor.
EVENT_BOOTED = b"B"  # boot.py/main.py done, the REPL is up
EVENT_RUNNING = b"X"  # user code runs: the interrupt character becomes SIGINT
EVENT_REPL = b"I"  # back in the REPL: the interrupt character arrives in-band
EVENT_INTR_CHAR = b"K"  # followed by one byte: micropython.kbd_intr(c)
EVENT_INTR_OFF = b"k"  # micropython.kbd_intr(-1)
EVENT_HARD_RESET = b"H"  # machine.reset()
EVENT_DEEP_SLEEP = b"D"  # machine.deepsleep(): ends in a reset
EVENT_WDT_START = b"W"  # machine.WDT(): the task watchdog runs (its timeout in WDT_FILE)
EVENT_WDT_FEED = b"F"  # WDT.feed()

# Files in the board's scratch folder.
WDT_FILE = "wdt"  # machine.WDT's timeout in ms

# Reset causes, as machine.reset_cause() reports them (the boot config's "reset_cause").
PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5
