"""The spec items (README, "What the HIL suite checks"): one home for their ids and titles.

Reports, summaries and timelines show an item as ``S7 — Echo …`` from here, so the words
are written once. The checks give the detailed, run-specific expectation on failure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

# A skip whose reason starts with this is "not applicable": the program under test lacks
# the setting the check needs. Reports count it apart from ordinary skips.
NOT_APPLICABLE = "not applicable"


@dataclass(frozen=True)
class SpecItem:
    id: str
    title: str

    @property
    def label(self) -> str:
        return f"{self.id} — {self.title}"


_ITEMS = (
    SpecItem("S1", "Wi-Fi: waits, then prints the IP ifconfig() reports"),
    SpecItem("S2", "CONNECT: MQTT 3.1.1 with the configured identity, clean session, keepalive"),
    SpecItem("S3", "Connected line only after CONNACK 0"),
    SpecItem("S4", "Callback set before SUBSCRIBE: a retained message is printed, no crash"),
    SpecItem("S5", "SUBSCRIBE to exactly the topic at QoS 0 before the first PUBLISH"),
    SpecItem("S6", 'PUBLISH {"msg": n} without gaps, QoS 0, on the interval, with Send lines'),
    SpecItem("S7", "Echo: every payload printed as Received, in order, and seen by an observer"),
    SpecItem("S8", "A message from another client is received and printed"),
    SpecItem("S9", "TLS with CA, CERT_REQUIRED and SNI; bad certificates refused"),
    SpecItem("S10", "SNI required by the broker: with SNI connects, without is diagnosed"),
    SpecItem("S11", "Wrong credentials: CONNACK 4/5, reported, diagnosed not authorized"),
    SpecItem("S12", "Every umqtt.simple generation connects over TLS with SNI"),
    SpecItem("S13", "Clock set before TLS on v1.22+ (the RTC starts at 2000-01-01)"),
    SpecItem("R1", "A silent connection is detected within a keepalive-derived bound"),
    SpecItem("R2", "Reconnect with growing, capped, jittered backoff"),
    SpecItem("R3", "After reconnecting: subscribed again, counter without gap or duplicate"),
    SpecItem("R4", "A dropped Wi-Fi link is rejoined and MQTT re-established"),
    SpecItem("R5", "A broker unavailable at boot is retried, not fatal"),
    SpecItem("R6", "S6 and S7 still hold under seconds of added latency"),
)
SPEC_ITEMS: dict[str, SpecItem] = {item.id: item for item in _ITEMS}


class Family(StrEnum):
    """The parts of the spec: the guide's behaviour (S) and resilience under faults (R)."""

    CORE = "core"
    RESILIENCE = "resilience"

    @property
    def items(self) -> tuple[str, ...]:
        letter = "R" if self is Family.RESILIENCE else "S"
        return tuple(i for i in SPEC_ITEMS if i.startswith(letter))

    @property
    def label(self) -> str:
        """``S1–S13``, ``R1–R6``: how a report names the family's range."""
        return f"{self.items[0]}–{self.items[-1]}"


def family_of(item_id: str) -> Family | None:
    """The part of the spec an item belongs to; None for anything else (a unit test file)."""
    if item_id not in SPEC_ITEMS:
        return None
    return Family.RESILIENCE if item_id.startswith("R") else Family.CORE

_ITEM_ID = re.compile(r"^[SRH]\d+$")


_TEST_NAME = re.compile(r"test_([sr])(\d+)_")


def item_of_test(test_name: str) -> str | None:
    """The spec item a test is named for (``test_s7_echo_…`` -> ``S7``), else None."""
    match = _TEST_NAME.search(test_name)
    return f"{match.group(1).upper()}{match.group(2)}" if match else None


def title_of(item_id: str) -> str:
    """The item's one-line title, or "" for an id the spec does not have."""
    item = SPEC_ITEMS.get(item_id)
    return item.title if item else ""


def is_item_id(text: str) -> bool:
    return bool(_ITEM_ID.match(text))
