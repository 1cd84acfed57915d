"""The device program's console lines: one home for their patterns and their formatters.

These are the lines of the guide's program (and ``device_src``), exactly as it prints them
(README, "Console lines"). The rig waits on them, the follower counts them, the checks
judge them, and hand-made evidence in tests is written with the formatters, so a change of
wording is one edit here. Patterns match a line with its ends stripped.
"""

from __future__ import annotations

import re

WIFI_WAITING = "Waiting for connection..."
WIFI_CONNECTED = re.compile(r"^Connected on (?P<ip>\S+)$")
BROKER_CONNECTED = re.compile(r'^Connected to MQTT Broker "(?P<server>.*)"$')
SEND = re.compile(r"^Send '(?P<payload>.*)' to topic '(?P<topic>.*)'$")
RECEIVED = re.compile(r"^Received '(?P<payload>.*)' from topic '(?P<topic>.*)'$")
# device_src's line before each retry (reconnect = true), the backoff in seconds.
RECONNECTING = re.compile(r"^Reconnecting in (?P<delay>\d+\.\d\d) s$")
# device_src's heap line, every mem_log_every messages.
MEMORY_FREE = re.compile(r"^Memory free: (?P<free>-?\d+) bytes after (?P<count>\d+) messages$")
# MicroPython's, when the program dies of an exception.
TRACEBACK = re.compile(r"^Traceback \(most recent call last\):$")
# The settings contract's one-line failures (``ERROR <what>: <why>``).
ERROR_PREFIX = "ERROR "
ERROR_LINE = re.compile(r"^ERROR [\w-]+: ")


def head(line: re.Pattern[str]) -> str:
    """A regex for the lines that begin as ``line``'s do (its text before the first group
    or class): a failure quotes them, a malformed one too."""
    return re.split(r"(?<!\\)[(\[]", line.pattern, maxsplit=1)[0]


def wifi_connected(ip: str) -> str:
    return f"Connected on {ip}"


def broker_connected(server: str) -> str:
    return f'Connected to MQTT Broker "{server}"'


def send(payload: str, topic: str) -> str:
    return f"Send '{payload}' to topic '{topic}'"


def received(payload: str, topic: str) -> str:
    return f"Received '{payload}' from topic '{topic}'"


def memory_free(free: int, count: int) -> str:
    return f"Memory free: {free} bytes after {count} messages"
