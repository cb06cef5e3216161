"""Keep a long-running task alive: restart it with backoff when it crashes, stop when asked."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from broker.backoff import Backoff

log = logging.getLogger("citywall.supervise")


async def supervise(
    name: str,
    start: Callable[[], Awaitable[object]],
    stop: asyncio.Event,
    *,
    first_delay_s: float = 0.5,
    max_delay_s: float = 30.0,
    healthy_after_s: float = 60.0,
) -> None:
    """Run ``start()`` until ``stop`` is set; a crash is logged and the task restarted after a backoff.

    The delay doubles per consecutive crash and resets once a run has lasted ``healthy_after_s``.
    A task that returns normally while ``stop`` is not set is treated like a crash (roles run forever).
    """
    loop = asyncio.get_running_loop()
    backoff = Backoff(initial_s=first_delay_s, max_s=max_delay_s, stable_s=healthy_after_s)
    while not stop.is_set():
        started = loop.time()
        try:
            await start()
            if stop.is_set():
                return
            delay = backoff.delay(loop.time() - started)
            log.warning("%s ended unexpectedly; restarting in %.1f s", name, delay)
        except asyncio.CancelledError:
            raise
        except Exception:
            delay = backoff.delay(loop.time() - started)
            log.exception("%s crashed; restarting in %.1f s", name, delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
