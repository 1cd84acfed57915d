import re
import threading
import time
from pathlib import Path
from typing import cast

import pytest

from harness.device.serial_log import SerialLog
from harness.errors import ExpectTimeout

pytestmark = pytest.mark.unit


def test_lines_fold_crlf_even_when_split_across_chunks() -> None:
    log = SerialLog()
    for chunk in (b"Waiting for connection...\r", b"\nConnected on 1.2.3.4\r\n", b">>> "):
        log.append(chunk)
    assert [line.text for line in log.lines()] == [
        "Waiting for connection...", "Connected on 1.2.3.4", ">>> "]


def test_expect_wakes_when_the_pattern_arrives_from_another_thread() -> None:
    log = SerialLog()
    timer = threading.Timer(0.05, log.append, args=(b"Send '{\"msg\": 0}' to topic 't'\r\n",))
    timer.start()
    match = log.expect(r"Send '(.*)' to topic", timeout=5)
    assert match.group(1) == '{"msg": 0}'
    timer.join()


def test_expect_only_searches_after_the_mark() -> None:
    log = SerialLog()
    log.append(b"MPY: soft reboot\r\n")
    mark = log.mark("hard reset")
    with pytest.raises(ExpectTimeout):
        log.expect("soft reboot", timeout=0.05, since=mark)


def test_timeout_names_what_was_awaited_and_quotes_the_tail_redacted() -> None:
    log = SerialLog(secrets=["hunter22"])
    log.append(b"connecting with password hunter22\r\nOSError: -202\r\n")
    started = time.monotonic()
    with pytest.raises(ExpectTimeout) as info:
        log.expect("Connected to MQTT Broker", timeout=0.1, what="the connected line")
    assert time.monotonic() - started < 2
    message = str(info.value)
    assert "the connected line" in message
    assert "OSError: -202" in message
    assert "hunter22" not in message


def test_save_writes_timestamped_redacted_lines(tmp_path: Path) -> None:
    log = SerialLog()
    log.add_secret("s3cret-wifi")
    log.append(b"wifi s3cret-wifi\r\nok\r\n")
    text = log.save(tmp_path / "serial.log").read_text()
    assert "s3cret-wifi" not in text
    assert "wifi ***" in text
    assert text.splitlines()[1].endswith(" ok")


def test_save_from_a_position_keeps_only_that_run(tmp_path: Path) -> None:
    log = SerialLog()
    log.append(b"first run\r\n")
    begin = log.position()
    log.mark("hard reset")
    log.append(b"second run\r\n")
    lines = log.save(tmp_path / "serial.log", begin).read_text().splitlines()
    texts = [line.split(" ", 1)[1] for line in lines]
    assert [text for text in texts if text] == ["[harness] hard reset", "second run"]


def test_a_line_is_stamped_when_its_first_character_arrives() -> None:
    log = SerialLog()
    log.append(b"Connected on 1.2.3.4\r\n")
    time.sleep(0.05)
    log.append(b'Connected to MQTT Broker "b"\r\n')
    first, second = log.lines()
    assert second.time - first.time >= 0.04


def test_a_character_split_across_chunks_is_decoded_whole() -> None:
    log = SerialLog()
    encoded = "Received 'grüße'\r\n".encode()
    split = encoded.index("ü".encode()) + 1
    log.append(encoded[:split])
    log.append(encoded[split:])
    assert [line.text for line in log.lines()] == ["Received 'grüße'"]


def test_text_and_lines_from_a_mark_see_only_what_followed() -> None:
    log = SerialLog()
    log.append(b"old line\r\npartial")
    mark = log.mark("reset")
    log.append(b"new line\r\n>>> ")
    assert log.text(mark) == "new line\n>>> "
    assert [line.text for line in log.lines(mark)] == ["new line", ">>> "]
    assert log.text(log.position()) == ""


def test_the_cursor_hands_out_each_line_once_and_the_partial_line_apart() -> None:
    log = SerialLog()
    log.append(b"before\r\n")
    cursor = log.cursor(log.position())
    log.append(b"one\r\ntw")
    assert [line.text for line in cursor.read()] == ["one"]
    assert cursor.partial == "tw"
    log.append(b"o\r\n")
    assert [line.text for line in cursor.read()] == ["two"]
    assert cursor.read() == [] and cursor.partial is None


def test_expect_matches_the_unfinished_prompt_line() -> None:
    log = SerialLog()
    log.append(b"ERROR mqtt: not authorized\r\n>>> ")
    assert log.expect(r"^>>> ", timeout=0.1).group(0) == ">>> "


class CountingPattern:
    """A regex that counts how many characters it was asked to search."""

    def __init__(self, pattern: str) -> None:
        self._regex = re.compile(pattern, re.M)
        self.pattern = pattern
        self.scanned = 0

    def search(self, text: str, pos: int = 0) -> re.Match[str] | None:
        self.scanned += len(text) - pos
        return self._regex.search(text, pos)


def test_a_wait_reads_each_line_once_however_long_it_waits() -> None:
    """Waiting while 3,000 lines stream in searches each of them once: linear in the log
    (a search of everything since the mark on every chunk grows with its square)."""
    log = SerialLog()
    mark = log.mark("hard reset")
    lines = [f"Send '{{\"msg\": {n}}}' to topic 'hil/t'\r\n".encode() for n in range(3000)]
    lines.append(b"the end\r\n")

    def stream() -> None:
        for number, line in enumerate(lines):
            log.append(line)
            if number % 20 == 0:
                time.sleep(0.001)  # let the waiter wake up mid-stream

    pattern = CountingPattern(r"^the end$")
    writer = threading.Thread(target=stream)
    writer.start()
    log.expect(cast(re.Pattern[str], pattern), timeout=30, since=mark)
    writer.join()
    streamed = sum(len(line) for line in lines)
    assert pattern.scanned <= streamed, (pattern.scanned, streamed)



def test_line_content_drops_the_noise_glued_to_its_start() -> None:
    from harness.device.serial_log import LogLine

    noisy = LogLine(0.0, "\ufffd\ufffd\x00\x1b[0mSend '{\"msg\": 0}' to topic 't'")
    assert noisy.content == "Send '{\"msg\": 0}' to topic 't'"
    assert LogLine(0.0, "  indented stays").content == "  indented stays"
    assert LogLine(0.0, "Received 'a\x00b'").content == "Received 'a\x00b'"  # only the start
