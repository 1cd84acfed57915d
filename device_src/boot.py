# boot.py runs on every boot and soft reset, before main.py.
# It does nothing on purpose: if it failed, the board would skip main.py, and the device
# program (main.py) must be the only place where settings are read and errors reported.
