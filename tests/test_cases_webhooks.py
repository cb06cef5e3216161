"""Outbound webhooks against a real local aiohttp receiver, on both case-store backends: events delivered in order
with a stable Idempotency-Key, a failing target retried with exponential backoff and visible as pending, a target
that is down loses nothing and catches up when it returns."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from datetime import datetime
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp import web

from cases.filing import build_filer
from cases.store import CaseStore
from cases.webhooks import WebhookSender, backoff
from config import CONFIG_DIR, load_settings
from config.settings import Webhooks
from messages.alarm import Alarm
from tests.waiting import run_until

pytestmark = pytest.mark.every_backend

SH = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 3, 11, 11, 0, tzinfo=SH).timestamp()


class Receiver:
    """A city platform on 127.0.0.1 that answers 503 to the first ``fail_first`` requests."""

    def __init__(self, fail_first: int = 0):
        self.fail_first = fail_first
        self.requests: list[tuple[dict, dict]] = []  # (headers, body) of every request
        self.accepted: list[dict] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.requests.append((dict(request.headers), json.loads(raw)))
        if len(self.requests) <= self.fail_first:
            return web.Response(status=503, text="busy")
        self.accepted.append({"key": request.headers["Idempotency-Key"], "raw": raw, **json.loads(raw)})
        return web.json_response({"ok": True})

    async def start(self, port: int = 0) -> str:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port)
        await site.start()
        self.port = self.runner.addresses[0][1]
        return f"http://127.0.0.1:{self.port}/hook"

    async def stop(self) -> None:
        if self.runner:
            await self.runner.cleanup()


def file_alarms(store: CaseStore, n: int, start: int = 0) -> None:
    filer = build_filer(load_settings(CONFIG_DIR / "demo.yaml"), store)
    for i in range(start, start + n):
        cam, zone, ev = [("cam-vending", "pavement", "vending"), ("cam-bin", "bin-1", "bin_overflow")][i % 2]
        filer.file(Alarm(alarm_id=f"a-{i}", phase="raised", camera_id=cam, zone_id=zone, event=ev,
                         started_at=T0 + i - 20, at=T0 + i, dwell_s=20, confidence=0.9, snapshot=f"s/{i}.jpg"))


def config(url: str, **extra) -> Webhooks:
    return Webhooks.model_validate({"targets": [{"name": "city", "url": url, "secret": "s3cret", **extra}],
                                    "backoff_s": 0.05, "backoff_max_s": 0.2, "poll_s": 0.02})


def test_backoff_doubles_and_is_capped():
    assert [backoff(n, 1.0, 10.0) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


async def test_failing_target_is_retried_with_the_same_key_and_delivered_in_order(store):
    receiver = Receiver(fail_first=3)
    url = await receiver.start()
    try:
        sender = WebhookSender(store, config(url))
        # First sight of the target places its cursor at the end of the outbox: history is not replayed.
        async with aiohttp.ClientSession() as http:
            assert await sender.step(http) == 0
        file_alarms(store, 4)  # 2 filed + 2 attached
        await run_until(sender.run, lambda: len(receiver.accepted) == 4, timeout=20)
        assert len(receiver.requests) == 7  # 3 refusals of the first event, then 4 deliveries
        keys = [h["Idempotency-Key"] for h, _ in receiver.requests]
        assert keys[:4] == [keys[0]] * 4  # the head is retried alone (order kept), with the same key
        assert [h["X-Citywall-Attempt"] for h, _ in receiver.requests[:4]] == ["1", "2", "3", "4"]
        assert len({a["key"] for a in receiver.accepted}) == 4
        assert [a["action"] for a in receiver.accepted] == ["filed", "filed", "attached", "attached"]
        assert all(a["case"]["case_no"].startswith("CW20260311-") for a in receiver.accepted)
        first = receiver.accepted[0]
        headers = receiver.requests[3][0]
        assert headers["X-Citywall-Signature"] == "sha256=" + hmac.new(b"s3cret", first["raw"],
                                                                        hashlib.sha256).hexdigest()
        assert headers["X-Citywall-Event"] == "filed"
        status = store.webhook_status()
        assert status["targets"]["city"]["pending"] == 0 and status["targets"]["city"]["delivered"] == 4
        assert sender.stats.failed_attempts == 3
    finally:
        await receiver.stop()


async def test_a_target_that_is_down_stays_pending_and_loses_nothing(store):
    probe = Receiver()
    url = await probe.start()
    port = probe.port
    await probe.stop()  # nothing listens there now
    sender = WebhookSender(store, config(url, events=["filed"]))
    async with aiohttp.ClientSession() as http:
        await sender.step(http)  # cursor at the end of the (empty) outbox
        file_alarms(store, 6)  # 2 filed, 4 attached; only "filed" is wanted
        for _ in range(3):
            await sender.step(http)
            await asyncio.sleep(0.06)
    status = store.webhook_status()
    assert status["targets"]["city"]["pending"] == 2
    head = status["pending"][0]
    assert head["action"] == "filed" and head["attempts"] >= 2 and head["last_error"]
    assert head["idempotency_key"].startswith("citywall-")
    assert status["pending"][1]["attempts"] == 0  # waits behind the head
    # A new sender (a restart) after the target comes back delivers everything that was pending, once.
    receiver = Receiver()
    await receiver.start(port)
    try:
        await run_until(WebhookSender(store, config(url, events=["filed"])).run, lambda: len(receiver.accepted) == 2,
                        timeout=20)
        keys = [head["idempotency_key"], status["pending"][1]["idempotency_key"]]
        assert [a["key"] for a in receiver.accepted] == keys
        assert store.webhook_status()["targets"]["city"] == {"pending": 0, "delivered": 2, "oldest_pending_seq": None}
    finally:
        await receiver.stop()
