"""The case office's API on the real wall server (real Redis bus; SQLite and PostgreSQL case stores): the desk
list's filters, keyset paging and per-state counts, every bad parameter a 400 naming it; unit users scoped to
their units (list, detail, actions, pictures and evidence files of another unit's case answer 404); field photos
resized with the EXIF time kept, non-images, oversize uploads and a spent budget refused with Chinese messages."""

from __future__ import annotations

import io
import os
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from datetime import time as dt_time
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from PIL import Image

from cases.audit import AuditQuery
from cases.store import CaseStore
from config import ConfigError, parse_settings
from tests import signin
from tests.fixtures.wall import PASSWORD, wall_client
from tests.fixtures.wall import PASSWORD_HASH as _HASH
from wall import state
from wall.app import create_app

SH = ZoneInfo("Asia/Shanghai")
NOW = time.time()  # the session cookie's expiry is real time: the server's clock must be near it
DAY0 = (datetime.fromtimestamp(NOW, SH) - timedelta(days=30)).date()
T0 = datetime.combine(DAY0, dt_time(9, 0), SH).timestamp()

UNITS = ("hubin-squad", "qingbo-squad", "sanitation")
STREETS = {"hubin-squad": "湖滨街道", "qingbo-squad": "清波街道", "sanitation": "湖滨街道"}


def office_settings(tmp_path, **field_photos):
    users = [
        {"username": "duty", "display_name": "值班员", "role": "watch_officer", "password_hash": _HASH},
        {"username": "leader", "display_name": "指挥长", "role": "leader", "password_hash": _HASH},
        {"username": "squad", "display_name": "湖滨中队", "role": "unit", "password_hash": _HASH,
         "units": ["hubin-squad"]},
    ]
    return parse_settings({
        "site_name": "测试中心",
        "storage": {"data_dir": str(tmp_path / "var")},
        "users": users,
        "cases": {"field_photos": field_photos} if field_photos else {},
        "cameras": [{"id": "cam-a", "name": "解放路人行道", "url": "rtsp://127.0.0.1:1/a",
                     "position": {"lon": 120.15, "lat": 30.27, "address": "解放路88号", "street": "湖滨街道"}}],
    })


def put_case(store: CaseStore, n: int, *, unit: str, state: str = "dispatched", reported: float | None = None,
             deadline_s: float = 86400.0, title: str = "", supervise: bool = False) -> str:
    at = T0 + n * 60 if reported is None else reported
    case = {
        "id": f"case-{n:05d}", "case_no": f"CW20260311-{n:05d}", "source": "camera", "kind": "事件", "code": "0501",
        "category_name": "无照经营游商", "title": title or f"解放路 游商 {n}", "state": state, "urgency": "一般",
        "camera_id": "cam-a", "camera_name": "解放路人行道", "zone_id": "pavement", "event": "vending",
        "address": f"解放路{n}号", "street": STREETS[unit], "community": "东坡社区", "grid_code": "33010200100101",
        "unit_id": unit, "unit_name": unit, "reported_at": at, "deadline_at": at + deadline_s,
        "deadline_iso": "2026-03-12T09:00:00+08:00", "time_limit": {"value": 1, "unit": "work_days", "calendar": "x"},
    }
    with store.transaction() as tx:
        tx.insert_case(case)
        tx.append_timeline(case["id"], at=at, state=state, action="report", actor="system")
        tx.add_evidence(case["id"], f"cam-a/2026/case-{n}.jpg", kind="snapshot", at=at)
        if supervise:
            tx.supervise(case["id"], at=at, state=state, actor="leader(leader)")
    return case["id"]


@pytest.fixture
def store(cases_url):
    s = CaseStore.open(cases_url)
    yield s
    s.close()


@pytest.fixture
async def wall(tmp_path, bus, store) -> AsyncIterator[TestClient]:
    (tmp_path / "evidence" / "cam-a" / "2026").mkdir(parents=True)
    app = create_app(office_settings(tmp_path, per_user_per_hour=4, max_mb=1), bus=bus, cases=store, live=None,
                     evidence_dir=tmp_path / "evidence")
    app[state.CLOCK] = lambda: NOW
    async with wall_client(app) as c:
        yield c


async def browser(client: TestClient, username: str) -> aiohttp.ClientSession:
    session = aiohttp.ClientSession(base_url=str(client.make_url("/")), cookie_jar=aiohttp.CookieJar(unsafe=True))
    assert (await signin.login(session, username, PASSWORD)).status == 200
    return session


async def get(session: aiohttp.ClientSession, **params) -> dict:
    resp = await session.get("/api/cases", params={k: str(v) for k, v in params.items()})
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_filters_counts_and_keyset_pages(wall, store):
    for n in range(1, 31):
        unit = UNITS[n % 3]
        state = "closed" if n % 5 == 0 else ("handling" if n % 5 == 1 else "dispatched")
        # n 1..10: overdue at NOW; 11..20: 95% of the limit gone (即将超期); 21..30: fresh
        if n <= 10:
            put_case(store, n, unit=unit, state=state, deadline_s=3600)
        elif n <= 20:
            put_case(store, n, unit=unit, state=state, reported=NOW - 9500, deadline_s=10000)
        else:
            put_case(store, n, unit=unit, state=state, reported=NOW - 100, deadline_s=86400, supervise=n == 22)
    async with await browser(wall, "duty") as duty:
        body = await get(duty, limit=7)
        assert body["total"] == 30 and sum(body["counts"].values()) == 30
        assert body["counts"] == {"closed": 6, "handling": 6, "dispatched": 18}
        # keyset pages: every case once, newest first, whatever the page size
        seen, cursor = [], None
        while True:
            page = await get(duty, limit=7, **({"cursor": cursor} if cursor else {}))
            seen += [c["case_no"] for c in page["cases"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == 30 and len(set(seen)) == 30
        reported = [c["reported_at"] for c in store.list_cases(limit=100, now=NOW)[0]]
        assert seen == [c["case_no"] for c in store.list_cases(limit=100, now=NOW)[0]]
        assert reported == sorted(reported, reverse=True)
        # by state (several), counts still for every state
        body = await get(duty, state="handling,closed")
        assert body["total"] == 12 and {c["state"] for c in body["cases"]} == {"handling", "closed"}
        assert body["counts"]["dispatched"] == 18
        # deadline stages (open cases only)
        overdue = await get(duty, deadline="overdue", limit=100)
        assert {c["case_no"] for c in overdue["cases"]} == {f"CW20260311-{n:05d}" for n in range(1, 11) if n % 5}
        assert {c["deadline_stage"] for c in overdue["cases"]} == {"overdue"}
        near = await get(duty, deadline="near", limit=100)
        assert {c["case_no"] for c in near["cases"]} == {f"CW20260311-{n:05d}" for n in range(11, 21) if n % 5}
        normal = await get(duty, deadline="normal", limit=100)
        assert {c["case_no"] for c in normal["cases"]} == {f"CW20260311-{n:05d}" for n in range(21, 31) if n % 5}
        # 督办, unit, street, search, sort by deadline, dates
        assert [c["case_no"] for c in (await get(duty, supervised=1))["cases"]] == ["CW20260311-00022"]
        body = await get(duty, unit_id="qingbo-squad", limit=100)
        assert body["total"] == 10 and {c["unit_id"] for c in body["cases"]} == {"qingbo-squad"}
        body = await get(duty, street="清波街道")
        assert body["total"] == 10
        assert [c["case_no"] for c in (await get(duty, q="解放路17号"))["cases"]] == ["CW20260311-00017"]
        assert (await get(duty, q="CW20260311-0002"))["total"] == 10  # 00020..00029
        body = await get(duty, sort="deadline", limit=100)
        deadlines = [c["deadline_at"] for c in body["cases"]]
        assert deadlines == sorted(deadlines)
        assert (await get(duty, **{"from": DAY0.isoformat(), "to": DAY0.isoformat()}))["total"] == 10
        # a cursor is bound to its sort
        first = await get(duty, limit=5)
        resp = await duty.get("/api/cases", params={"cursor": first["next_cursor"], "sort": "deadline"})
        assert resp.status == 400 and (await resp.json())["error"].startswith("cursor: ")


@pytest.mark.parametrize("query, field", [
    ("state=lost", "state"), ("state=closed,nope", "state"), ("deadline=late", "deadline"),
    ("supervised=maybe", "supervised"), ("sort=random", "sort"), ("unit_id=nobody", "unit_id"),
    ("from=2026-13-01", "from"), ("to=yesterday", "to"), ("from=2026-03-12&to=2026-03-11", "to"),
    ("cursor=%21%21", "cursor"), ("cursor=abc&offset=5", "cursor"), ("grid=33x", "grid"),
    ("street=" + "长" * 65, "street"), ("q=" + "x" * 65, "q"), ("q=a%00b", "q"), ("limit=0", "limit"),
    ("category=事件/9999", "category"), ("camera_id=a%20b", "camera_id"),
])
async def test_every_bad_list_parameter_is_a_400_naming_it(wall, query, field):
    async with await browser(wall, "duty") as duty:
        resp = await duty.get(f"/api/cases?{query}")
        assert resp.status == 400, await resp.text()
        assert (await resp.json())["error"].startswith(f"{field}: ")


def jpeg(width: int = 3000, height: int = 2000, *, taken: str | None = "2026:03:11 10:20:30") -> bytes:
    image = Image.new("RGB", (width, height), (90, 140, 60))
    exif = Image.Exif()
    if taken:
        exif.get_ifd(0x8769)[0x9003] = taken
    out = io.BytesIO()
    image.save(out, "JPEG", quality=70, exif=exif)
    return out.getvalue()


def form(data: bytes, name: str = "photo.jpg", note: str = "") -> aiohttp.FormData:
    f = aiohttp.FormData()
    f.add_field("photo", data, filename=name, content_type="image/jpeg")
    if note:
        f.add_field("note", note)
    return f


async def test_unit_user_sees_and_works_only_their_units_cases(wall, store, tmp_path):
    mine = put_case(store, 1, unit="hubin-squad")
    other = put_case(store, 2, unit="qingbo-squad")
    for n in (1, 2):
        (tmp_path / "evidence" / "cam-a" / "2026" / f"case-{n}.jpg").write_bytes(jpeg(64, 48))
    async with await browser(wall, "squad") as squad:
        body = await get(squad, limit=100)
        assert [c["id"] for c in body["cases"]] == [mine] and body["counts"] == {"dispatched": 1}
        resp = await squad.get("/api/cases", params={"unit_id": "qingbo-squad"})
        assert resp.status == 400 and (await resp.json())["error"].startswith("unit_id: ")
        detail = await (await squad.get(f"/api/cases/{mine}")).json()
        assert [a["action"] for a in detail["allowed_actions"]] == ["start", "feedback", "return"]
        assert detail["location"]["geo"] == "geo:30.27,120.15"
        for path in (f"/api/cases/{other}", "/evidence/cam-a/2026/case-2.jpg"):
            resp = await squad.get(path)
            assert resp.status == 404, (path, resp.status)
        assert (await squad.get("/evidence/cam-a/2026/case-1.jpg")).status == 200
        resp = await squad.post(f"/api/cases/{other}/actions", json={"action": "start"})
        assert resp.status == 404
        resp = await squad.post(f"/api/cases/{other}/photos", data=form(jpeg(100, 80)))
        assert resp.status == 404
        assert store.get_case(other, now=NOW)["state"] == "dispatched"
        # the centre's pages and feeds are not theirs
        for path in ("/api/cameras", "/api/alarms", "/api/stats", "/api/screens"):
            resp = await squad.get(path)
            assert resp.status == 403 and "role unit may not" in (await resp.json())["error"], path
        # their own case: 签收处置 and 反馈, each audited
        resp = await squad.post(f"/api/cases/{mine}/actions", json={"action": "start", "version": detail["version"]})
        assert resp.status == 200, await resp.text()
    entries, _ = store.search_audit(AuditQuery(actor="squad"))
    outcomes = {(e.action, e.outcome) for e in entries}
    assert {("case.start", 200), ("case.start", 404), ("case.photo", 404), ("evidence.read", 404)} <= outcomes


async def test_field_photo_resized_exif_time_kept_bad_uploads_refused(wall, store, tmp_path):
    case_id = put_case(store, 1, unit="hubin-squad")
    async with await browser(wall, "squad") as squad:
        resp = await squad.post(f"/api/cases/{case_id}/photos", data=form(jpeg(), note="已清理"))
        assert resp.status == 201, await resp.text()
        photo = (await resp.json())["photo"]
        assert photo["taken_at"] == "2026-03-11T10:20:30"
        kept = Image.open(tmp_path / "evidence" / photo["path"])
        assert max(kept.size) == 1600 and kept.size == (1600, 1067) and kept.format == "JPEG"
        assert (await squad.get(photo["url"])).status == 200  # the unit reads its own photo back
        case = store.get_case(case_id, now=NOW)
        assert case["photos"][0]["taken_at"] == "2026-03-11T10:20:30" and case["photos"][0]["by"] == "squad(unit)"
        assert case["timeline"][-1]["action"] == "photo"
        assert "拍摄于 2026-03-11 10:20:30" in case["timeline"][-1]["note"]
        assert "已清理" in case["timeline"][-1]["note"] and photo["path"] in case["evidence"]
        # not an image
        resp = await squad.post(f"/api/cases/{case_id}/photos", data=form(b"%PDF-1.4 not a photo", "a.pdf"))
        assert resp.status == 400
        body = await resp.json()
        assert body["error"].startswith("photo: ") and "图片" in body["error_zh"]
        # over max_mb (1 MB here)
        big = Image.frombytes("RGB", (1400, 1000), os.urandom(1400 * 1000 * 3))
        out = io.BytesIO()
        big.save(out, "PNG")
        assert len(out.getvalue()) > 1024 * 1024
        resp = await squad.post(f"/api/cases/{case_id}/photos", data=form(out.getvalue(), "big.png"))
        assert resp.status == 413 and "MB" in (await resp.json())["error_zh"]
        # the budget (4 an hour here; every attempt read counts, the non-image too): the 5th is refused
        resp = await squad.post(f"/api/cases/{case_id}/photos", data=form(jpeg(200, 100, taken=None)))
        assert resp.status == 201 and (await resp.json())["photo"]["taken_at"] is None
        resp = await squad.post(f"/api/cases/{case_id}/photos", data=form(jpeg(200, 100)))
        assert resp.status == 201
        resp = await squad.post(f"/api/cases/{case_id}/photos", data=form(jpeg(200, 100)))
        assert resp.status == 429 and "每小时最多 4 张" in (await resp.json())["error_zh"]
    assert len(store.get_case(case_id, now=NOW)["photos"]) == 3


async def test_snapshot_without_live_video_is_a_clear_409(wall, store):
    case_id = put_case(store, 1, unit="hubin-squad")
    async with await browser(wall, "duty") as duty:
        resp = await duty.post(f"/api/cases/{case_id}/snapshot")
        assert resp.status == 409 and "无法抓拍" in (await resp.json())["error_zh"]


def test_a_unit_user_of_an_unknown_unit_stops_start_up(tmp_path, store):
    settings = office_settings(tmp_path)
    users = [u.model_dump() for u in settings.users] + [
        {"username": "ghost", "role": "unit", "password_hash": _HASH, "units": ["hubin-squad", "no-such-unit"]}]
    bad = parse_settings({**settings.model_dump(mode="json", exclude={"users"}), "users": users})
    with pytest.raises(ConfigError) as err:
        create_app(bad, bus=None, cases=store, live=None, evidence_dir=tmp_path)
    assert "users[3].units[1]: unknown unit 'no-such-unit'" in str(err.value)
    with pytest.raises(ValueError, match="units: a unit user needs at least one unit id"):
        parse_settings({**settings.model_dump(mode="json", exclude={"users"}),
                        "users": [{"username": "u", "role": "unit", "password_hash": _HASH}]})


class _OneCameraLive:
    """A live hub of one camera that serves a real H.264 fMP4 clip (the shape ``wall.live_protocol`` asks for)."""

    def __init__(self, clip):
        self.clip = clip
        self.closed = 0

    def has_camera(self, camera_id: str) -> bool:
        return camera_id == "cam-a"

    async def open(self, camera_id: str, *, queue_size: int = 256):
        hub = self

        class Viewer:
            mime, init_segment, transcoded_from, dropped = hub.clip.mime, hub.clip.init, None, 0

            async def next_fragment(self) -> bytes:
                return hub.clip.fragments[0]

            def close(self) -> None:
                hub.closed += 1

        return Viewer()


async def test_site_snapshot_takes_the_cameras_current_picture(tmp_path, bus, store):
    from tests.fixtures.browser import make_fmp4_clip

    case_id = put_case(store, 1, unit="hubin-squad")
    live = _OneCameraLive(make_fmp4_clip(1.0, width=320, height=180))
    (tmp_path / "evidence").mkdir()
    app = create_app(office_settings(tmp_path), bus=bus, cases=store, live=live, evidence_dir=tmp_path / "evidence")
    app[state.CLOCK] = lambda: NOW
    async with wall_client(app) as client:
        async with await browser(client, "duty") as duty:
            resp = await duty.post(f"/api/cases/{case_id}/snapshot")
            assert resp.status == 201, await resp.text()
            photo = (await resp.json())["photo"]
            assert photo["kind"] == "site_snapshot" and photo["path"].startswith(f"snapshots/{case_id}/")
        async with await browser(client, "squad") as squad:  # a unit may not take one (the desk checks)
            assert (await squad.post(f"/api/cases/{case_id}/snapshot")).status == 403
    kept = Image.open(tmp_path / "evidence" / photo["path"])
    assert kept.size == (320, 180) and kept.format == "JPEG"
    assert live.closed == 1  # the viewer is given back at once
    case = store.get_case(case_id, now=NOW)
    assert case["photos"][-1]["kind"] == "site_snapshot" and case["timeline"][-1]["note"].startswith("现场抓拍")


async def test_work_calendar_periods_for_the_pages_countdowns(wall):
    monday = datetime(2026, 3, 16, 0, 0, tzinfo=SH).timestamp()
    async with await browser(wall, "squad") as squad:  # unit users count down too (the field page)
        window = {"from": str(monday - 86400 * 2), "to": str(monday + 86400)}  # Saturday .. Tuesday
        resp = await squad.get("/api/work-calendar", params=window)
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        assert body["timezone"] == "Asia/Shanghai"
        morning, afternoon = (datetime(2026, 3, 16, h, m, tzinfo=SH).timestamp() for h, m in ((8, 30), (13, 30)))
        assert [p[0] for p in body["periods"]] == [morning, afternoon]  # the weekend has none
        for params, field in [({"to": "1"}, "from"), ({"from": "x", "to": "1"}, "from"),
                              ({"from": "5", "to": "1"}, "to"), ({"from": "0", "to": str(900 * 86400)}, "to"),
                              ({"from": "1", "to": "inf"}, "to")]:
            resp = await squad.get("/api/work-calendar", params=params)
            assert resp.status == 400 and (await resp.json())["error"].startswith(f"{field}: "), params
