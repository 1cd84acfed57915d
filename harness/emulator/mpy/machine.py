# The ESP32 `machine` module for the emulated board. Runs ON the MicroPython interpreter.
import time

import _board
from _board_wire import (DEEPSLEEP_RESET, EVENT_DEEP_SLEEP, EVENT_HARD_RESET, HARD_RESET,
                         PWRON_RESET, SOFT_RESET, WDT_RESET)

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

_freq = 160000000


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
    global _freq
    if hz is None:
        return _freq
    if hz not in (20000000, 40000000, 80000000, 160000000, 240000000):
        raise ValueError("frequency must be 20MHz, 40MHz, 80Mhz, 160MHz or 240MHz")
    _freq = hz


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
    def __init__(self, id=0, timeout=5000):
        self._timeout = timeout

    def feed(self):
        pass


class RTC:
    _offset = 0

    def datetime(self, *dt):
        if not dt:
            t = time.localtime(time.time() + RTC._offset)
            return (t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0)
        y, mo, d, _wd, h, mi, s, _us = dt[0]
        RTC._offset = time.mktime((y, mo, d, h, mi, s, 0, 0)) - time.time()

    def init(self, dt):
        self.datetime(dt)


class Timer:
    ONE_SHOT = 0
    PERIODIC = 1

    def __init__(self, id=0, **kwargs):
        self._id = id

    def init(self, **kwargs):
        pass

    def deinit(self):
        pass
