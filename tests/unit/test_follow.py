"""The rig's waits on the device's lines (harness.hil.follow): each wait ends at the line
that settles it — the awaited line, or the program's end (a crash or the prompt) — and
never holds the log's lock while it decides."""

from __future__ import annotations

import threading
import time

import pytest

from harness.device.serial_log import SerialLog
from harness.errors import ExpectTimeout, ProgramStopped, RunSettled
from harness.hil.follow import RunFollower

pytestmark = pytest.mark.unit

TOPIC = "hil/t"
CONNECTED = b'Connected to MQTT Broker "broker.test"\r\n'


def send(n: int) -> bytes:
    return f"Send '{{\"msg\": {n}}}' to topic '{TOPIC}'\r\n".encode()


def received(payload: str) -> bytes:
    return f"Received '{payload}' from topic '{TOPIC}'\r\n\r\n".encode()


def later(log: SerialLog, delay: float, *chunks: bytes) -> threading.Timer:
    timer = threading.Timer(delay, lambda: [log.append(chunk) for chunk in chunks])
    timer.start()
    return timer


def test_counts_sends_and_receives_and_returns_at_the_last_awaited_line() -> None:
    log = SerialLog()
    mark = log.mark("hard reset")
    timer = later(log, 0.05, CONNECTED, send(0), received('{"msg": 0}'), send(1),
                  received('{"msg": 1}'))
    run = RunFollower(log, mark)
    started = time.monotonic()
    run.until(lambda r: len(r.received) >= 2, 10, "2 Received lines")
    assert time.monotonic() - started < 2
    assert run.connected and run.sends == 2 and run.received == ['{"msg": 0}', '{"msg": 1}']
    timer.join()


TRACEBACK = (b"Traceback (most recent call last):\r\n"
             b'  File "main.py", line 30, in subscribe\r\n'
             b"AssertionError: \r\n"
             b"MicroPython v1.22.2 on 2024-02-22; Generic ESP32 module with ESP32\r\n"
             b'Type "help()" for more information.\r\n>>> ')


def test_a_crash_ends_the_wait_at_once_and_is_reported_as_a_crash() -> None:
    log = SerialLog()
    mark = log.mark("hard reset")
    log.append(CONNECTED + TRACEBACK)
    run = RunFollower(log, mark)
    started = time.monotonic()
    with pytest.raises(ProgramStopped) as info:
        run.until(lambda r: r.sends >= 4, 30, "4 Send lines")
    assert time.monotonic() - started < 0.5, "a crashed device must not be waited for"
    assert "crashed" in info.value.message
    assert "AssertionError" in info.value.message
    assert "before 4 Send lines" in info.value.message


def test_a_traceback_without_a_prompt_ends_the_wait_after_a_short_grace() -> None:
    log = SerialLog()
    mark = log.mark("hard reset")
    log.append(TRACEBACK.split(b"MicroPython")[0])
    run = RunFollower(log, mark)
    started = time.monotonic()
    with pytest.raises(ProgramStopped, match="crashed"):
        run.until(lambda r: r.sends >= 4, 30, "4 Send lines")
    assert time.monotonic() - started < 3


def test_an_error_line_and_the_prompt_end_a_refused_run() -> None:
    log = SerialLog()
    mark = log.mark("hard reset")
    timer = later(log, 0.05, b"Connected on 192.168.4.2\r\n",
                  b"ERROR tls: certificate verification failed: expired\r\n",
                  b"MicroPython v1.22.2\r\n>>> ")
    run = RunFollower(log, mark)
    started = time.monotonic()
    assert run.until_stopped(8)
    assert time.monotonic() - started < 1
    assert run.errors == ["ERROR tls: certificate verification failed: expired"]
    assert "stopped after: ERROR tls" in run.stop_reason()
    timer.join()


def test_a_prompt_before_the_reset_mark_does_not_count() -> None:
    log = SerialLog()
    log.append(b">>> ")
    mark = log.mark("hard reset")
    run = RunFollower(log, mark)
    assert not run.until_stopped(0.05)


def test_the_timeout_names_what_was_awaited() -> None:
    log = SerialLog()
    mark = log.mark("hard reset")
    log.append(CONNECTED + send(0))
    with pytest.raises(ExpectTimeout, match="waiting for 3 Send lines"):
        RunFollower(log, mark).until(lambda r: r.sends >= 3, 0.1, "3 Send lines")


def test_deciding_does_not_hold_the_lock_the_serial_reader_needs() -> None:
    log = SerialLog()
    mark = log.mark("hard reset")
    log.append(CONNECTED)
    deciding = threading.Event()

    def slow_decision(run: RunFollower) -> bool:
        deciding.set()
        time.sleep(0.5)  # a slow check, as a regex over a long log used to be
        return True

    waiter = threading.Thread(target=RunFollower(log, mark).until,
                              args=(slow_decision, 5, "anything"))
    waiter.start()
    assert deciding.wait(5)
    started = time.monotonic()
    log.append(send(0))
    assert time.monotonic() - started < 0.1, "append waited for the decision"
    waiter.join()


def test_counting_a_thousand_messages_costs_the_same_per_message_as_ten() -> None:
    def cost(messages: int) -> float:
        log = SerialLog()
        mark = log.mark("hard reset")
        run = RunFollower(log, mark)
        log.append(CONNECTED)
        started = time.thread_time()  # this thread's CPU: other threads and load don't count
        for n in range(messages):
            log.append(send(n))
            log.append(received(f'{{"msg": {n}}}'))
            run.until(lambda r, n=n: len(r.received) > n, 1, "the echo")
        return (time.thread_time() - started) / messages

    cost(50)  # warm up
    small, large = min(cost(100) for _ in range(3)), min(cost(3000) for _ in range(3))
    assert large < 1.5 * small, (small, large)


def test_an_iteration_ends_at_its_received_line_or_the_next_send() -> None:
    """Extra deliveries (a retained message twice) add Received lines before the loop: they
    must not end the wait before the last awaited iteration has printed its echo."""
    log = SerialLog()
    mark = log.mark("hard reset")
    log.append(CONNECTED + received("retained-hello") + received("retained-hello")
               + send(0) + received("retained-hello") + send(1) + send(2))
    run = RunFollower(log, mark)
    with pytest.raises(ExpectTimeout):
        run.until(lambda r: r.completed >= 3, 0.05, "iteration 3")
    assert run.completed == 2 and len(run.received) == 3
    log.append(received('{"msg": 1}'))
    run.until(lambda r: r.completed >= 3, 1, "iteration 3")


BOOT = (b"ets Jun  8 2016 00:22:57\r\n\r\n"
        b"rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n")


def test_a_boot_loop_ends_the_wait_within_seconds_and_says_what_preceded_each_reboot() -> None:
    log = SerialLog()
    mark = log.mark("hard reset")
    log.append(BOOT + b"Waiting for connection...\r\n")
    loop = b"starting up\r\nMPY: soft reboot\r\n" * 8
    timer = later(log, 0.05, *[loop[i:i + 40] for i in range(0, len(loop), 40)])
    run = RunFollower(log, mark)
    started = time.monotonic()
    with pytest.raises(ProgramStopped) as caught:
        run.until(lambda r: r.sends >= 3, 60, "3 Send lines")
    assert time.monotonic() - started < 5
    message = caught.value.message
    assert "boot loop: it rebooted" in message
    assert "last output before each reboot: 'starting up'" in message
    timer.join()


def test_the_reset_that_starts_a_run_and_one_later_reboot_are_not_a_loop() -> None:
    log = SerialLog()
    mark = log.mark("hard reset")
    log.append(BOOT + CONNECTED + send(0) + received('{"msg": 0}'))
    log.append(b"MPY: soft reboot\r\n" + CONNECTED + send(0))
    run = RunFollower(log, mark)
    run.until(lambda r: r.sends >= 2, 5, "2 Send lines")
    assert not run.boot_looping and len(run.reboots) == 1


def heap(count: int) -> bytes:
    return f"Memory free: 61000 bytes after {count} messages\r\n".encode()


def test_an_iteration_that_prints_its_heap_ends_at_that_line() -> None:
    """Stopping the device between its Received line and its heap line would cut the
    iteration short (and Ctrl-C would land in gc.collect())."""
    log = SerialLog()
    mark = log.mark("hard reset")
    log.append(CONNECTED + send(0) + received('{"msg": 0}') + heap(1) + send(1)
               + received('{"msg": 1}'))
    run = RunFollower(log, mark, heap_every=1)
    with pytest.raises(ExpectTimeout):
        run.until(lambda r: r.completed >= 2, 0.05, "iteration 2")
    assert run.completed == 1
    log.append(heap(2))
    run.until(lambda r: r.completed >= 2, 1, "iteration 2")


def test_heap_lines_every_n_messages_end_only_those_iterations() -> None:
    log = SerialLog()
    mark = log.mark("hard reset")
    log.append(CONNECTED + send(0) + received('{"msg": 0}') + send(1) + received('{"msg": 1}'))
    run = RunFollower(log, mark, heap_every=2)
    run.until(lambda r: r.completed >= 1, 1, "iteration 1")
    with pytest.raises(ExpectTimeout):
        run.until(lambda r: r.completed >= 2, 0.05, "iteration 2")
    log.append(heap(2))
    run.until(lambda r: r.completed >= 2, 1, "iteration 2")


def test_a_stalled_loop_ends_the_wait_after_one_iteration_budget_not_the_runs() -> None:
    log = SerialLog()
    mark = log.mark("hard reset")
    log.append(CONNECTED + send(0) + received('{"msg": 0}') + send(1))  # no echo comes
    run = RunFollower(log, mark)
    started = time.monotonic()
    with pytest.raises(ExpectTimeout, match="printed nothing for"):
        run.until(lambda r: r.sends >= 7, 60, "7 Send lines", idle=0.3)
    assert time.monotonic() - started < 2


def test_a_loop_that_keeps_printing_is_not_idle() -> None:
    log = SerialLog()
    mark = log.mark("hard reset")
    log.append(CONNECTED)
    timers = [later(log, 0.1 * (n + 1), send(n), received(f'{{"msg": {n}}}')) for n in range(6)]
    RunFollower(log, mark).until(lambda r: r.sends >= 6, 10, "6 Send lines", idle=0.35)
    for timer in timers:
        timer.join()


def _growth(costs: list[float]) -> float:
    run = RunFollower(SerialLog(), 0)
    total = 0.0
    for cost in costs:
        total += cost
        run.cpu_at_completed.append(total)
    return run.cost_metrics()["harness_cpu_growth"]


def test_cost_growth_reads_flat_runs_as_1_and_a_cost_linear_in_the_log_as_about_3() -> None:
    assert _growth([0.002] * 1000) == pytest.approx(1.0)
    assert _growth([0.002 * (n + 1) for n in range(1000)]) == pytest.approx(3.0, rel=0.15)


def test_a_burst_of_load_in_one_stretch_does_not_read_as_growth() -> None:
    costs = [0.002] * 1000
    costs[850:950] = [0.006] * 100  # the machine was busy for a tenth of the run
    assert _growth(costs) < 1.2


def test_evidence_from_the_wire_settles_a_silent_wait_at_once_and_every_later_one() -> None:
    log = SerialLog()
    mark = log.mark("hard reset")
    log.append(CONNECTED)
    run = RunFollower(log, mark)
    # From another thread, as the tap's listener does; the device prints nothing more.
    timer = threading.Timer(0.2, run.settle, args=("the wire says no echo can come",))
    timer.start()
    started = time.monotonic()
    with pytest.raises(RunSettled, match="the wire says no echo can come, before 3 Send"):
        run.until(lambda r: r.sends >= 3, 30, "3 Send lines")
    assert time.monotonic() - started < 2  # not the 30 s budget
    with pytest.raises(RunSettled):
        run.until(lambda r: r.sends >= 1, 30, "a Send line")
    timer.join()
