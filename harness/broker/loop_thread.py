"""An asyncio event loop in its own daemon thread, driven from synchronous code.

The embedded broker and the tap are asyncio programs, while pytest fixtures and scripts
are synchronous; each component owns one of these so a test can call ``start()``/``stop()``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from harness.deadline import Deadline
from harness.errors import one_line

T = TypeVar("T")
log = logging.getLogger(__name__)


def _log_one_line(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """A peer that misbehaves (garbage, a reset mid-handshake) is logged as one line, not
    as asyncio's default multi-line traceback on the console."""
    exc = context.get("exception")
    detail = one_line(exc) if isinstance(exc, BaseException) else ""
    log.warning("%s%s", context.get("message", "unhandled error in event loop"),
                f": {detail}" if detail else "")


class LoopThread:
    """A private event loop running in a thread named ``name``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(_log_one_line)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            # Cancel whatever is left so no task outlives the loop.
            pending = asyncio.all_tasks(self.loop)
            for task in pending:
                task.cancel()
            if pending:
                self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    @property
    def thread_id(self) -> int | None:
        return self._thread.ident

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def run(self, coro: Coroutine[Any, Any, T], deadline: Deadline) -> T:
        """Run ``coro`` on the loop and wait for its result until ``deadline``."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout=deadline.remaining())
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise deadline.fail() from None

    def call_soon(self, callback: Any, *args: Any) -> None:
        """Schedule a plain callback on the loop from any thread."""
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(callback, *args)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop and join the thread (idempotent)."""
        if self._thread.is_alive() and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.loop.stop)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
