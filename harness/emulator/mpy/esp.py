# The ESP32 `esp` module, as far as the emulated board can model it (ports/esp32/modesp.c).
# Flash access and the GPIO matrix are not modelled: they raise NotImplementedError naming
# the emulator. Runs ON the MicroPython interpreter.
import _board

LOG_NONE = 0
LOG_ERROR = 1
LOG_WARNING = 2
LOG_INFO = 3
LOG_DEBUG = 4
LOG_VERBOSE = 5

_FLASH_SIZE = 4 * 1024 * 1024  # a generic ESP32 module's 4 MiB
_FLASH_USER_START = 0x200000  # the vfs partition of the generic partition table


def osdebug(uart, level=LOG_ERROR):
    pass  # the emulated board prints no IDF log lines either way


def flash_size():
    return _FLASH_SIZE


def flash_user_start():
    return _FLASH_USER_START


flash_read = _board.not_modelled("esp.flash_read")
flash_write = _board.not_modelled("esp.flash_write")
flash_erase = _board.not_modelled("esp.flash_erase")
gpio_matrix_in = _board.not_modelled("esp.gpio_matrix_in")
gpio_matrix_out = _board.not_modelled("esp.gpio_matrix_out")
