# The ESP32 `machine` module for the emulated board. Runs ON the MicroPython interpreter.
import time

import _board
from _board_wire import (DEEPSLEEP_RESET, EVENT_DEEP_SLEEP, EVENT_HARD_RESET, EVENT_WDT_FEED,
                         EVENT_WDT_START, HARD_RESET, PWRON_RESET, SOFT_RESET, WDT_FILE,
                         WDT_RESET)

_unix = _board.real["machine"]

SLEEP = 2
DEEPSLEEP = 4
PIN_WAKE = 2
EXT0_WAKE = 2
EXT1_WAKE = 3
TIMER_WAKE = 4
TOUCHPAD_WAKE = 5
ULP_WAKE = 6

mem8 = _unix.mem8
mem16 = _unix.mem16
mem32 = _unix.mem32
Signal = _unix.Signal
time_pulse_us = _unix.time_pulse_us
idle = _unix.idle



def reset():
    # Like the chip's software reset: immediate, whatever try/except surrounds the call.
    _board.event(EVENT_HARD_RESET)
    while True:
        try:
            time.sleep(1)
        except BaseException:
            pass


def soft_reset():
    raise SystemExit


def reset_cause():
    return int(_board.config.get("reset_cause", PWRON_RESET))


def wake_reason():
    return 0


def deepsleep(time_ms=0):
    # Deep sleep ends in a reset; the emulator wakes at once with DEEPSLEEP_RESET.
    _board.event(EVENT_DEEP_SLEEP)
    while True:
        try:
            time.sleep(1)
        except BaseException:
            pass


def lightsleep(time_ms=0):
    time.sleep_ms(time_ms)


def unique_id():
    mac = _board.config["mac"]
    return bytes(int(mac[i:i + 2], 16) for i in range(0, 12, 2))


def freq(hz=None):
    if hz is None:
        return _board.cpu_hz
    if hz not in (20000000, 40000000, 80000000, 160000000, 240000000):
        raise ValueError("frequency must be 20MHz, 40MHz, 80Mhz, 160MHz or 240MHz")
    _board.cpu_hz = hz


def disable_irq():
    return 0


def enable_irq(state=0):
    pass


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 2
    PULL_DOWN = 1
    IRQ_RISING = 1
    IRQ_FALLING = 2
    WAKE_LOW = 4
    WAKE_HIGH = 5
    DRIVE_0 = 0
    DRIVE_1 = 1
    DRIVE_2 = 2
    DRIVE_3 = 3

    # Every write to an output, in order: (pin id, value, ticks_ms).
    writes = []

    def __init__(self, id, mode=-1, pull=-1, *, value=None, drive=None, hold=None):
        if not 0 <= id <= 39:
            raise ValueError("invalid pin")
        self._id = id
        self._mode = self.IN
        self._value = 0
        self.init(mode, pull, value=value)

    def init(self, mode=-1, pull=-1, *, value=None, drive=None, hold=None):
        if mode != -1 and mode is not None:
            if mode in (self.OUT, self.OPEN_DRAIN) and 34 <= self._id <= 39:
                raise ValueError("pin can only be input")
            self._mode = mode
        if pull not in (-1, None):
            self._value = 1 if pull == self.PULL_UP else 0
        if value is not None:
            self.value(value)

    def value(self, *v):
        if not v:
            return self._value
        self._value = 1 if v[0] else 0
        Pin.writes.append((self._id, self._value, time.ticks_ms()))

    def __call__(self, *v):
        return self.value(*v)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def irq(self, handler=None, trigger=3, wake=None):
        return None

    def __repr__(self):
        return "Pin({})".format(self._id)


class WDT:
    # The IDF task watchdog (ports/esp32/machine_wdt.c): once started it cannot be stopped,
    # and the chip restarts (reset_cause() WDT_RESET) unless feed() comes within timeout
    # ms. The supervisor keeps the time, so it fires whatever the program is doing.
    def __init__(self, id=0, timeout=5000):
        if id != 0:
            raise ValueError("WDT(0) only")
        if timeout <= 0:
            raise ValueError("WDT timeout too short")
        fs, name = _board.host_file(_board.config["scratch"] + "/" + WDT_FILE)
        with fs.open(name, "w") as f:
            f.write(str(int(timeout)))
        _board.event(EVENT_WDT_START)

    def feed(self):
        _board.event(EVENT_WDT_FEED)


_RTC_MEMORY_MAX = 2048  # MICROPY_HW_RTC_USER_MEM_MAX


class RTC:
    # ports/esp32/machine_rtc.c: the clock time.time() reads (seconds since 2000), set as
    # (year, month, day, weekday, hours, minutes, seconds, microseconds); the weekday given
    # is ignored. RTC memory (RTC_NOINIT) survives every reset but a power-on.

    def __init__(self, id=0):
        pass

    def datetime(self, *dt):
        if not dt:
            us = time.board_us()
            t = time.gmtime(us // 1000000)
            return (t[0], t[1], t[2], t[6], t[3], t[4], t[5], us % 1000000)
        items = tuple(dt[0])
        if len(items) != 8:
            raise ValueError("requested length 8 but object has length {}".format(len(items)))
        secs = time.mktime((items[0], items[1], items[2], items[4], items[5], items[6], 0, 0))
        time.set_board_us(secs * 1000000 + int(items[7]))

    def init(self, dt):
        self.datetime(dt)

    def memory(self, *data):
        fs, name = _board.host_file(_board.config["rtc"] + "mem")
        if not data:
            try:
                with fs.open(name, "rb") as f:
                    return f.read()
            except OSError:
                return b""
        value = bytes(data[0])
        if len(value) > _RTC_MEMORY_MAX:
            raise ValueError("buffer too long")
        with fs.open(name, "wb") as f:
            f.write(value)


class Timer:
    # The ESP32's four hardware timers (ports/esp32/machine_timer.c): the callback is
    # scheduled (micropython.schedule, a soft IRQ) each period, and runs between bytecodes
    # of the program, as on the chip. A thread keeps the time.
    ONE_SHOT = 0
    PERIODIC = 1

    def __init__(self, id, **kwargs):
        if not 0 <= id <= 3:
            raise ValueError("id must be 0 to 3")
        self._id = id
        self._generation = 0
        self._started = time.ticks_ms()
        if kwargs:
            self.init(**kwargs)

    def init(self, *, mode=PERIODIC, period=-1, callback=None, freq=-1):
        import _thread

        if freq > 0:
            period = 1000 / freq
        if period < 0:
            raise ValueError("period must be given")
        self.deinit()
        self._started = time.ticks_ms()
        generation = self._generation
        _thread.start_new_thread(self._tick, (generation, max(1, int(period)), mode, callback))

    def _tick(self, generation, period, mode, callback):
        import micropython

        due = time.ticks_add(time.ticks_ms(), period)
        while self._generation == generation:
            wait = time.ticks_diff(due, time.ticks_ms())
            if wait > 0:
                time.sleep_ms(min(wait, 50))  # 50 ms slices: deinit() takes effect soon
                continue
            if callback is not None:
                try:
                    micropython.schedule(callback, self)
                except RuntimeError:
                    pass  # schedule queue full: this tick is lost, as on the chip
            if mode == Timer.ONE_SHOT:
                break
            due = time.ticks_add(due, period)

    def value(self):
        return time.ticks_diff(time.ticks_ms(), self._started)

    def deinit(self):
        self._generation += 1


def _not_modelled(name):
    refuse = _board.not_modelled("machine." + name)

    class NotModelled:  # a class, as the firmware's are: machine.UART(...) refuses
        def __init__(self, *args, **kwargs):
            refuse()

    NotModelled.__name__ = name
    return NotModelled


# Peripherals the firmware has that the emulator does not model: using one says so.
for _name in ("UART", "I2C", "SoftI2C", "SPI", "SoftSPI", "ADC", "ADCBlock", "PWM",
              "TouchPad", "DAC", "I2S", "SDCard"):
    globals()[_name] = _not_modelled(_name)
del _name
