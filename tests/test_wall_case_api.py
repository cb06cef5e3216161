"""Case routes of the wall server on a real bus and a real case store (SQLite and PostgreSQL): workflow actions
through HTTP, two people acting on one case at once (one wins, the other gets 409 with the case as it is now),
invalid transitions (409 with the allowed ones), role refusals (403), bad fields and unknown categories (400)."""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import AsyncIterator
from datetime import datetime
from zoneinfo import ZoneInfo

import aiohttp
import openpyxl
import pytest
from aiohttp.test_utils import TestClient

from cases.desk import CaseDesk
from cases.filing import build_filer
from cases.webhooks import WebhookSender
from config.settings import Webhooks
from messages.alarm import Alarm
from tests import signin
from tests.fixtures.factories import make_alarm
from tests.fixtures.wall import PASSWORD, login, settings_with_roles, wall_client
from wall.app import create_app

pytestmark = pytest.mark.every_backend


@pytest.fixture
async def wall(tmp_path, bus, store) -> AsyncIterator[TestClient]:
    settings = settings_with_roles(tmp_path)
    (tmp_path / "evidence").mkdir()
    app = create_app(settings, bus=bus, cases=store, live=None, evidence_dir=tmp_path / "evidence")
    async with wall_client(app) as c:
        yield c


@pytest.fixture
def case_id(tmp_path, store) -> str:
    filer = build_filer(settings_with_roles(tmp_path), store)
    return filer.file(make_alarm(1)).case["id"]


async def person(client: TestClient, username: str) -> aiohttp.ClientSession:
    """A second browser: its own cookie jar, logged in as ``username``."""
    session = aiohttp.ClientSession(base_url=str(client.make_url("/")), cookie_jar=aiohttp.CookieJar(unsafe=True))
    resp = await signin.login(session, username, PASSWORD)
    assert resp.status == 200, await resp.text()
    return session


async def test_detail_lists_the_actions_of_my_role_and_an_action_moves_the_case(wall, case_id):
    assert (await login(wall, "duty")).status == 200
    case = await (await wall.get(f"/api/cases/{case_id}")).json()
    assert case["state"] == "dispatched" and case["version"] == 1
    assert [a["action"] for a in case["allowed_actions"]] == ["start", "feedback", "return"]
    resp = await wall.post(f"/api/cases/{case_id}/actions", json={"action": "start", "version": 1, "note": "已签收"})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["case"]["state"] == "handling" and body["case"]["version"] == 2
    assert body["case"]["timeline"][-1]["actor"] == "duty(watch_officer)"
    assert body["case"]["timeline"][-1]["note"] == "已签收"
    assert [a["action"] for a in body["case"]["allowed_actions"]] == ["feedback", "return"]


async def test_two_people_at_once_one_wins_the_other_gets_409_with_the_current_state(wall, case_id):
    a, b = await person(wall, "duty"), await person(wall, "duty2")
    try:
        # Both saw version 1 and choose different steps at the same moment.
        ra, rb = await asyncio.gather(
            a.post(f"/api/cases/{case_id}/actions", json={"action": "feedback", "version": 1}),
            b.post(f"/api/cases/{case_id}/actions", json={"action": "return", "version": 1}))
        assert sorted([ra.status, rb.status]) == [200, 409]
        winner, loser = (ra, rb) if ra.status == 200 else (rb, ra)
        won = (await winner.json())["case"]
        lost = await loser.json()
        assert lost["state"] == won["state"] and lost["version"] == won["version"] == 2
        assert lost["case"]["timeline"] == won["timeline"]
        assert "changed by someone else" in lost["error"]
        # The same step by both without a version: the state moved on, the second is told what is allowed now.
        ra, rb = await asyncio.gather(
            a.post(f"/api/cases/{case_id}/actions", json={"action": "verify"}),
            b.post(f"/api/cases/{case_id}/actions", json={"action": "verify"}))
        if won["state"] == "handled":
            assert sorted([ra.status, rb.status]) == [200, 409]
            lost = await (rb if ra.status == 200 else ra).json()
            assert lost["state"] == "verifying"
            assert [x["action"] for x in lost["allowed"]] == ["close", "rework"]
        else:  # returned: verify is not possible for either
            assert [ra.status, rb.status] == [409, 409]
            assert [x["action"] for x in (await ra.json())["allowed"]] == ["dispatch", "void"]
    finally:
        await a.close()
        await b.close()
    case = await (await (await person(wall, "admin")).get(f"/api/cases/{case_id}")).json()
    assert len([e for e in case["timeline"] if e["actor"].startswith("duty")]) in (1, 2)


async def test_invalid_transition_is_409_naming_the_allowed_and_role_is_403(wall, case_id):
    assert (await login(wall, "duty")).status == 200
    resp = await wall.post(f"/api/cases/{case_id}/actions", json={"action": "close"})
    assert resp.status == 409
    body = await resp.json()
    assert body["state"] == "dispatched" and "allowed from dispatched" in body["error"]
    assert [x["action"] for x in body["allowed"]] == ["start", "feedback", "return", "extend", "suspend"]
    assert body["case"]["id"] == case_id
    monitor = await person(wall, "monitor")
    try:
        resp = await monitor.post(f"/api/cases/{case_id}/actions", json={"action": "start"})
        assert resp.status == 403  # the access policy: start is a watch officer's action in every state
        assert "role monitor may not" in (await resp.json())["error"]
        resp = await monitor.post(f"/api/cases/{case_id}/actions", json={"action": "verify"})
        assert resp.status == 409  # a monitor verifies, but not a dispatched case (the workflow's answer)
    finally:
        await monitor.close()
    assert (await (await wall.get(f"/api/cases/{case_id}")).json())["version"] == 1  # nothing written


async def test_extend_and_bad_fields(wall, case_id):
    leader = await person(wall, "leader")
    try:
        resp = await leader.post(f"/api/cases/{case_id}/actions",
                                 json={"action": "extend", "extension": {"value": 1, "unit": "work_days"}})
        assert resp.status == 200, await resp.text()
        assert "延期 1 工作日" in (await resp.json())["case"]["timeline"][-1]["note"]
        for body, field in [
            ({"action": "fly"}, "action"),
            ({"action": "report"}, "action"),
            ({"action": "extend", "extension": {"value": -1, "unit": "work_days"}}, "extension"),
            ({"action": "extend"}, "extension"),
            ({"action": "extend", "version": "2"}, "version"),
            ({"action": "extend", "note": "x" * 501}, "note"),
            ({"action": "extend", "colour": "red"}, "colour"),
            (["extend"], "body"),
        ]:
            resp = await leader.post(f"/api/cases/{case_id}/actions", json=body)
            assert resp.status == 400, (body, await resp.text())
            assert (await resp.json())["error"].startswith(f"{field}:"), (body, await resp.text())
        resp = await leader.post("/api/cases/nope/actions", json={"action": "extend"})
        assert resp.status == 404
    finally:
        await leader.close()


async def test_list_filters_by_category_and_unit_and_names_an_unknown_category(wall, case_id):
    assert (await login(wall, "duty")).status == 200
    body = await (await wall.get("/api/cases", params={"category": "事件/0501"})).json()
    assert [c["id"] for c in body["cases"]] == [case_id]
    unit = body["cases"][0]["unit_id"]
    assert (await (await wall.get("/api/cases", params={"unit_id": unit})).json())["total"] == 1
    resp = await wall.get("/api/cases", params={"unit_id": "nobody"})  # not a unit of the dispatch file
    assert resp.status == 400 and (await resp.json())["error"].startswith("unit_id: unknown unit 'nobody'")
    assert (await (await wall.get("/api/cases", params={"category": "事件/0504"})).json())["total"] == 0
    resp = await wall.get("/api/cases", params={"category": "事件/9999"})
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error.startswith("category: unknown category '事件/9999'") and "事件/0501" in error


async def test_stats_json_csv_xlsx_through_the_api(tmp_path, bus, store):
    sh = ZoneInfo("Asia/Shanghai")
    wed_11 = datetime(2026, 3, 11, 11, 0, tzinfo=sh).timestamp()
    settings = settings_with_roles(tmp_path)
    filer = build_filer(settings, store)
    desk = CaseDesk(filer.config, store)
    first = filer.file(Alarm(**{**make_alarm(1).to_dict(), "at": wed_11})).case
    filer.file(Alarm(**{**make_alarm(2).to_dict(), "at": wed_11 + 60, "camera_id": "cam-b", "zone_id": "z"}))
    for step in ("feedback", "verify", "close"):
        desk.act(first["id"], step, role="admin", user="admin", now=wed_11 + 600)
    (tmp_path / "evidence").mkdir()
    app = create_app(settings, bus=bus, cases=store, live=None, evidence_dir=tmp_path / "evidence",
                     clock=lambda: wed_11 + 30 * 24 * 3600)
    async with wall_client(app) as c:
        assert (await login(c, "leader")).status == 200
        params = {"by": "total", "from": "2026-03-11", "to": "2026-03-11"}
        body = await (await c.get("/api/stats", params=params)).json()
        assert body["cases"] == 2
        total = body["total"]
        assert (total["registered"], total["due"], total["closed"], total["closed_on_time"]) == (2, 2, 1, 1)
        assert total["close_rate"] == 0.5 and total["handle_rate"] == 0.5
        none = await (await c.get("/api/stats", params={"from": "2026-03-12", "to": "2026-03-12"})).json()
        assert none["cases"] == 0 and none["rows"] == []
        resp = await c.get("/api/stats", params={"by": "category", "from": "2026-03-01", "to": "2026-03-31",
                                                  "format": "csv"})
        assert resp.status == 200 and resp.content_type == "text/csv"
        text = (await resp.read()).decode("utf-8-sig")
        assert text.splitlines()[0].startswith("案件类别,立案数,应结案数,结案数,按期结案数")
        resp = await c.get("/api/stats", params={"by": "unit", "from": "2026-03-01", "to": "2026-03-31",
                                                  "format": "xlsx"})
        assert resp.status == 200 and "attachment" in resp.headers["Content-Disposition"]
        ws = openpyxl.load_workbook(io.BytesIO(await resp.read())).active
        assert ws["A1"].value == "责任单位" and ws["B1"].value == "立案数"
        for params, field in [({"by": "street"}, "by"), ({"period": "year"}, "period"),
                              ({"from": "2026-13-01"}, "from"),
                              ({"from": "yesterday"}, "from"), ({"from": "2026-03-02", "to": "2026-03-01"}, "to"),
                              ({"format": "pdf"}, "format"), ({"category": "事件/9999"}, "category")]:
            resp = await c.get("/api/stats", params=params)
            assert resp.status == 400 and (await resp.json())["error"].startswith(f"{field}:"), params


async def test_webhooks_endpoint_shows_a_down_target_as_pending(tmp_path, bus, store):
    settings = settings_with_roles(tmp_path).model_copy(update={"webhooks": Webhooks.model_validate(
        {"targets": [{"name": "city", "url": "http://user:pw@127.0.0.1:9/hook"}], "backoff_s": 60})})
    sender = WebhookSender(store, settings.webhooks)
    async with aiohttp.ClientSession() as http:
        await sender.step(http)  # the target's cursor starts here
        build_filer(settings, store).file(make_alarm(1))
        await sender.step(http)  # port 9 (discard) is closed on loopback: refused
    (tmp_path / "evidence").mkdir()
    app = create_app(settings, bus=bus, cases=store, live=None, evidence_dir=tmp_path / "evidence")
    async with wall_client(app) as c:
        assert (await login(c, "admin")).status == 200
        body = await (await c.get("/api/webhooks")).json()
        assert body["targets"] == [{"name": "city", "url": "http://user:***@127.0.0.1:9/hook", "events": [],
                                    "pending": 1, "delivered": 0, "oldest_pending_seq": body["pending"][0]["seq"]}]
        assert body["pending"][0]["action"] == "filed" and body["pending"][0]["attempts"] == 1
        assert body["pending"][0]["last_error"]
        assert (await c.get("/api/webhooks?limit=0")).status == 400


async def test_daily_report_is_a_printable_page_with_the_days_figures(tmp_path, bus, store):
    sh = ZoneInfo("Asia/Shanghai")
    wed_11 = datetime(2026, 3, 11, 11, 0, tzinfo=sh).timestamp()
    settings = settings_with_roles(tmp_path)
    filer = build_filer(settings, store)
    desk = CaseDesk(filer.config, store)
    first = filer.file(Alarm(**{**make_alarm(1).to_dict(), "at": wed_11})).case
    filer.file(Alarm(**{**make_alarm(2).to_dict(), "at": wed_11 + 60, "camera_id": "cam-b", "zone_id": "z",
                        "camera_name": "<script>x</script>"}))
    for step in ("feedback", "verify", "close"):
        desk.act(first["id"], step, role="admin", user="admin", now=wed_11 + 600)
    (tmp_path / "evidence").mkdir()
    app = create_app(settings, bus=bus, cases=store, live=None, evidence_dir=tmp_path / "evidence",
                     clock=lambda: wed_11 + 86400)
    async with wall_client(app) as c:
        resp = await c.get("/report/daily?date=2026-03-11", allow_redirects=False)
        assert resp.status == 302 and resp.headers["Location"].startswith("/login?next=")
        assert (await login(c, "leader")).status == 200
        resp = await c.get("/report/daily?date=2026-03-11")
        assert resp.status == 200 and resp.content_type == "text/html"
        page = await resp.text()
        assert "城市运行日报" in page and "2026年3月11日 星期三" in page
        assert "@media print" in page and "<script>x" not in page and "&lt;script&gt;x" in page
        kpis = re.findall(r'<div class="kpi"><b>([^<]*)</b>([^<]*)</div>', page)
        assert kpis == [("2", "新增立案"), ("1", "结案"), ("50.0%", "结案率"), ("1", "办理中（全部）"),
                        ("1", "超期未结（全部）")]
        assert "湖滨街道城管中队" in page
        assert (await c.get("/report/daily?date=2026-02-30")).status == 400
        empty = await (await c.get("/report/daily?date=2026-03-12")).text()
        assert "当日无立案" in empty


async def test_review_api_claims_and_refusals(wall, bus):
    for n in (1, 2):
        await bus.publish(make_alarm(n))
    await bus.publish(make_alarm(1, phase="cleared"))  # cleared alarms are not review items
    await bus.publish(Alarm(**{**make_alarm(3).to_dict(), "event": "juggling"}))  # no category files this
    a, b = await person(wall, "monitor2"), await person(wall, "monitor")
    duty = await person(wall, "duty")
    try:
        assert (await duty.get("/api/review")).status == 403  # reviewing is the monitors' work (监控员)
        assert (await duty.post("/api/review/claim", json={})).status == 403
    finally:
        await duty.close()
    try:
        queue = await (await a.get("/api/review")).json()
        assert [i["id"] for i in queue["items"]] == ["alarm-1", "alarm-2", "alarm-3"]
        assert queue["counts"]["free"] == 3 and len(queue["reasons"]) == 5
        ca, cb = await asyncio.gather(a.post("/api/review/claim", json={}), b.post("/api/review/claim", json={}))
        got = {(await ca.json())["item"]["id"], (await cb.json())["item"]["id"]}
        assert got == {"alarm-1", "alarm-2"}  # never the same item
        mine = (await (await a.post("/api/review/claim", json={"current": "alarm-3", "direction": "prev"})).json())
        a_item = mine["item"]["id"]
        b_item = ({"alarm-1", "alarm-2"} - {a_item}).pop()
        resp = await a.post(f"/api/review/{b_item}/decision", json={"decision": "confirm"})
        assert resp.status == 409 and (await resp.json())["claimed_by"] == "monitor"
        for body, field in [({"decision": "maybe"}, "decision"), ({"decision": "reject"}, "reason"),
                            ({"decision": "reject", "reason": "x" * 201}, "reason"), ([], "body")]:
            resp = await a.post(f"/api/review/{a_item}/decision", json=body)
            assert resp.status == 400 and (await resp.json())["error"].startswith(f"{field}:"), body
        assert (await a.post("/api/review/claim", json={"direction": "up"})).status == 400
        assert (await a.post("/api/review/nope/decision", json={"decision": "confirm"})).status == 404
        resp = await a.post(f"/api/review/{a_item}/decision", json={"decision": "confirm"})
        assert resp.status == 200 and (await resp.json())["case"]["state"] == "dispatched"
        third = await (await a.post("/api/review/claim", json={"current": a_item})).json()
        assert third["item"]["id"] == "alarm-3"
        resp = await a.post("/api/review/alarm-3/decision", json={"decision": "confirm"})
        assert resp.status == 422 and "juggling" in (await resp.json())["error"]
        resp = await a.post("/api/review/alarm-3/decision", json={"decision": "reject", "reason": "重复报警"})
        assert resp.status == 200 and (await resp.json())["case"] is None
        counts = (await (await b.get("/api/review")).json())["counts"]
        assert counts == {"free": 0, "mine": 1, "claimed": 0, "confirmed": 1, "rejected": 1, "unfiled": 1,
                          "auto_filed": 0}
    finally:
        await a.close()
        await b.close()


async def test_supervise_is_for_leaders_marks_the_case_and_keeps_its_state(wall, case_id):
    leader, duty = await person(wall, "leader"), await person(wall, "duty")
    try:
        before = await (await leader.get(f"/api/cases/{case_id}")).json()
        assert before["can_supervise"] is True and before["supervised"] is False and before["supervise_count"] == 0
        assert (await (await duty.get(f"/api/cases/{case_id}")).json())["can_supervise"] is False
        resp = await duty.post(f"/api/cases/{case_id}/supervise", json={"note": "催办"})
        assert resp.status == 403 and "leader" in (await resp.json())["error"]
        resp = await leader.post(f"/api/cases/{case_id}/supervise", json={"note": "请今日内处置完毕", "version": 1})
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        case = body["case"]
        assert case["state"] == "dispatched" and case["version"] == 2   # not a transition, but a change
        assert case["supervised"] is True and case["supervise_count"] == 1
        last = case["last_supervision"]
        assert (last["action"], last["actor"], last["note"]) == ("supervise", "leader(leader)", "请今日内处置完毕")
        assert case["timeline"][-1] == last and body["event"]["action"] == "supervise"
        resp = await leader.post(f"/api/cases/{case_id}/supervise", json={"version": 1})  # stale
        assert resp.status == 409 and (await resp.json())["case"]["supervise_count"] == 1
        assert (await leader.post(f"/api/cases/{case_id}/supervise", json={})).status == 200
        listed = (await (await duty.get("/api/cases")).json())["cases"][0]
        assert listed["supervise_count"] == 2 and listed["last_supervision"]["note"] == "督办"
        for body_, field in [({"note": 5}, "note"), ({"version": 0}, "version"), ({"urgent": True}, "urgent"),
                             ([], "body")]:
            resp = await leader.post(f"/api/cases/{case_id}/supervise", json=body_)
            assert resp.status == 400 and (await resp.json())["error"].startswith(f"{field}:"), body_
        assert (await leader.post("/api/cases/nope/supervise", json={})).status == 404
        # A finished case cannot be supervised.
        for step in ("start", "feedback", "verify", "close"):
            assert (await duty.post(f"/api/cases/{case_id}/actions", json={"action": step})).status == 200
        resp = await leader.post(f"/api/cases/{case_id}/supervise", json={})
        assert resp.status == 409 and "only open cases" in (await resp.json())["error"]
        assert (await (await leader.get(f"/api/cases/{case_id}")).json())["can_supervise"] is False
    finally:
        await leader.close()
        await duty.close()


@pytest.fixture
async def held_wall(tmp_path, bus, store) -> AsyncIterator[TestClient]:
    from config import AutoFile

    settings = settings_with_roles(tmp_path)
    policy = AutoFile.model_validate({"min_confidence": 0.8})
    settings = settings.model_copy(update={"cases": settings.cases.model_copy(update={"auto_file": policy})})
    (tmp_path / "evidence").mkdir()
    app = create_app(settings, bus=bus, cases=store, live=None, evidence_dir=tmp_path / "evidence")
    async with wall_client(app) as c:
        yield c


async def test_review_queue_marks_held_and_auto_filed_items_and_skips_deadline_alarms(held_wall, bus, store,
                                                                                    tmp_path):
    from cases.deadlines import DeadlineWatcher
    from config import DeadlineWatch

    auto = make_alarm(1)                                           # confidence 0.9: filed by the worker
    held = Alarm(**{**make_alarm(2).to_dict(), "confidence": 0.5})  # below 0.8: held for review
    filed = build_filer(settings_with_roles(tmp_path), store).file(auto).case
    for a in (auto, held):
        await bus.publish(a)
    deadline_alarm = DeadlineWatcher(DeadlineWatch()).check([filed], filed["deadline_at"] + 1)[0]
    await bus.publish(deadline_alarm)
    await bus.publish(make_alarm(2, phase="cleared"))
    c = await person(held_wall, "monitor")
    try:
        items = (await (await c.get("/api/review")).json())["items"]
        assert [i["id"] for i in items] == ["alarm-1", "alarm-2"]   # the case's deadline alarm is no review item
        first, second = items
        assert first["filing"]["auto"] is True and first["case"]["case_no"] == filed["case_no"]
        assert second["filing"] == {"auto": False, "min_confidence": 0.8, "min_dwell_s": 0.0,
                                    "reason": "置信度 0.50 低于 0.80：待人工复核后立案"}
        assert second["case"] is None
        # 待复核 counts what still waits to be filed; the auto-filed item is counted apart.
        counts = (await (await c.get("/api/review")).json())["counts"]
        assert (counts["free"], counts["unfiled"], counts["auto_filed"]) == (2, 1, 1)
        claimed = await (await c.post("/api/review/claim", json={"current": "alarm-1"})).json()
        assert claimed["item"]["id"] == "alarm-2"
        resp = await c.post("/api/review/alarm-2/decision", json={"decision": "confirm"})
        case = (await resp.json())["case"]
        assert resp.status == 200 and case["alarm_ids"] == ["alarm-1", "alarm-2"]  # same place: attached
        # The scene had cleared before the confirm: the new case carries the camera's video check.
        assert [t["action"] for t in case["timeline"]][-2:] == ["video_check", "review_confirm"]
    finally:
        await c.close()


async def test_a_held_alarm_stays_in_the_review_queue_after_the_bus_history_moved_on(held_wall, bus, store,
                                                                                   tmp_path):
    from cases.worker import CaseWorker
    from config import AutoFile
    from tests.waiting import run_until
    from wall.review_api import HISTORY

    held = Alarm(**{**make_alarm(0).to_dict(), "confidence": 0.5})  # below 0.8: held for review
    cleared = Alarm(**{**held.to_dict(), "phase": "cleared", "at": held.at + 300,
                       "snapshot": "cam-a/2026/alarm-0-after.jpg"})
    worker = CaseWorker(store, build_filer(settings_with_roles(tmp_path), store), bus, consumer="cases-h1",
                        block_ms=100, policy=AutoFile.model_validate({"min_confidence": 0.8}))
    for a in (held, cleared):
        await bus.publish(a)
    await run_until(worker.run, lambda: worker.stats.received == 2)
    assert worker.stats.outcomes == {"held": 1, "ignored": 1}
    # A busy site: more than the queue's window of newer alarms; neither the raise nor the clear is in it now.
    newer = [make_alarm(n) for n in range(1, HISTORY + 2)]
    for a in newer:
        await bus.publish(a)
    window = {e.data["alarm_id"] for e in await bus.history("alarms", count=HISTORY)}
    assert "alarm-0" not in window
    store.hold_alarm(newer[1].to_dict(), held_at=newer[1].at)  # held and still in the window: one item

    a, b = await person(held_wall, "monitor"), await person(held_wall, "monitor2")
    try:
        queue = await (await a.get("/api/review?limit=500")).json()
        ids = [i["id"] for i in queue["items"]]
        assert ids[:3] == ["alarm-0", "alarm-2", "alarm-3"] and ids.count("alarm-2") == 1 and len(ids) == 500
        assert queue["items"][0]["filing"]["auto"] is False and queue["items"][0]["case"] is None
        assert queue["counts"]["free"] == HISTORY + 1  # the window's 500 and the held alarm before it
        ca, cb = await asyncio.gather(a.post("/api/review/claim", json={}), b.post("/api/review/claim", json={}))
        got = {(await ca.json())["item"]["id"], (await cb.json())["item"]["id"]}
        assert got == {"alarm-0", "alarm-2"}  # never the same item
        holder = a if (await ca.json())["item"]["id"] == "alarm-0" else b
        other = b if holder is a else a
        resp = await other.post("/api/review/alarm-0/decision", json={"decision": "confirm"})
        assert resp.status == 409
        resp = await holder.post("/api/review/alarm-0/decision", json={"decision": "confirm"})
        assert resp.status == 200, await resp.text()
        case = (await resp.json())["case"]
        assert case["alarm_ids"] == ["alarm-0"] and case["state"] == "dispatched"
        # The clear the worker recorded (long gone from the history) gives the new case its video check.
        assert [t["action"] for t in case["timeline"]][-2:] == ["video_check", "review_confirm"]
        assert "cam-a/2026/alarm-0-after.jpg" in case["evidence"]
        queue = await (await a.get("/api/review?limit=500")).json()
        assert "alarm-0" not in [i["id"] for i in queue["items"]]
        resp = await holder.post("/api/review/alarm-0/decision", json={"decision": "reject", "reason": "重复报警"})
        assert resp.status == 409 and (await resp.json())["decision"]["decision"] == "confirm"
    finally:
        await a.close()
        await b.close()


async def test_supervise_without_a_body_is_a_supervision_without_a_note(wall, case_id):
    leader = await person(wall, "leader")
    try:
        resp = await leader.post(f"/api/cases/{case_id}/supervise")   # the body is optional (the document says so)
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["case"]["supervise_count"] == 1
        resp = await leader.post(f"/api/cases/{case_id}/supervise", data=b"{not json",
                                 headers={"Content-Type": "application/json"})
        assert resp.status == 400 and (await resp.json())["error"].startswith("body: must be a JSON object")
    finally:
        await leader.close()
