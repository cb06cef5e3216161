"""One builder per role, composed by every deployment shape.

``citywall up`` runs every role in one process; ``citywall worker``/``cases``/``bridge``/``wall``
(:mod:`citywall.roles`) run them apart. Both build each role here, so the wiring is the same whatever the shape —
one :class:`DetectionWorker` batching the model call over every camera a process holds included:

- :mod:`citywall.builders.worker` — cameras: connections, clip buffers, recording, detection, site and shadow model,
  status publishing, the running configuration's camera changes;
- :mod:`citywall.builders.cases` — the case worker (consuming ``alarms``), webhooks and the deadline watch;
- :mod:`citywall.builders.bridge` — the MQTT bridge;
- :mod:`citywall.builders.wall` — the wall server (its application and its listening site).

A role builds its parts from the configuration and the shared services (bus, case store) it is given, and says
which long-running loops it has (:class:`Loops` runs them under :func:`citywall.supervise.supervise`); the
composer decides where each loop runs (every process, or one process of a pool through a lease).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from citywall.supervise import supervise

log = logging.getLogger("citywall.builders")

Loop = Callable[[asyncio.Event], Awaitable[object]]
"""A role's long-running loop: runs until the event is set (then finishes its current step and returns)."""


class Loops:
    """Supervised loops of a process: ``start`` each, ``close`` asks them all to stop (``stop`` is set), waits up to
    ``grace_s`` and cancels the stragglers; loops started with ``cancel=True`` (relays that only wait for input)
    are simply cancelled."""

    def __init__(self, stop: asyncio.Event, *, grace_s: float = 5.0) -> None:
        self.stop = stop
        self.grace_s = grace_s
        self._asked: list[asyncio.Task[None]] = []
        self._cancelled: list[asyncio.Task[None]] = []

    def start(self, name: str, loop: Loop, *, cancel: bool = False) -> None:
        task = asyncio.create_task(supervise(name, lambda: loop(self.stop), self.stop), name=name)
        (self._cancelled if cancel else self._asked).append(task)

    def start_all(self, loops: dict[str, Loop], *, cancel: bool = False) -> None:
        for name, loop in loops.items():
            self.start(name, loop, cancel=cancel)

    async def close(self) -> None:
        self.stop.set()
        for task in self._cancelled:
            task.cancel()
        if self._asked:
            _, pending = await asyncio.wait(self._asked, timeout=self.grace_s)
            for task in pending:
                log.warning("%s did not stop within %.0f s; cancelling it", task.get_name(), self.grace_s)
                task.cancel()
        await asyncio.gather(*self._cancelled, *self._asked, return_exceptions=True)
        self._asked, self._cancelled = [], []
