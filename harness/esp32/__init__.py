"""Facts about the ESP32 chip itself, shared by the real-board path and the emulator.

A leaf package: it imports nothing of the harness but :mod:`harness.errors`, and both
:mod:`harness.hardware` (real boards) and :mod:`harness.emulator` (the emulated one) import
it, so neither of those imports the other.

* :mod:`~harness.esp32.image`     the firmware image format, partition table, merged binaries
* :mod:`~harness.esp32.rom`       what the ROM prints at a reset, the chip's MAC, registers
  and flash geometry
* :mod:`~harness.esp32.protocol`  the ROM's serial download protocol: opcodes, status
  codes, SLIP framing, checksum
"""
