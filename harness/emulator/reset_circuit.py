"""The classic ESP32 devkit auto-reset circuit: two transistors turn the USB-UART's DTR and
RTS into the chip's EN (reset) and IO0 (boot mode) pins.

    EN  = not (RTS and not DTR)        IO0 = not (DTR and not RTS)

EN low holds the chip in reset; when EN rises the ROM samples IO0 (low = download mode).
An RC network delays EN on the board, so the sample happens a moment later; tools such as
esptool rely on that by flipping DTR and RTS one after the other.
"""

from __future__ import annotations

# Long enough for RFC2217 clients, which set DTR and RTS ~50 ms apart.
EN_RC_DELAY_S = 0.15


class AutoResetCircuit:
    def __init__(self) -> None:
        self.en = True
        self.io0 = True
        self._release_at: float | None = None

    def set_lines(self, *, dtr: bool, rts: bool, now: float) -> bool:
        """Apply new line levels; True when EN has just been pulled low (chip stops)."""
        was_en = self.en
        self.en = not (rts and not dtr)
        self.io0 = not (dtr and not rts)
        if was_en and not self.en:
            self._release_at = None
            return True
        if not was_en and self.en:
            self._release_at = now + EN_RC_DELAY_S
        elif not self.en:
            self._release_at = None
        return False

    def seconds_to_release(self, now: float) -> float | None:
        """How long until the chip leaves reset, or None if it is not about to."""
        return None if self._release_at is None else max(0.0, self._release_at - now)

    def released(self, now: float) -> bool:
        """True once, when the EN delay has run out: the ROM boots now (see ``io0``)."""
        if self._release_at is None or now < self._release_at or not self.en:
            return False
        self._release_at = None
        return True
