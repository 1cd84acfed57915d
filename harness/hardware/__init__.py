"""The real-board path: find ports, reset through DTR/RTS, flash with esptool.

Plain modules, usable from a script: :mod:`~harness.hardware.discovery` (ports, ``auto``,
who holds a busy port), :mod:`~harness.hardware.serial_port` (open with clear errors,
REPL probe), :mod:`~harness.hardware.reset` (EN/IO0 sequences),
:mod:`~harness.hardware.flashing` (esptool). ESP32 facts (the image format, what the ROM
prints) come from the leaf package :mod:`harness.esp32`, which the emulator imports too.
Nothing here imports the emulator; the ROM-level board double these are tested against is
:mod:`harness.emulator.rom_board`.
"""
