"""Facts about the ESP32 chip itself, shared by the real-board path and the emulator.

A leaf package: it imports nothing of the harness but :mod:`harness.errors`, and both
:mod:`harness.hardware` (real boards) and :mod:`harness.emulator` (the emulated one) import
it, so neither of those imports the other.

* :mod:`~harness.esp32.image`     the firmware image format, partition table, merged binaries
"""
