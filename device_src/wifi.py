# Wi-Fi station connection, as the seed's wifi.py, with the SSID and password passed in
# and a way to fail with one clear line instead of waiting forever on a hopeless network.

import network
import time

# Status codes that mean "this will not get better by waiting" on an ESP32 (the driver
# keeps retrying, but a wrong password stays wrong). getattr: not every port defines them.
_WRONG_PASSWORD = getattr(network, "STAT_WRONG_PASSWORD", None)
_NO_AP = getattr(network, "STAT_NO_AP_FOUND", None)
_FAILED = getattr(network, "STAT_CONNECT_FAIL", None)
# A wrong-password status must persist this many polls (~seconds): one failed attempt
# is reported the same way by the ESP32 driver.
_WRONG_PASSWORD_POLLS = 3


class WifiError(Exception):
    pass


def _status(wlan):
    try:
        return wlan.status()
    except Exception:  # some ports need an argument or lack status(); it is only a hint
        return None


def _describe(status, ssid):
    if status is None:
        return "status unknown"
    if status == _WRONG_PASSWORD:
        return "wrong password for '{}' (status {})".format(ssid, status)
    if status == _NO_AP:
        return "no access point named '{}' (status {})".format(ssid, status)
    if status == _FAILED:
        return "association with '{}' failed (status {})".format(ssid, status)
    return "status {}".format(status)


def station():
    return network.WLAN(network.STA_IF)


def is_connected():
    return station().isconnected()


def connect(ssid, password, timeout=0):
    """Join ``ssid`` and return the IPv4 address; raise WifiError on a hopeless network.

    ``timeout`` is in seconds; 0 waits forever, as the seed does.
    """
    wlan = station()
    try:
        wlan.active(True)
        wlan.connect(ssid, password)
    except OSError as exc:
        raise WifiError("cannot start the station interface ({})".format(exc))
    waited = 0
    wrong_password = 0
    while wlan.isconnected() == False:  # noqa: E712 -- the seed's loop, kept as written
        print('Waiting for connection...')
        status = _status(wlan)
        wrong_password = wrong_password + 1 if status == _WRONG_PASSWORD else 0
        if wrong_password >= _WRONG_PASSWORD_POLLS:
            raise WifiError(_describe(status, ssid))
        if timeout and waited >= timeout:
            raise WifiError("not connected to '{}' after {} s: {}".format(
                ssid, waited, _describe(status, ssid)))
        time.sleep(1)
        waited += 1
    ip = wlan.ifconfig()[0]
    print('Connected on {ip}'.format(ip=ip))
    return ip
