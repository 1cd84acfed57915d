# Settings loader for the device program (MicroPython; also runs on CPython).
#
# The harness (or a user) writes /settings.json; see docs/settings.md for the format.
# Every problem raises SettingsError naming the key, so main.py can print ONE line
# ("ERROR settings: ...") and stop instead of dumping a traceback or reboot-looping.
# This file is the one home of the settings rules: the harness loads it under CPython
# (harness/settings.py) to check a run's settings on the host before it deploys them, and
# tests/unit/test_settings.py runs it under MicroPython to show both interpreters agree.

import json

PATH = "/settings.json"

# Type tags: "str", "bool", "int", "num" (int or float); a trailing "?" allows null.
# key: (type, default, required)
SCHEMA = {
    "server": ("str", None, True),
    "port": ("int?", None, False),  # null -> 8883 with TLS, 1883 without (umqtt's rule)
    "tls": ("bool", False, False),
    "ca_file": ("str?", None, False),  # required when tls is true
    "sni": ("bool", True, False),
    "client_id": ("str?", None, False),  # null -> micropython-client-<getrandbits(8)>
    "user": ("str?", None, False),
    "password": ("str?", None, False),
    "topic": ("str", None, True),
    "wifi_ssid": ("str", None, True),
    "wifi_password": ("str", "", False),
    "wifi_timeout": ("num", 0, False),  # 0: wait for Wi-Fi forever, like the seed
    "publish_interval": ("num", 1, False),
    "keepalive": ("int", 0, False),
    "reconnect": ("bool", False, False),
    "reconnect_delay": ("num", 1, False),
    "reconnect_max_delay": ("num", 60, False),
    "mem_log_every": ("int", 0, False),  # print free heap every N messages; 0 = never
    "ntp_server": ("str?", None, False),  # null -> ntptime's default (pool.ntp.org)
}

# Inclusive numeric ranges checked after the types.
RANGES = {
    "port": (1, 65535),
    "keepalive": (0, 65535),
    "wifi_timeout": (0, 86400),
    "publish_interval": (0, 86400),
    "reconnect_delay": (0.01, 3600),
    "reconnect_max_delay": (0.01, 86400),
    "mem_log_every": (0, 1000000000),
}

TYPE_NAMES = {"str": "a string", "bool": "true or false", "int": "an integer",
              "num": "a number"}


class SettingsError(Exception):
    """One line, naming the key (or the file) that is wrong."""


def json_type(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    return "an object"


def _type_ok(tag, value):
    if value is None:
        return tag.endswith("?")
    tag = tag.rstrip("?")
    if tag == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):  # bool is an int subclass; never accept it as a number
        return False
    if tag == "int":
        return isinstance(value, int)
    if tag == "num":
        return isinstance(value, (int, float))
    return isinstance(value, str)


def check(raw):
    """Validate a decoded settings object; return what the program uses: every key filled
    in, the null port and password resolved as umqtt resolves them."""
    return complete(validate(raw))


def validate(raw):
    """Check types, ranges and the rules between keys; return a dict with the defaults
    filled in (null stays null)."""
    if not isinstance(raw, dict):
        raise SettingsError("{} must hold a JSON object, not {}".format(PATH, json_type(raw)))
    for key in raw:
        if key not in SCHEMA:
            raise SettingsError("{}: unknown key (known keys: see docs/settings.md)".format(key))
    result = {}
    for key, spec in SCHEMA.items():
        tag, default, required = spec
        if key not in raw:
            if required:
                raise SettingsError("{}: missing; it is required".format(key))
            result[key] = default
            continue
        value = raw[key]
        if not _type_ok(tag, value):
            want = TYPE_NAMES[tag.rstrip("?")] + (" or null" if tag.endswith("?") else "")
            # Never echo the value itself: it may be a password.
            raise SettingsError("{}: expected {}, got {}".format(key, want, json_type(value)))
        if value is not None and key in RANGES:
            low, high = RANGES[key]
            if not low <= value <= high:
                raise SettingsError("{}: {} is out of range {}..{}".format(key, value, low, high))
        result[key] = value
    for key in ("server", "topic", "wifi_ssid", "client_id"):
        if result[key] == "":
            raise SettingsError("{}: must not be empty".format(key))
    if result["tls"] and not result["ca_file"]:
        raise SettingsError("ca_file: required when tls is true (path of the PEM CA on the device)")
    if result["keepalive"] and result["publish_interval"] >= result["keepalive"]:
        # The loop sends no PINGREQ; its publishes must keep the session alive.
        raise SettingsError("publish_interval: must be shorter than keepalive ({} s)".format(
            result["keepalive"]))
    if result["password"] is not None and result["user"] is None:
        raise SettingsError("user: required when password is set")
    return result


def complete(settings):
    """Resolve the keys whose null means "as umqtt does" (in place; returns ``settings``)."""
    if settings["port"] is None:
        settings["port"] = 8883 if settings["tls"] else 1883
    if settings["user"] is not None and settings["password"] is None:
        settings["password"] = ""  # umqtt sends a password field whenever a user is set
    return settings


def load(path=PATH):
    """Read and check the settings file; raise SettingsError on any problem."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as exc:
        raise SettingsError("{} cannot be read (OSError {}); write it with the harness or "
                            "mpremote, see docs/settings.md".format(path, _errno(exc)))
    try:
        raw = json.loads(text)
    except ValueError:
        raise SettingsError("{} is not valid JSON; see docs/settings.md".format(path))
    return check(raw)


def read_ca(settings):
    """The CA certificate bytes (PEM, as the seed passes them) or None without TLS."""
    if not settings["tls"]:
        return None
    path = settings["ca_file"]
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise SettingsError("ca_file: {} cannot be read (OSError {}); copy the CA "
                            "certificate there".format(path, _errno(exc)))
    if not data:
        raise SettingsError("ca_file: {} is empty".format(path))
    return data


def _errno(exc):
    return exc.args[0] if exc.args else "?"
