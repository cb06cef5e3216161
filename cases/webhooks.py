"""WebhookSender: every case event POSTed to each configured city-platform URL, from the case store's outbox.

Delivery rows live in the store (``webhook_deliveries``), made from the outbox by a per-target cursor, so a target
that is down is visible as pending (``CaseStore.webhook_status``, ``GET /api/webhooks``) and never loses an event,
even across restarts. Per target, events go out in commit order: a failure holds that target's queue and is retried
with exponential backoff (``backoff_s`` doubling up to ``backoff_max_s``); other targets carry on. Every request
carries ``Idempotency-Key`` (stable across retries: ``citywall-<case id>-<outbox seq>``) so the receiver can drop
repeats — delivery is at-least-once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from cases.store import CaseStore
from config import redact_url
from config.settings import Webhooks, WebhookTarget

log = logging.getLogger("citywall.cases.webhooks")

USER_AGENT = "citywall-webhooks/1"


def backoff(attempts: int, base: float, cap: float) -> float:
    """Delay before the next try after ``attempts`` failed ones: base, 2·base, 4·base, ... capped."""
    return min(cap, base * (2 ** max(0, attempts - 1)))


@dataclass
class SenderStats:
    delivered: int = 0
    failed_attempts: int = 0
    last_error: dict[str, str] = field(default_factory=dict)


class WebhookSender:
    """Delivers the outbox to ``config.targets``; run it next to the CaseWorker."""

    def __init__(self, store: CaseStore, config: Webhooks, *, clock: Callable[[], float] = time.time):
        self.store = store
        self.config = config
        self.clock = clock
        self.stats = SenderStats()

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop`` is set: pick up new events, deliver what is due, sleep ``poll_s``."""
        if not self.config.targets:
            await stop.wait()  # nothing to deliver; a role returns only when asked to stop
            return
        async with aiohttp.ClientSession(headers={"User-Agent": USER_AGENT}) as http:
            while not stop.is_set():
                await self.step(http)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.config.poll_s)

    async def step(self, http: aiohttp.ClientSession) -> int:
        """One round over every target; returns how many deliveries succeeded."""
        results = await asyncio.gather(*(self._target(http, t) for t in self.config.targets))
        return sum(results)

    async def _target(self, http: aiohttp.ClientSession, target: WebhookTarget) -> int:
        wanted = frozenset(target.events) if target.events else None
        await asyncio.to_thread(self.store.webhook_expand, target.name, wanted, self.clock())
        done = 0
        while True:
            queue = await asyncio.to_thread(self.store.webhook_queue, target.name, 50)
            if not queue:
                return done
            for item in queue:
                now = self.clock()
                if item["next_at"] > now:
                    return done  # the head is waiting out its backoff: keep the order
                error = await self._post(http, target, item)
                now = self.clock()
                if error is None:
                    await asyncio.to_thread(self.store.webhook_result, item["id"], at=now, ok=True)
                    self.stats.delivered += 1
                    done += 1
                    continue
                attempts = item["attempts"] + 1
                delay = backoff(attempts, self.config.backoff_s, self.config.backoff_max_s)
                await asyncio.to_thread(self.store.webhook_result, item["id"], at=now, ok=False, error=error,
                                        next_at=now + delay)
                self.stats.failed_attempts += 1
                self.stats.last_error[target.name] = error
                log.warning("webhook %s: %s for %s (attempt %d); retry in %.1f s", target.name, error, item["key"],
                            attempts, delay)
                return done

    async def _post(self, http: aiohttp.ClientSession, target: WebhookTarget, item: dict) -> str | None:
        """POST one event; None when the target answered 2xx, otherwise what went wrong."""
        body = json.dumps(item["event"], ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Idempotency-Key": item["key"],
            "X-Citywall-Event": str(item["event"].get("action", "")),
            "X-Citywall-Attempt": str(item["attempts"] + 1),
        }
        if target.secret:
            digest = hmac.new(target.secret.encode(), body, hashlib.sha256).hexdigest()
            headers["X-Citywall-Signature"] = f"sha256={digest}"
        try:
            async with http.post(target.url, data=body, headers=headers,
                                 timeout=aiohttp.ClientTimeout(total=target.timeout_s)) as resp:
                if 200 <= resp.status < 300:
                    return None
                return f"HTTP {resp.status}"
        except TimeoutError:
            return f"timeout after {target.timeout_s:g} s"
        except aiohttp.ClientError as exc:
            return redact_url(f"{type(exc).__name__}: {exc}")[:300]


__all__ = ["SenderStats", "WebhookSender", "backoff"]
