"""esp32-mqtt-hil: a hardware-in-the-loop harness for ESP32 boards running a MicroPython
MQTT client, with an emulated ESP32 that runs the same program on a real MicroPython
interpreter. ``docs/architecture.md`` is the map; folders mirror it:

- ``harness.emulator``  the emulated ESP32 (interpreter, serial line, ROM, board modules)
- ``harness.hardware``  real boards: port discovery, DTR/RTS reset, esptool flashing
- ``harness.device``    one device interface (deploy, reset, serial log) over a backend
  (``device.backends``: emulated board, USB port, RFC2217 URL, labgrid place)
- ``harness.broker``    brokers, test PKI, TLS/SNI front + MQTT wire tap, paho observer
- ``harness.faults``    faults on cue (tap, broker, emulated access point) and triggers
- ``harness.hil``       the rig: scenarios, device programs, runs, evidence collection
- ``harness.checks``    the spec checks (S and R items) over the evidence of a run
- ``harness.report``    results history, nightly regression report, run timelines
- ``harness.farm``      a local labgrid farm of emulated boards
- ``harness.pytest_plugin``  thin fixtures and options over all of the above

Leaf modules every layer may import: ``errors`` (the one exception tree), ``deadline``,
``wire`` (packet types, directions, record kinds), ``console`` (the device's console
lines), ``run_files`` (a run folder's file names), ``spec_items``, ``settings``,
``redact``, ``lifetime`` (child processes and temp folders that end with their owner),
``env`` (the environment variables, read once at an edge and passed down).
"""

__version__ = "0.1.0"
