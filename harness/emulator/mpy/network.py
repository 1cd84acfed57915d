# The ESP32 `network` module for the emulated board. Runs ON the MicroPython interpreter.
# Wi-Fi is a scenario the harness sets per board (see harness/emulator/scenario.py): the
# access points in range, their passwords, how long association takes, what a wrong
# password or a missing AP reports, and when the link drops. With "link_control" on, the
# harness can also drop the link (and change the address) at a moment it chooses, by
# writing a small JSON file the station re-reads at most every _CONTROL_POLL_MS.
import json
import time

import _board

STA_IF = 0
AP_IF = 1

# ESP32 status codes (ports/esp32/network_wlan.c; failures are wifi_err_reason_t values).
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_BEACON_TIMEOUT = 200
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202
STAT_ASSOC_FAIL = 203
STAT_HANDSHAKE_TIMEOUT = 204

AUTH_OPEN = 0
AUTH_WEP = 1
AUTH_WPA_PSK = 2
AUTH_WPA2_PSK = 3
AUTH_WPA_WPA2_PSK = 4

MODE_11B = 1
MODE_11G = 2
MODE_11N = 4

_hostname = "esp32"
_CONTROL_POLL_MS = 50


def hostname(name=None):
    global _hostname
    if name is None:
        return _hostname
    _hostname = name


def country(code=None):
    return "01" if code is None else None


def _now():
    return time.ticks_ms()


_scratch = None


def _scratch_file(key, mode):
    # The board's own open() sees only the flash; the harness's files are in scratch.
    global _scratch
    if _scratch is None:  # the interpreter's vfs: a v1.22 board's firmware has none to import
        _scratch = _board.real["vfs"].VfsPosix(_board.config["scratch"])
    return _scratch.open("/" + _board.config[key], mode)


def _read_control():
    with _scratch_file("link_control_file", "r") as f:
        return json.loads(f.read())


def _mac(iface):
    base = _board.config["mac"]
    raw = bytes(int(base[i:i + 2], 16) for i in range(0, 12, 2))
    return raw[:5] + bytes([(raw[5] + iface) & 0xFF])


class _Station:
    def __init__(self):
        self._active = False
        self._ssid = None
        self._ap = None  # the scenario AP we associate with
        self._started = 0  # ticks when connect() was called
        self._fail = None  # status code once the attempt failed
        self._static = None
        self._config = {"reconnects": -1, "dhcp_hostname": _hostname, "txpower": 20}
        self._control = {}  # {"down": bool, "ip": str or None, "seq": n} from the harness
        self._control_read = None  # ticks of the last read
        self._restore()

    # --- the Wi-Fi driver's state outlives a soft reset: the ESP32's soft_reset_exit
    # (ports/esp32/main.c) leaves the driver alone, so a new interpreter takes it over.
    # ticks_ms is the host's monotonic clock here, the same in every interpreter.
    def _save(self):
        state = {"active": self._active, "ssid": self._ssid, "ap": self._ap,
                 "started": self._started, "fail": self._fail, "static": self._static,
                 "config": self._config}
        with _scratch_file("wifi_state_file", "w") as f:
            f.write(json.dumps(state))

    def _restore(self):
        try:
            with _scratch_file("wifi_state_file", "r") as f:
                state = json.loads(f.read())
        except (OSError, ValueError):
            return  # a fresh driver (power-on, hard reset), or a half-written file
        self._active, self._ssid, self._ap = state["active"], state["ssid"], state["ap"]
        self._started, self._fail = state["started"], state["fail"]
        self._static = tuple(state["static"]) if state["static"] else None
        self._config = state["config"]

    def controlled(self):
        # True when the harness may drop the link at any moment (sockets must watch it)
        return bool(self._scenario().get("link_control"))

    def _controls(self):
        if not self.controlled():
            return self._control
        now = _now()
        if self._control_read is None or time.ticks_diff(now, self._control_read) >= \
                _CONTROL_POLL_MS:
            self._control_read = now
            try:
                self._control = _read_control()
            except (OSError, ValueError):
                pass  # no file yet (nothing injected), or caught mid-replace: keep the last
        return self._control

    # --- link state, also used by the socket shim -------------------------------
    def _scenario(self):
        return _board.wifi()

    def _connected_at(self):
        # ticks when the link came up, or None while not (yet) associated
        if not self._active or self._ap is None or self._fail is not None:
            return None
        delay = int(float(self._scenario().get("association_delay_s", 0)) * 1000)
        if time.ticks_diff(_now(), self._started) < delay:
            return None
        return time.ticks_add(self._started, delay)

    def _dropped(self, up_at):
        drop = self._scenario().get("drop_after_s")
        if drop is None:
            return False
        return time.ticks_diff(_now(), up_at) >= int(float(drop) * 1000)

    def link_up(self):
        up_at = self._connected_at()
        return up_at is not None and not self._dropped(up_at) and \
            not self._controls().get("down")

    def ms_until_drop(self):
        # None if the link has no scheduled drop
        up_at = self._connected_at()
        drop = self._scenario().get("drop_after_s")
        if up_at is None or drop is None:
            return None
        return max(0, int(float(drop) * 1000) - time.ticks_diff(_now(), up_at))

    # --- the ESP32 WLAN API ------------------------------------------------------
    def active(self, *state):
        if not state:
            return self._active
        self._active = bool(state[0])
        if not self._active:
            self._ap = None
            self._ssid = None
        self._save()

    def connect(self, ssid=None, key=None, *, bssid=None):
        if not self._active:
            raise OSError("Wifi Not Started")
        scenario = self._scenario()
        self._ssid = ssid
        self._started = _now()
        self._fail = None
        self._ap = None
        for ap in scenario.get("access_points", []):
            if ap.get("ssid") == ssid:
                if (ap.get("password") or "") == (key or ""):
                    self._ap = ap
                else:
                    self._fail = int(scenario.get("wrong_password_status", STAT_WRONG_PASSWORD))
                break
        else:
            self._fail = int(scenario.get("no_ap_status", STAT_NO_AP_FOUND))
        self._save()

    def disconnect(self):
        self._ap = None
        self._ssid = None
        self._fail = None
        self._save()

    def isconnected(self):
        return self.link_up()

    def status(self, param=None):
        if param == "rssi":
            if not self.link_up():
                raise OSError("STA is not connected")
            return int(self._ap.get("rssi", -55))
        if param is not None:
            raise ValueError("unknown status param")
        if not self._active:
            return STAT_IDLE
        if self._fail is not None:
            waited = time.ticks_diff(_now(), self._started)
            fail_after = int(float(self._scenario().get("failure_delay_s", 1.0)) * 1000)
            return STAT_CONNECTING if waited < fail_after else self._fail
        if self._ap is None:
            return STAT_IDLE
        up_at = self._connected_at()
        if up_at is None:
            return STAT_CONNECTING
        # after a drop the ESP32 driver keeps retrying the lost AP
        lost = self._dropped(up_at) or self._controls().get("down")
        return STAT_CONNECTING if lost else STAT_GOT_IP

    def _addresses(self):
        if self._static is not None:
            return self._static
        if not self.link_up():
            return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")
        ap = self._ap
        ip = self._controls().get("ip") or ap.get("ip") or "192.168.4.2"
        gateway = ap.get("gateway") or ip.rsplit(".", 1)[0] + ".1"
        return (ip, ap.get("netmask") or "255.255.255.0", gateway, ap.get("dns") or gateway)

    def ifconfig(self, config=None):
        if config is None:
            return self._addresses()
        if len(config) != 4:
            raise ValueError("ifconfig needs a 4-tuple")
        self._static = tuple(config)
        self._save()

    def ipconfig(self, *names, **settings):
        if settings:
            if "addr4" in settings:
                ip, mask = settings["addr4"]
                rest = self._addresses()
                self._static = (ip, mask, rest[2], rest[3])
                self._save()
            return None
        if len(names) != 1:
            raise TypeError("ipconfig takes one parameter name to read")
        ip, mask, gateway, _dns = self._addresses()
        values = {"addr4": (ip, mask), "gw4": gateway, "dhcp4": self._static is None,
                  "has_dhcp4": self._static is None and self.link_up()}
        if names[0] not in values:
            raise ValueError("unexpected key")
        return values[names[0]]

    def config(self, *names, **settings):
        if settings:
            self._config.update(settings)
            self._save()
            return None
        if len(names) != 1:
            raise TypeError("can query only one param")
        name = names[0]
        if name == "mac":
            return _mac(STA_IF)
        if name in ("ssid", "essid"):
            return self._ssid or ""
        if name in self._config:
            return self._config[name]
        raise ValueError("unknown config param")

    def scan(self):
        if not self._active:
            raise OSError("Wifi Not Started")
        found = []
        for index, ap in enumerate(self._scenario().get("access_points", [])):
            bssid = bytes([0x24, 0x0A, 0xC4, 0x00, 0x00, index & 0xFF])
            security = AUTH_WPA2_PSK if ap.get("password") else AUTH_OPEN
            found.append((ap.get("ssid", "").encode(), bssid, int(ap.get("channel", 6)),
                          int(ap.get("rssi", -55)), security, False))
        return found


if tuple(_board.config["profile"]["release"]) < (1, 24):
    del _Station.ipconfig  # WLAN.ipconfig() came with v1.24


class _AccessPointIf:
    def __init__(self):
        self._active = False
        self._config = {"essid": "ESP_A1B2C3", "password": "", "channel": 1,
                        "authmode": AUTH_OPEN, "max_clients": 10, "hidden": False}
        self._ip = ("192.168.4.1", "255.255.255.0", "192.168.4.1", "0.0.0.0")

    def active(self, *state):
        if not state:
            return self._active
        self._active = bool(state[0])

    def isconnected(self):
        return False  # no station ever joins the emulated soft-AP

    def status(self, param=None):
        if param == "stations":
            return []
        return STAT_IDLE

    def ifconfig(self, config=None):
        if config is None:
            return self._ip
        self._ip = tuple(config)

    def config(self, *names, **settings):
        if settings:
            if "ssid" in settings:
                settings["essid"] = settings.pop("ssid")
            if "key" in settings:
                settings["password"] = settings.pop("key")
            self._config.update(settings)
            return None
        name = names[0]
        if name == "mac":
            return _mac(AP_IF)
        if name == "ssid":
            name = "essid"
        if name not in self._config:
            raise ValueError("unknown config param")
        return self._config[name]

    def connect(self, *args, **kwargs):
        raise OSError("AP interface cannot connect")

    def disconnect(self):
        pass


_interfaces = {}


def WLAN(interface_id=STA_IF):  # noqa: N802 -- the ESP32 API name
    if interface_id not in (STA_IF, AP_IF):
        raise ValueError("invalid WLAN interface identifier")
    if interface_id not in _interfaces:
        _interfaces[interface_id] = _Station() if interface_id == STA_IF else _AccessPointIf()
    return _interfaces[interface_id]


def station():
    # for the socket shim: the STA interface, created on demand
    return WLAN(STA_IF)
