# The ESP32 `esp32` module, as far as the emulated board can model it
# (ports/esp32/modesp32.c). The IDF heap, partitions, NVS, RMT and the ULP are not modelled:
# using them raises NotImplementedError naming the emulator. Runs ON the MicroPython
# interpreter.
import _board

HEAP_DATA = 4  # MALLOC_CAP_8BIT
HEAP_EXEC = 1  # MALLOC_CAP_EXEC
WAKEUP_ALL_LOW = False
WAKEUP_ANY_HIGH = True

_wake = {}


def wake_on_touch(wake):
    _wake["touch"] = bool(wake)


def wake_on_ulp(wake):
    _wake["ulp"] = bool(wake)


def wake_on_ext0(pin, level):
    _wake["ext0"] = (pin, level)


def wake_on_ext1(pins, level):
    _wake["ext1"] = (tuple(pins), level)


def gpio_deep_sleep_hold(enable):
    pass


def raw_temperature():
    return 128  # the die sensor's raw reading (Fahrenheit) at room temperature, roughly


idf_heap_info = _board.not_modelled("esp32.idf_heap_info")  # the chip's IDF heap: no model
Partition = _board.not_modelled("esp32.Partition")
NVS = _board.not_modelled("esp32.NVS")
RMT = _board.not_modelled("esp32.RMT")
ULP = _board.not_modelled("esp32.ULP")
