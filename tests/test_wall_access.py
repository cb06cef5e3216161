"""The access policy on the real wall server (real Redis bus, real SQLite case store): every registered route has
a rule, each role is refused (403 naming role and need) what it may not do and allowed what it may, CSRF tokens on
state-changing requests, role-checked WebSocket messages, Origin-checked upgrades, and the audit log of it all."""

from __future__ import annotations

import asyncio
import json
import re

import aiohttp
import aiohttp.web
import pytest

from cases.audit import AuditEntry, AuditQuery
from cases.store import CaseStore, StoreError
from config import Role, User
from tests import signin
from tests.fixtures.cases import insert_case
from tests.fixtures.factories import make_alarm
from tests.fixtures.wall import PASSWORD, wall_client
from tests.waiting import eventually
from wall import state
from wall.access import CSRF_HEADER, ROUTES, SIGNED_IN, WS_MESSAGES, registered_routes
from wall.auth import PUBLIC_API
from wall.screens_api import SCREENS
from wall.sessions import RedisSessions

pytestmark = pytest.mark.timeout(90)
TIMEOUT = 10
USERS = {"duty": Role.WATCH_OFFICER, "monitor": Role.MONITOR, "leader": Role.LEADER, "admin": Role.ADMIN,
         "squad": Role.UNIT}
W, M, L, U = "watch_officer", "monitor", "leader", "unit"

# (method, path, JSON body or None, roles allowed besides admin)
CASES: list[tuple[str, str, dict | None, set[str]]] = [
    ("GET", "/api/cameras", None, {W, M, L}),
    ("GET", "/api/screens", None, {W, M, L}),
    ("GET", "/api/alarms", None, {W, M, L}),
    ("GET", "/api/map", None, {W, M, L}),
    ("GET", "/api/map/basemap", None, {W, M, L, U}),
    ("GET", "/api/map/tiles/14/13653/6791.png", None, {W, M, L, U}),
    ("GET", "/api/map/convert?lon=120.15&lat=30.27&to=display", None, {W, M, L}),
    ("GET", "/api/broadcasts", None, {W, M, L}),
    ("GET", "/api/cases", None, {W, M, L, U}),
    ("GET", "/api/me", None, {W, M, L, U}),
    ("PUT", "/api/screens/main/layout", {"layout": "2x2"}, {W, L}),
    ("PUT", "/api/screens/main/tiles/0", {"camera": "cam-a"}, {W, L}),
    ("POST", "/api/screens/main/tour/start", {"tour": "nope"}, {W, L}),
    ("POST", "/api/screens/main/tour/pause", {}, {W, L}),
    ("POST", "/api/screens/main/tour/resume", {}, {W, L}),
    ("POST", "/api/screens/main/tour/stop", {}, {W, L}),
    ("POST", "/api/alarms/alarm-none/ack", None, {W, L}),
    ("GET", "/api/review", None, {M, L}),
    ("POST", "/api/review/claim", {}, {M, L}),
    ("POST", "/api/review/alarm-none/decision", {"decision": "confirm"}, {M, L}),
    ("GET", "/api/review/alarm-none/labels", None, {M, L}),
    ("PUT", "/api/review/alarm-none/labels", {"boxes": []}, {M, L}),
    ("POST", "/api/cases/case-none/actions", {"action": "accept"}, {W, M}),
    ("POST", "/api/cases/case-none/actions", {"action": "feedback"}, {W, U}),
    ("POST", "/api/cases/case-none/photos", None, {W, U}),
    ("POST", "/api/cases/case-none/snapshot", None, {W, M, L}),
    ("POST", "/api/cases/case-none/actions", {"action": "extend", "extension": {"value": 1, "unit": "days"}}, {L}),
    ("POST", "/api/cases/case-none/actions", {"action": "void"}, {W, L}),
    ("POST", "/api/cases/case-none/supervise", {}, {L}),
    ("POST", "/api/plans/flood/invoke", None, {L}),
    ("POST", "/api/plans/flood/end", None, {L}),
    ("POST", "/api/broadcasts", {"target": "all", "text": "请注意"}, {L}),
    ("POST", "/api/clips", None, {L}),
    ("GET", "/api/webhooks", None, set()),
    ("GET", "/api/audit", None, set()),
    ("GET", "/api/audit/verify", None, set()),
    ("GET", "/api/recordings/cam-a/export", None, {M, L}),
    ("GET", "/api/cases/case-none/recordings", None, {M, L}),
    ("GET", "/api/admin/cameras", None, set()),
    ("POST", "/api/admin/cameras", {}, set()),
    ("PUT", "/api/admin/cameras/nope", {}, set()),
    ("PATCH", "/api/admin/cameras/nope", {}, set()),
    ("DELETE", "/api/admin/cameras/nope", None, set()),
    ("POST", "/api/admin/cameras/test", {}, set()),
    ("GET", "/api/admin/cameras/nope/candidates", None, set()),
    ("GET", "/api/admin/users", None, set()),
    ("POST", "/api/admin/users", {}, set()),
    ("PUT", "/api/admin/users/nope", {}, set()),
    ("GET", "/api/admin/config", None, set()),
    ("POST", "/api/admin/config/import", {}, set()),
    ("GET", "/api/admin/models", None, set()),
    ("POST", "/api/admin/models/v0001-20260311-102000/promote", None, set()),
    ("POST", "/api/admin/models/rollback", None, set()),
    ("POST", "/api/admin/models/v0001-20260311-102000/shadow", None, set()),
]


def test_every_role_restricted_route_is_in_the_role_table():
    """Each route a role may be refused is exercised by the parametrised test below."""
    exercised = {(method, path) for method, path, _, _ in CASES}
    untested = []
    for (method, pattern), rule in ROUTES.items():
        if rule.public or (rule.roles is None and type(rule).needs is type(SIGNED_IN).needs):
            continue
        shape = re.compile(re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(pattern)) + "$")
        if not any(m == method and shape.match(p) for m, p in exercised):
            untested.append(f"{method} {pattern}")
    assert not untested, f"add these to CASES: {untested}"


@pytest.fixture
async def server(screens_app):
    async with wall_client(screens_app) as c:
        await asyncio.wait_for(screens_app[SCREENS].ready.wait(), TIMEOUT)
        await asyncio.wait_for(screens_app[state.HUB].ready.wait(), TIMEOUT)
        yield c


async def as_user(server, username: str) -> aiohttp.ClientSession:
    """A browser of its own (cookie jar, CSRF header) signed in as ``username``."""
    session = aiohttp.ClientSession(base_url=str(server.make_url("/")), cookie_jar=aiohttp.CookieJar(unsafe=True))
    resp = await signin.login(session, username, PASSWORD)
    assert resp.status == 200, await resp.text()
    return session


async def test_every_registered_route_has_exactly_one_rule(screens_app):
    registered = set(registered_routes(screens_app))
    missing = sorted(registered - set(ROUTES))
    assert not missing, f"routes without an access rule in wall.access.ROUTES: {missing}"
    stale = sorted(set(ROUTES) - registered)
    assert not stale, f"rules for routes nobody registers: {stale}"
    assert len(registered) > 40
    assert {"ping", "resume", *screens_app[state.HUB].actions} == set(WS_MESSAGES)
    # the authentication middleware's short list of session-free API paths agrees with the table
    assert {path for (_, path), rule in ROUTES.items() if rule.public and path.startswith("/api/")} == PUBLIC_API


@pytest.mark.parametrize("username", list(USERS))
async def test_each_role_is_refused_what_it_may_not_do_and_allowed_what_it_may(server, username):
    role = USERS[username].value
    wrong = []
    async with await as_user(server, username) as browser:
        for method, path, body, allowed in CASES:
            resp = await browser.request(method, path, json=body)
            text = await resp.text(errors="replace")  # a map tile is a PNG
            may = role == "admin" or role in allowed
            # "allowed" means past the policy; a pure core may still refuse (督办 is the leader's own, not admin's)
            policy_refused = resp.status == 403 and (f"role {role} may not" in text or "CSRF" in text)
            if may and (resp.status == 401 or policy_refused):
                wrong.append(f"{role} refused {method} {path} {body}: {resp.status} {text}")
            if not may:
                error = json.loads(text).get("error", "") if resp.status == 403 else ""
                if resp.status != 403 or f"role {role} may not" not in error or "needs" not in error:
                    wrong.append(f"{role} not refused {method} {path} {body}: {resp.status} {text}")
    assert not wrong, "\n".join(wrong)


async def test_refusal_names_the_role_and_what_it_needs(server):
    async with await as_user(server, "monitor") as browser:
        resp = await browser.post("/api/plans/flood/invoke")
        assert resp.status == 403
        assert (await resp.json())["error"] == ("role monitor may not 启动预案 invoke an emergency plan; "
                                                "needs admin, leader for plan flood")
        resp = await browser.post("/api/cases/case-none/actions", json={"action": "close"})
        assert (await resp.json())["error"].endswith("needs admin, leader, watch_officer for case action close")
        resp = await browser.get("/api/audit")
        assert resp.status == 403 and (await resp.json())["error"].endswith("needs admin")


async def test_state_changing_requests_need_the_sessions_csrf_token(server):
    async with await as_user(server, "duty") as browser:
        token = browser.headers.pop(CSRF_HEADER)
        resp = await browser.put("/api/screens/main/layout", json={"layout": "3x3"})
        assert resp.status == 403 and (await resp.json())["error"].startswith("CSRF token missing")
        resp = await browser.put("/api/screens/main/layout", json={"layout": "3x3"},
                                 headers={CSRF_HEADER: token[:-2] + "xx"})
        assert resp.status == 403 and (await resp.json())["error"].startswith("CSRF token wrong")
        async with await as_user(server, "leader") as other:  # another session's token is wrong here too
            resp = await browser.put("/api/screens/main/layout", json={"layout": "3x3"},
                                     headers={CSRF_HEADER: other.headers[CSRF_HEADER]})
            assert resp.status == 403
        me = await (await browser.get("/api/me")).json()  # reads need no token; /api/me hands it out
        assert me["csrf_token"] == token
        resp = await browser.put("/api/screens/main/layout", json={"layout": "3x3"}, headers={CSRF_HEADER: token})
        assert resp.status == 200, await resp.text()
        assert (await browser.post("/api/logout")).status == 403  # logout changes state too
        assert (await browser.post("/api/logout", headers={CSRF_HEADER: token})).status == 200


async def test_redis_sessions_carry_the_csrf_token(redis_url):
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_url)
    try:
        sessions = RedisSessions(client, "cw-test-csrf", 60.0)
        user = User(username="zhang", role=Role.LEADER, password_hash="scrypt$2$1$1$00$00")
        created = await sessions.create(user, 1000.0)
        loaded = await sessions.get(created.token, 1001.0)
        assert loaded is not None and len(created.csrf_token) >= 32 and loaded.csrf_token == created.csrf_token
        again = await sessions.create(user, 1000.0)
        assert again.csrf_token != created.csrf_token
    finally:
        await client.aclose()


async def _frame(ws, kind: str) -> dict:
    while True:
        msg = await ws.receive(timeout=TIMEOUT)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        frame = json.loads(msg.data)
        if frame["type"] == kind:
            return frame


async def test_websocket_messages_are_checked_by_role_and_the_socket_stays_open(server, screens_app, bus):
    assert WS_MESSAGES["ack"].roles == frozenset({Role.WATCH_OFFICER, Role.LEADER})
    await bus.publish(make_alarm(7, camera="cam-e"))
    async with await as_user(server, "monitor") as browser, browser.ws_connect("/api/ws") as ws:
        await _frame(ws, "hello")
        await ws.send_json({"type": "ack", "alarm_id": "alarm-7"})
        error = await _frame(ws, "error")
        assert error["error"] == "role monitor may not send ack; needs admin, leader, watch_officer"
        await ws.send_json({"type": "ping"})
        assert await _frame(ws, "pong") == {"type": "pong"}
    async with await as_user(server, "duty") as browser, browser.ws_connect("/api/ws") as ws:
        await _frame(ws, "hello")
        await ws.send_json({"type": "ack", "alarm_id": "alarm-none"})
        assert "unknown alarm" in (await _frame(ws, "error"))["error"]

        async def popped():
            return (await (await browser.get("/api/screens/main")).json())["screen"]["alarm"]

        await eventually(popped, timeout=TIMEOUT, what="the alarm pop-up on main")
        await ws.send_json({"type": "ack", "alarm_id": "alarm-7"})
        result = await _frame(ws, "ack_result")
        assert result["alarm_id"] == "alarm-7"
    store = screens_app[state.CASES]
    entries, _ = await asyncio.to_thread(store.search_audit, AuditQuery(action="alarm.ack"))
    seen = {(e.actor, e.target, e.outcome, e.details.get("via")) for e in entries}
    assert ("monitor", "alarm-7", 403, "websocket") in seen
    assert ("duty", "alarm-none", 404, "websocket") in seen
    assert ("duty", "alarm-7", 200, "websocket") in seen


@pytest.mark.parametrize("path", ["/api/ws", "/api/live/cam-a"])
async def test_cross_origin_websocket_upgrade_is_refused_even_signed_in(server, path):
    async with await as_user(server, "admin") as browser:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await browser.ws_connect(path, headers={"Origin": "http://evil.example"})
        assert refused.value.status == 403
    async with aiohttp.ClientSession(base_url=str(server.make_url("/"))) as anonymous:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await anonymous.ws_connect(path)
        assert refused.value.status == 401


async def test_control_actions_are_audited_and_only_the_admin_searches(server, store):
    case_id = insert_case(store, 1, state="dispatched")
    async with await as_user(server, "duty") as duty:
        assert (await duty.put("/api/screens/main/layout", json={"layout": "3x3"})).status == 200
        assert (await duty.post("/api/plans/flood/invoke")).status == 403
        resp = await duty.post(f"/api/cases/{case_id}/actions", json={"action": "start", "note": "到场"})
        assert resp.status == 200
    async with aiohttp.ClientSession(base_url=str(server.make_url("/"))) as anon:
        assert (await signin.login(anon, "leader", "wrong password")).status == 401
    async with await as_user(server, "leader") as leader:
        assert (await leader.post("/api/plans/flood/invoke")).status == 200
        assert (await leader.get("/api/audit")).status == 403
    async with await as_user(server, "admin") as admin:
        body = await (await admin.get("/api/audit", params={"actor": "duty"})).json()
        rows = [(e["action"], e["target"], e["outcome"]) for e in body["entries"]]
        assert rows == [("case.start", case_id, 200), ("plan.invoke", "flood", 403), ("screen.layout", "main", 200),
                        ("login", "", 200)]
        assert body["entries"][0]["details"] == {"request": {"action": "start", "note": "到场"},
                                                 "case_no": "CW20260311-0001", "state": "handling"}
        layout = body["entries"][2]
        assert layout["role"] == "watch_officer" and layout["details"]["request"] == {"layout": "3x3"}
        assert layout["client"] == "127.0.0.1" and layout["at"] > 0
        assert "role watch_officer may not" in body["entries"][1]["details"]["refused"]
        plans = (await (await admin.get("/api/audit", params={"action": "plan.invoke", "outcome": 200})).json())
        [invoked] = plans["entries"]
        assert invoked["actor"] == "leader" and invoked["details"]["name"] == "防汛应急"
        refused = (await (await admin.get("/api/audit", params={"outcome": 403})).json())["entries"]
        assert [(e["actor"], e["action"]) for e in refused] == [("duty", "plan.invoke")]
        logins = (await (await admin.get("/api/audit", params={"action": "login", "actor": "leader"})).json())
        assert [(e["outcome"], "password" in json.dumps(e)) for e in logins["entries"]] == [(200, False), (401, False)]
        found = await (await admin.get("/api/audit", params={"q": "3x3"})).json()
        assert [e["action"] for e in found["entries"]] == ["screen.layout"]
        page = await (await admin.get("/api/audit", params={"limit": 2, "offset": 1})).json()
        assert len(page["entries"]) == 2 and page["total"] >= 6
        resp = await admin.get("/api/audit", params={"since": "yesterday"})
        assert resp.status == 400 and "since" in (await resp.json())["error"]


def test_audit_log_is_append_only_and_searchable(cases_url):
    store = CaseStore.open(cases_url)
    try:
        assert store.schema_version() >= 6  # the audit log's migration
        for i, (actor, action, target) in enumerate([("duty", "screen.layout", "main"), ("leader", "plan.invoke",
                                                     "flood"), ("duty", "case.dispatch", "case-001")]):
            store.append_audit(AuditEntry(at=1000.0 + i, actor=actor, role="x", action=action, target=target,
                                          outcome=200, client="127.0.0.1", details={"备注": f"第{i}次"}))
        entries, total = store.search_audit(AuditQuery(actor="duty"))
        assert total == 2 and [e.action for e in entries] == ["case.dispatch", "screen.layout"]
        assert store.search_audit(AuditQuery(target="case-"))[1] == 1
        assert store.search_audit(AuditQuery(since=1001.0, until=1002.0))[0][0].actor == "leader"
        assert store.search_audit(AuditQuery(q="第2次"))[0][0].target == "case-001"
        assert store.search_audit(AuditQuery(q="100%"))[1] == 0  # LIKE wildcards are literal
        refused = ["UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log"]
        if store.backend == "postgresql":
            refused.append("TRUNCATE audit_log")
        for sql in refused:
            with pytest.raises(StoreError, match="append-only"), store.transaction() as tx:
                tx._c.execute(sql)
        assert store.search_audit(AuditQuery())[1] == 3
    finally:
        store.close()
    reopened = CaseStore.open(cases_url)  # migrations are not applied twice
    try:
        assert reopened.search_audit(AuditQuery())[1] == 3
    finally:
        reopened.close()


async def test_bad_input_is_audited_with_the_status_the_client_got(server):
    async with await as_user(server, "duty") as duty:
        resp = await duty.put("/api/screens/main/tiles/99x", json={"camera": "cam-a"})
        assert resp.status == 400
    async with await as_user(server, "admin") as admin:
        body = await (await admin.get("/api/audit", params={"action": "screen.tile"})).json()
        assert [(e["actor"], e["target"], e["outcome"]) for e in body["entries"]] == [("duty", "main/99x", 400)]


async def test_a_route_without_a_rule_is_refused_not_served(screens_app):
    async def secret(request):
        return aiohttp.web.json_response({"secret": True})

    screens_app.router.add_get("/api/new-thing", secret)
    assert ("GET", "/api/new-thing") in set(registered_routes(screens_app)) - set(ROUTES)
    async with wall_client(screens_app) as client:
        assert (await signin.login(client, "admin", PASSWORD)).status == 200
        resp = await client.get("/api/new-thing")
        assert resp.status == 500 and "has no access rule" in (await resp.json())["error"]
