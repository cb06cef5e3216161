"""The one way tests wait for a real system to settle: poll a condition with a generous deadline, never a fixed
sleep, and fail with a message naming what never came (and the last value seen).

- ``eventually(check)``: in async tests; ``check`` is a plain or an async callable.
- ``run_until(run, done)``: start a service's ``run(stop)`` loop, wait for ``done``, stop it; a loop that dies
  while we wait fails the test with its own error at once instead of a timeout.
- ``wait_until(check)``: the same in plain (thread-side) tests.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any


async def eventually(check: Callable[[], Any], *, timeout: float = 10.0, what: str = "condition",
                     interval: float = 0.05, alongside: asyncio.Task[Any] | None = None) -> Any:
    """Call ``check()`` (awaiting it if it is async) until it returns something truthy, and return that; fail after
    ``timeout`` seconds. ``alongside``: a task that must keep running meanwhile (its end fails the wait at once)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = check()
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last
        if alongside is not None and alongside.done():
            error = None if alongside.cancelled() else alongside.exception()
            raise AssertionError(f"stopped while waiting for {what}: {error!r}") from error
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: {last!r}")
        await asyncio.sleep(interval)


async def run_until(run: Callable[[asyncio.Event], Awaitable[Any]], done: Callable[[], Any], *,
                    timeout: float = 15.0, what: str = "the loop to finish its work") -> Any:
    """Run ``run(stop)`` as a task until ``done()`` is truthy, then set ``stop`` and await the task's end."""
    stop = asyncio.Event()
    task = asyncio.ensure_future(run(stop))
    try:
        return await eventually(done, timeout=timeout, what=what, alongside=task)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)


def wait_until(check: Callable[[], Any], *, timeout: float = 10.0, what: str = "condition",
               interval: float = 0.05) -> Any:
    """``eventually`` for code that is not async: blocks the calling thread between checks."""
    deadline = time.monotonic() + timeout
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: {last!r}")
        time.sleep(interval)
