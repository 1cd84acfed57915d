# The ESP32 `time` module (and `utime`) for the emulated board. Runs ON the MicroPython
# interpreter.
#
# As in ports/esp32/modtime.c and extmod/modtime.c: one clock, gettimeofday(), read as
# seconds since 2000-01-01 (the board's epoch), no time zones (localtime is gmtime),
# 8-tuples (year, month, mday, hour, minute, second, weekday 0=Monday, yearday), and
# machine.RTC().datetime(...) / ntptime.settime() setting the same clock.
#
# The clock lives in a board-private file (harness/emulator/clock.py): microseconds to add
# to the host's clock. The supervisor resets it at power-on; resets keep it, as on the chip.
# The interpreter's mbedTLS reads the same file for certificate dates.
import _board

_real = _board.real["time"]

sleep = _real.sleep
sleep_ms = _real.sleep_ms
sleep_us = _real.sleep_us
ticks_ms = _real.ticks_ms
ticks_us = _real.ticks_us
ticks_add = _real.ticks_add
ticks_diff = _real.ticks_diff

_TICKS_MASK = (1 << 30) - 1  # MICROPY_PY_TIME_TICKS_PERIOD
_EPOCH_WEEKDAY = 5  # 2000-01-01 was a Saturday
_DAYS_1970_TO_2000 = 10957

_rtc = _board.host_file(_board.config["rtc"]) if _board.config.get("rtc") else None


def _read_offset():
    if _rtc is None:
        return 0
    try:
        with _rtc[0].open(_rtc[1], "r") as f:
            return int(f.read() or 0)
    except (OSError, ValueError):
        return 0


_offset_us = _read_offset()


def board_us():
    # Microseconds since 2000-01-01 on the board's clock (machine.RTC reads this too).
    return _real.time_ns() // 1000 + _offset_us


def set_board_us(us):
    # Set the clock (machine.RTC().datetime); it outlives this boot, but not a power-on.
    global _offset_us
    _offset_us = int(us) - _real.time_ns() // 1000
    if _rtc is None:
        return
    # Written in place: its only other reader in this process is the mbedTLS clock hook,
    # which never runs while this does (VfsPosix.rename cannot replace a file, either).
    with _rtc[0].open(_rtc[1], "w") as f:
        f.write(str(_offset_us))


def ticks_cpu():
    # The CPU cycle counter (esp_cpu_get_cycle_count), at the configured frequency.
    return (_real.ticks_us() * (_board.cpu_hz // 1000000)) & _TICKS_MASK


def time():
    return board_us() // 1000000


def time_ns():
    return board_us() * 1000


def _days_from_civil(year, month, day):
    # Days since 2000-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
    year -= 1 if month <= 2 else 0
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468 - _DAYS_1970_TO_2000


def _civil_from_days(days):
    z = days + _DAYS_1970_TO_2000 + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (1 if month <= 2 else 0), month, day


def gmtime(secs=None):
    if secs is None:
        secs = time()
    secs = int(secs)
    days, rest = divmod(secs, 86400)
    year, month, day = _civil_from_days(days)
    yday = days - _days_from_civil(year, 1, 1) + 1
    return (year, month, day, rest // 3600, rest // 60 % 60, rest % 60,
            (days + _EPOCH_WEEKDAY) % 7, yday)


localtime = gmtime  # the ESP32 has no time zones: both are the same function


def mktime(tm):
    if len(tm) not in (8, 9):
        raise TypeError("mktime needs a tuple of length 8 or 9")
    year, month, day, hour, minute, second = (int(v) for v in tm[:6])
    # timeutils_mktime normalises an out-of-range month, then counts days linearly.
    month -= 1
    year += month // 12
    month = month % 12 + 1
    days = _days_from_civil(year, month, 1) + day - 1
    return days * 86400 + hour * 3600 + minute * 60 + second
