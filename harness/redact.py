"""Secret redaction for everything the harness writes: logs, traces, reports, messages."""

from __future__ import annotations

from collections.abc import Iterable

MASK = "***"


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each non-trivial secret with ``***``.

    Longer secrets go first so a secret containing a shorter one is masked whole.
    """
    for secret in sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
