"""Wi-Fi scenarios for the emulated ESP32: which access points are in range and how the
association goes. The board's ``network`` module (mpy/network.py) plays them out."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# ESP32 status codes (ports/esp32/network_wlan.c); the failures are wifi_err_reason_t values.
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202
# In the board's scratch folder: the link state the harness sets at run time
# (EmulatedBoard.set_link), read by the board's network module.
LINK_CONTROL_FILE = "wifi-link.json"
# The station's association (in scratch): it outlives a soft reset, as the ESP32's Wi-Fi
# driver does; the supervisor deletes it on every other reset.
WIFI_STATE_FILE = "wifi-station.json"


@dataclass(frozen=True)
class AccessPoint:
    ssid: str
    password: str = ""  # "" = open network
    ip: str = "192.168.4.2"  # the address the board gets from this AP's DHCP
    gateway: str | None = None  # default: x.y.z.1 of ip
    netmask: str = "255.255.255.0"
    dns: str | None = None  # default: the gateway
    channel: int = 6
    rssi: int = -55

    def __repr__(self) -> str:  # never show the password
        return f"AccessPoint(ssid={self.ssid!r}, ip={self.ip!r})"


@dataclass(frozen=True)
class WifiScenario:
    access_points: list[AccessPoint] = field(
        default_factory=lambda: [AccessPoint(ssid="hil-ap", password="hil-password")])
    association_delay_s: float = 0.0  # connect() -> isconnected() True
    failure_delay_s: float = 1.0  # connect() -> a failure status (wrong password / no AP)
    drop_after_s: float | None = None  # link lost this long after it came up
    wrong_password_status: int = STAT_WRONG_PASSWORD
    no_ap_status: int = STAT_NO_AP_FOUND
    link_control: bool = False  # the harness may drop the link at run time (set_link)

    def __post_init__(self) -> None:
        for name in ("association_delay_s", "failure_delay_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.drop_after_s is not None and self.drop_after_s < 0:
            raise ValueError("drop_after_s must be >= 0 or None")

    def to_board(self) -> dict[str, Any]:
        """The JSON-ready form the board's network module reads."""
        return asdict(self)
