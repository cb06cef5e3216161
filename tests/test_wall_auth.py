"""Login, sessions and access rules: the pure cores with explicit ``now``, then over HTTP on a real bus."""

from __future__ import annotations

import pytest
from yarl import URL

from config import Role, User
from tests.fixtures.wall import PASSWORD, login, make_settings, wall_client
from wall.app import create_app
from wall.auth import LoginLimiter, SessionsFull, SessionStore, is_public
from wall.passwords import hash_password

USER = User(username="zhang", display_name="张三", role=Role.WATCH_OFFICER, password_hash=hash_password("x", n=2**10))


# ------------------------------------------------------------------------------------------------ pure cores


def test_session_lifetime_and_revocation():
    store = SessionStore(ttl_s=100)
    s = store.create(USER, now=1000.0)
    assert len(s.token) >= 40 and s.expires_at == 1100.0
    assert store.get(s.token, now=1099.9) == s
    assert store.get(s.token, now=1100.0) is None and len(store) == 0  # expired sessions are forgotten
    s2 = store.create(USER, now=2000.0)
    assert s2.token != s.token
    assert store.revoke(s2.token) == s2 and store.get(s2.token, now=2000.0) is None
    assert store.get(None, now=0) is None and store.get("forged", now=0) is None
    assert s.user_dict() == {"username": "zhang", "display_name": "张三", "role": "watch_officer"}


def test_session_store_is_bounded_per_user_and_never_evicts_others():
    other = User(username="li", role=Role.LEADER, password_hash=USER.password_hash)
    store = SessionStore(ttl_s=100, max_sessions=4, max_per_user=2)
    theirs = store.create(other, now=0.0)
    tokens = [store.create(USER, now=float(i)).token for i in range(1, 6)]
    assert len(store) == 3 and store.get(theirs.token, now=6) is not None  # one user's logins never end another's
    assert store.get(tokens[2], now=6) is None and store.get(tokens[4], now=6) is not None
    assert store.evicted == tokens[:3]  # the caller closes their sockets
    store.create(other, now=7.0)
    with pytest.raises(SessionsFull):  # full: refused, nobody evicted
        store.create(User(username="wang", role=Role.MONITOR, password_hash=USER.password_hash), now=8.0)
    assert store.purge(now=1000.0) == 4 and len(store) == 0
    with pytest.raises(ValueError, match="ttl_s"):
        SessionStore(ttl_s=0)


def test_login_limiter_window():
    lim = LoginLimiter(max_failures=3, window_s=60)
    for t in (0.0, 10.0, 20.0):
        assert lim.retry_after("k", t) == 0
        lim.failure("k", t)
    assert lim.retry_after("k", 30.0) == pytest.approx(30.0)  # the oldest failure leaves the window at 60
    assert lim.retry_after("other", 30.0) == 0
    assert lim.retry_after("k", 60.0) == 0  # sliding window: one failure aged out
    lim.failure("k", 61.0)
    assert lim.retry_after("k", 62.0) == pytest.approx(8.0)
    lim.success("k")
    assert lim.retry_after("k", 62.0) == 0
    assert lim.refused == 2


@pytest.mark.parametrize(
    "path, public",
    [("/api/health", True), ("/api/login", True), ("/api/openapi.json", True), ("/api/me", False),
     ("/api/cameras", False), ("/api/ws", False), ("/api/live/cam-a", False), ("/evidence/a.jpg", False),
     ("/wall", False), ("/wall/x", False), ("/login", True), ("/static/app.js", True), ("/", True),
     ("/wallpaper", True)],
)
def test_public_paths(path, public):
    assert is_public(path) is public


# ------------------------------------------------------------------------------------------------ over HTTP


@pytest.fixture
async def anon(tmp_path, bus, store, evidence_dir):
    app = create_app(make_settings(tmp_path), bus=bus, cases=store, live=None, evidence_dir=evidence_dir)
    async with wall_client(app) as c:
        yield c


async def test_wrong_password_and_unknown_user_get_401(anon):
    for username, password in (("admin", "wrong"), ("nobody", PASSWORD)):
        resp = await login(anon, username, password)
        assert resp.status == 401
        assert (await resp.json())["error"] == "wrong username or password"
        assert "cw_session" not in resp.cookies
    assert (await anon.get("/api/me")).status == 401


@pytest.mark.parametrize(
    "body, field",
    [(None, "body"), ([1], "body"), ({"password": "x"}, "username"), ({"username": "admin"}, "password"),
     ({"username": "a" * 65, "password": "x"}, "username"), ({"username": "admin", "password": 5}, "password")],
)
async def test_login_body_validated(anon, body, field):
    if body is None:
        resp = await anon.post("/api/login", data="not json", headers={"Content-Type": "application/json"})
    else:
        resp = await anon.post("/api/login", json=body)
    assert resp.status == 400
    assert (await resp.json())["error"].startswith(f"{field}: ")


async def test_no_cookie_401_on_api_and_redirect_on_wall(anon):
    for path in ("/api/cameras", "/api/alarms", "/api/cases", "/api/cases/x", "/api/me", "/api/ws"):
        resp = await anon.get(path)
        assert resp.status == 401, path
        assert await resp.json() == {"error": "login required"}
    resp = await anon.get("/wall?layout=2x2", allow_redirects=False)
    assert resp.status == 302
    location = URL(resp.headers["Location"])
    assert location.path == "/login" and location.query["next"] == "/wall?layout=2x2"
    resp = await anon.get("/", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/wall"
    resp = await anon.get("/login")
    assert resp.status == 200 and "username" in await resp.text()
    assert (await anon.get("/api/health")).status == 200
    assert (await anon.get("/api/openapi.json")).status == 200


async def test_login_sets_strict_httponly_cookie_then_api_and_wall_work(anon):
    resp = await login(anon, "duty")
    assert resp.status == 200
    body = await resp.json()
    assert body["user"] == {"username": "duty", "display_name": "值班员", "role": "watch_officer"}
    set_cookie = resp.headers["Set-Cookie"]
    assert set_cookie.startswith("cw_session=")
    for attr in ("HttpOnly", "SameSite=Strict", "Path=/"):
        assert attr in set_cookie, set_cookie
    assert (await anon.get("/api/cameras")).status == 200
    me = await (await anon.get("/api/me")).json()
    assert me["user"]["username"] == "duty" and me["expires_at"] > 0
    assert me["site_name"] and me["timezone"]  # the wall titles itself with the configured centre
    resp = await anon.get("/wall", allow_redirects=False)
    assert resp.status == 200 and "text/html" in resp.headers["Content-Type"]

    resp = await anon.post("/api/logout")
    assert resp.status == 200
    assert (await anon.get("/api/cameras")).status == 401


async def test_forged_or_old_token_is_refused(anon):
    await login(anon)
    old = anon.session.cookie_jar.filter_cookies(anon.make_url("/"))["cw_session"].value
    await login(anon)  # a new login issues a new token and ends the old session
    new = anon.session.cookie_jar.filter_cookies(anon.make_url("/"))["cw_session"].value
    assert new != old
    anon.session.cookie_jar.clear()
    assert (await anon.get("/api/me", headers={"Cookie": f"cw_session={old}"})).status == 401
    assert (await anon.get("/api/me", headers={"Cookie": "cw_session=forged"})).status == 401
    assert (await anon.get("/api/me", headers={"Cookie": f"cw_session={new}"})).status == 200


async def test_failed_logins_are_rate_limited_per_user_and_address(anon):
    for _ in range(10):
        assert (await login(anon, "admin", "wrong")).status == 401
    resp = await login(anon, "admin", PASSWORD)  # even the right password waits out the window
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) >= 1
    assert "too many failed logins" in (await resp.json())["error"]
    assert (await login(anon, "duty", PASSWORD)).status == 200  # other usernames are not affected


async def test_cross_origin_post_and_websocket_refused(anon):
    resp = await anon.post("/api/login", json={"username": "admin", "password": PASSWORD},
                           headers={"Origin": "http://evil.example"})
    assert resp.status == 403 and "cross-origin" in (await resp.json())["error"]
    origin = f"http://{anon.host}:{anon.port}"
    resp = await anon.post("/api/login", json={"username": "admin", "password": PASSWORD}, headers={"Origin": origin})
    assert resp.status == 200
    resp = await anon.get("/api/ws", headers={
        "Origin": "http://evil.example", "Upgrade": "websocket", "Connection": "Upgrade",
        "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    })
    assert resp.status == 403
