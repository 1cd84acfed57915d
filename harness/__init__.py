"""esp32-mqtt-hil: a hardware-in-the-loop harness for ESP32 boards running a MicroPython
MQTT client, with an emulated ESP32 that runs the same program on a real MicroPython
interpreter.

Folders mirror the architecture:

- ``harness.emulator``  the emulated ESP32 (interpreter, serial line, board modules)
- ``harness.hardware``  real boards: port discovery, DTR/RTS reset, esptool flashing
- ``harness.device``    one device interface (deploy, settings, reset, serial log, expect)
- ``harness.broker``    brokers, test PKI, TLS/SNI front + MQTT wire tap, paho observer
- ``harness.checks``    the spec checks S1–S12 over serial log and broker evidence
- ``harness.report``    results history and the nightly regression report
- ``harness.pytest_plugin``  thin fixtures and options over all of the above
"""

__version__ = "0.1.0"
