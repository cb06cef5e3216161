"""Keep the private child servers of ``citywall up`` alive: a redis-server, mosquitto or demo RTSP server whose
process dies (killed, crashed, OOM) is started again on the same port, so the stack heals without a person.

The roles already ride through an outage of their servers (bus reconnects with backoff, the MQTT bridge's paho
client reconnects, ingest reconnects cameras); what they cannot do is bring a dead child process back. The
private redis-server is persistent (AOF), so what it acknowledged before dying is there again after the restart.
Servers configured by URL (production) are someone else's to supervise and are not watched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("citywall.keepalive")


@dataclass
class WatchedChild:
    """One private server: how to tell it is alive and how to start it again (same port)."""

    name: str
    alive: Callable[[], bool]
    restart: Callable[[], object]
    """Blocking; run in a thread. Raises when the server cannot be started (tried again next round)."""
    restarts: int = 0
    failed_restarts: int = 0


async def keep_alive(children: list[WatchedChild], stop: asyncio.Event, *, interval_s: float = 1.0) -> None:
    """Every ``interval_s`` until ``stop``: restart each child whose process has died. Cancel it before the
    children are stopped on purpose (``citywall up`` registers it after them on its exit stack)."""
    while not stop.is_set():
        for child in children:
            if child.alive():
                continue
            log.warning("private %s is not running; starting it again on the same port", child.name)
            try:
                await asyncio.to_thread(child.restart)
            except Exception as exc:
                child.failed_restarts += 1
                log.error("private %s could not be restarted (%s); trying again in %.0f s", child.name, exc,
                          interval_s)
            else:
                child.restarts += 1
                log.warning("private %s is back (restart %d)", child.name, child.restarts)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)


__all__ = ["WatchedChild", "keep_alive"]
