# Setting the board's clock before TLS (spec S13).
#
# Since firmware v1.22 the ESP32 port's mbedTLS checks certificate dates against the RTC,
# and the RTC starts at 2000-01-01 on power-on: until the clock is set, every broker
# certificate is "not yet valid". v1.20-v1.21 check no dates, so there it is not needed.

import sys
import time

DATES_CHECKED_SINCE = (1, 22)  # esp32: "Enable mbedtls cert time validation", v1.22.0
EARLIEST_YEAR = 2024  # a clock before this was not set (or set by a broken NTP server)
ATTEMPTS = 3


class ClockError(Exception):
    pass


def firmware_checks_dates():
    """True on ESP32 firmware that checks certificate dates against its RTC (which starts
    at 2000-01-01); ports that keep a set clock (unix) need no NTP step."""
    version = tuple(sys.implementation.version[:2])
    return sys.platform == "esp32" and version >= DATES_CHECKED_SINCE


def _text(exc):
    return "{}: {}".format(type(exc).__name__, " ".join(str(a) for a in exc.args))


def set_clock(server):
    """Set the RTC from NTP (ntptime.settime); raise ClockError with one line if it fails."""
    try:
        import ntptime
    except ImportError:
        raise ClockError("this firmware has no ntptime module to set the clock with")
    if server:
        ntptime.host = server
    host = ntptime.host
    error = None
    for _ in range(ATTEMPTS):
        try:
            ntptime.settime()
            error = None
            break
        except (OSError, IndexError, ValueError) as exc:  # timeout, unreachable, short reply
            error = exc
    if error is not None:
        raise ClockError("cannot set the clock from NTP server \"{}\" ({}); certificate "
                         "dates cannot be checked without it".format(host, _text(error)))
    now = time.gmtime()
    if now[0] < EARLIEST_YEAR:
        raise ClockError("NTP server \"{}\" set the clock to {:04d}-{:02d}-{:02d}, which "
                         "cannot be right".format(host, now[0], now[1], now[2]))
