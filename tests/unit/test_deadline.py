import time

import pytest

from harness.deadline import Deadline
from harness.errors import DeadlineExceeded, HarnessError

pytestmark = pytest.mark.unit


def test_poll_returns_first_non_none_value() -> None:
    calls = iter([None, None, "ready"])
    assert Deadline(1.0, "a value").poll(lambda: next(calls), interval=0.001) == "ready"


def test_poll_fails_with_what_was_awaited_and_what_was_seen() -> None:
    deadline = Deadline(0.05, "the banner")
    with pytest.raises(DeadlineExceeded) as info:
        deadline.poll(lambda: None, interval=0.01, seen=lambda: "garbage")
    assert "the banner" in str(info.value)
    assert "garbage" in str(info.value)
    assert deadline.expired
    assert isinstance(info.value, HarnessError)


def test_remaining_shrinks_and_never_goes_negative() -> None:
    deadline = Deadline(0.01, "nothing")
    time.sleep(0.02)
    assert deadline.remaining() == 0.0
