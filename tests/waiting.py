"""Polling for tests that watch a real system settle: no fixed sleeps, a clear message naming what never came."""

from __future__ import annotations

import asyncio
import time


async def eventually(check, *, timeout: float = 10.0, what: str = "condition", interval: float = 0.1):
    """Await ``check()`` until it returns something truthy (and return that) or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")
