"""The cases role: alarms filed as cases (consumer group ``cases`` on ``alarms``; filing is idempotent by alarm
id), webhooks delivered from the case events, and the deadline watch raising ``case_deadlines`` alarms.

``citywall up`` runs all three loops; ``citywall cases`` runs the consumer in every process and the webhooks and the
deadline watch in one process of each pool at a time (:class:`citywall.roles.Singleton`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from admin.changes import ConfigChange
from broker.bus import Bus
from cases.deadlines import DeadlineAlarmLoop
from cases.store import CaseStore
from cases.webhooks import WebhookSender
from cases.worker import CaseWorker, build_filer
from citywall.builders import Loop
from citywall.metrics import case_store_metrics, case_worker_metrics
from config import Settings


class CasesRole:
    """The case worker (consumer ``consumer``; ``defer(camera_id, event, extra)``: whether a raised alarm waits
    for voice guidance's outcome, ``settings.guidance.defers_filing`` under ``citywall up``), the webhook sender and
    the deadline watch over ``store``."""

    def __init__(self, settings: Settings, bus: Bus, store: CaseStore, *, consumer: str,
                 defer: Callable[[str, str, dict], bool] | None = None) -> None:
        self.settings = settings
        self.bus = bus
        self.store = store
        self.filer = build_filer(settings, store)
        self.worker = CaseWorker(store, self.filer, bus, consumer=consumer, defer=defer,
                                 policy=settings.cases.auto_file)
        self.webhooks = WebhookSender(store, settings.webhooks)  # idles when no targets are configured

    def consume(self, stop: asyncio.Event) -> Awaitable[None]:
        return self.worker.run(stop)

    def send_webhooks(self, stop: asyncio.Event) -> Awaitable[None]:
        return self.webhooks.run(stop)

    def watch_deadlines(self, stop: asyncio.Event) -> Awaitable[None]:
        return DeadlineAlarmLoop(self.store, self.bus, self.settings.cases.deadline_watch,
                                 timezone=self.settings.timezone, clock=time.time).run(stop)

    def loops(self) -> dict[str, Loop]:
        """Every loop, for a process that runs them all (``citywall up``)."""
        return {"cases": self.consume, "webhooks": self.send_webhooks, "deadlines": self.watch_deadlines}

    async def adopt(self, old: Settings, new: Settings, change: ConfigChange) -> None:
        """A running-configuration change: a new camera's cases carry its address and grid."""
        if change.camera_list_changed:
            self.filer.cameras = {c.id: c for c in new.cameras}

    def metrics(self) -> list[Callable[[], Any]]:
        return [case_worker_metrics(self.worker), case_store_metrics(self.store)]
