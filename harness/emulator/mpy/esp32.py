# The ESP32 `esp32` module, as far as the emulated board can model it
# (ports/esp32/modesp32.c). The IDF heap, partitions, NVS, RMT and the ULP are not modelled:
# using them
# raises NotImplementedError naming the emulator. Runs ON the MicroPython interpreter.
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


class _NotModelled:
    def __init__(self, name):
        self._name = name

    def __call__(self, *args, **kwargs):
        raise NotImplementedError("esp32.{} is not modelled by the emulated ESP32; run this "
                                  "part on a real board".format(self._name))


idf_heap_info = _NotModelled("idf_heap_info")  # the chip's IDF heap has no model here
Partition = _NotModelled("Partition")
NVS = _NotModelled("NVS")
RMT = _NotModelled("RMT")
ULP = _NotModelled("ULP")
