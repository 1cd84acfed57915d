"""The classic ESP32 devkit auto-reset circuit: two transistors turn the USB-UART's DTR and
RTS into the chip's EN (reset) and IO0 (boot mode) pins.

    EN  = not (RTS and not DTR)        IO0 = not (DTR and not RTS)

EN low holds the chip in reset; when EN rises the ROM samples IO0 (low = download mode).
An RC network delays EN on the board, so the sample happens a moment later; tools such as
esptool rely on that by flipping DTR and RTS one after the other. Both emulated boards
(:class:`~harness.emulator.board.EmulatedBoard` and the ROM-only
:class:`~harness.emulator.rom_board.RomBoard`) use this one circuit.
"""

from __future__ import annotations

# How long after EN is released the chip starts and samples IO0. On a DevKit the RC on EN
# (Espressif's design guidelines suggest 10 kOhm and 1 uF) makes that milliseconds, shorter
# than the gap between two line writes from a USB bridge. Over RFC2217, pyserial's client
# waits for the server's ack of every SET_CONTROL (it polls every 50 ms), so the classic
# sequences reach the board as (measured): EN released with IO0 still high (the in-between
# DTR on, RTS on), IO0 low ~50 ms later, IO0 high again ~150 ms (the harness's
# hardware/reset.py) or ~200 ms (esptool's ClassicReset, which writes DTR again after RTS)
# after EN rose. 100 ms, the middle of the window both share, stands in for the RC; esptool's
# own RFC2217 server gets the same effect on a real board by replaying the sequence locally.
EN_RC_DELAY_S = 0.1


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
