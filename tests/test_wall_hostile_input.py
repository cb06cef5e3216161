"""Hostile HTTP input the schema fuzz does not reach, on a real wall server (real Redis, real case store on SQLite
and PostgreSQL, guidance on real Mosquitto): request bodies over the size limit or not JSON on every route that
takes one, the audio upload streamed past its limit or not audio, path traversal on evidence and clip URLs, and SQL
metacharacters in every case-list filter."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
import requests
from yarl import URL

from tests.fixtures.factories import make_alarm
from tests.fixtures.fuzz import FuzzTarget, login_session
from tests.fixtures.wall import login, settings_with_roles, wall_client
from wall.app import create_app
from wall.errors import MAX_REQUEST_BODY
from wall.openapi import build_document


def _body_routes(known: dict[str, dict[str, str]]) -> list[tuple[str, str]]:
    """(METHOD, path naming real records) for every operation whose request body is JSON."""
    out = []
    for path, ops in build_document("test")["paths"].items():
        ids = next((ids for prefix, ids in known.items() if path.startswith(prefix)), {})
        for method, op in ops.items():
            if "application/json" in op.get("requestBody", {}).get("content", {}):
                out.append((method.upper(), re.sub(r"\{(\w+)\}", lambda m, ids=ids: ids.get(m.group(1), "x"), path)))
    return out


async def test_every_json_body_route_refuses_oversized_and_non_json_bodies(fuzz_target: FuzzTarget) -> None:  # noqa: F811
    await asyncio.to_thread(_oversized_and_junk_bodies, fuzz_target.base_url, _body_routes(fuzz_target.known_ids))


def _oversized_and_junk_bodies(base_url: str, routes: list[tuple[str, str]]) -> None:
    admin = login_session(base_url)
    assert len(routes) >= 8, routes
    for method, path in routes:
        url = base_url + path
        big = json.dumps({"note": "x" * (MAX_REQUEST_BODY + 10)})
        resp = admin.request(method, url, data=big, headers={"Content-Type": "application/json"}, timeout=10)
        assert resp.status_code == 413, (method, path, resp.status_code, resp.text[:200])
        assert str(MAX_REQUEST_BODY) in resp.json()["error"], resp.text
        for junk in (b"{not json", b"\xff\xfe\x00garbage", b"[1, 2, 3]", b'"text"', b"null", b"{" * 5000):
            resp = admin.request(method, url, data=junk, headers={"Content-Type": "application/json"}, timeout=10)
            assert resp.status_code in (400, 404, 409, 422), (method, path, junk[:20], resp.status_code, resp.text)
            assert resp.json()["error"], resp.text
    # The one upload: streamed (chunked, no Content-Length) past its limit → 413; not audio → 400 naming body.
    resp = admin.post(f"{base_url}/api/clips", data=(b"\0" * 50_000 for _ in range(6)), timeout=10)
    assert resp.status_code == 413 and "max_upload_bytes=200000" in resp.json()["error"], resp.text
    resp = admin.post(f"{base_url}/api/clips", data=b"<?php system($_GET['c']); ?>" * 100, timeout=10)
    assert resp.status_code == 400 and resp.json()["error"].startswith("body: "), resp.text
    assert requests.get(f"{base_url}/api/health", timeout=10).status_code in (200, 503)


@pytest.mark.parametrize("path", [
    "/evidence/..%2f..%2fsecret.jpg", "/evidence/%252e%252e/secret.jpg", "/evidence/cam/..%2F..%2Fsecret.jpg",
    "/evidence/....//secret.jpg", "/evidence/cam/%2e%2e%2f%2e%2e%2fsecret.jpg", "/evidence/%2e%2e%5csecret.jpg",
    "/evidence//etc/passwd", "/evidence/%2Ftmp%2Fsecret.jpg", "/evidence/cam/%00.jpg", "/evidence/linkdir/secret.jpg",
    "/evidence/cam/%EF%BC%8E%EF%BC%8E/secret.jpg",  # fullwidth dots
    "/clips/..%2F..%2Fsecret.jpg", "/clips/%2e%2e", "/clips/%2Fetc%2Fpasswd", "/clips/" + "a" * 32 + ".opus%00.jpg",
])
async def test_traversal_never_serves_a_file_outside(tmp_path, bus, path) -> None:
    evidence = tmp_path / "evidence"
    (evidence / "cam").mkdir(parents=True)
    (evidence / "cam" / "ok.jpg").write_bytes(b"\xff\xd8ok")
    (tmp_path / "secret.jpg").write_bytes(b"SECRET-OUTSIDE")
    (evidence / "linkdir").symlink_to(tmp_path)  # a symlinked folder that leads out of the evidence dir
    from cases.store import CaseStore

    store = CaseStore.open(f"sqlite:///{tmp_path}/cases.sqlite")
    app = create_app(settings_with_roles(tmp_path), bus=bus, cases=store, live=None, evidence_dir=evidence)
    try:
        async with wall_client(app) as client:
            assert (await login(client, "admin")).status == 200
            assert (await client.get("/evidence/cam/ok.jpg")).status == 200
            resp = await client.get(URL(path, encoded=True))
            body = await resp.read()
            assert resp.status in (400, 404), (path, resp.status)
            assert b"SECRET" not in body and b"root:" not in body
    finally:
        store.close()


HOSTILE_FILTERS = ["'", "' OR '1'='1", "'; DROP TABLE cases;--", "%", "_", "\\", '"', "%' --", "1) OR (1=1",
                   "事件/0501' OR 1=1 --", "\x00"]


@pytest.mark.parametrize("name", ["q", "camera_id", "unit_id", "category", "state"])
async def test_sql_metacharacters_in_case_filters_are_data(tmp_path, bus, cases_url, name) -> None:
    """Parameterised queries: quotes and comments are plain data; LIKE wildcards match only themselves."""
    from cases.filing import build_filer
    from cases.store import CaseStore

    store = CaseStore.open(cases_url)
    try:
        settings = settings_with_roles(tmp_path)
        (tmp_path / "evidence").mkdir(exist_ok=True)
        await asyncio.to_thread(build_filer(settings, store).file, make_alarm(1))
        app = create_app(settings, bus=bus, cases=store, live=None, evidence_dir=tmp_path / "evidence")
        async with wall_client(app) as client:
            assert (await login(client, "admin")).status == 200
            for value in HOSTILE_FILTERS:
                if name == "q" and value == "_":
                    continue  # a literal "_" is in the stored JSON's keys (zone_id): the search finds it, rightly
                resp = await client.get("/api/cases", params={name: value})
                assert resp.status in (200, 400), (name, value, resp.status, await resp.text())
                body = await resp.json()
                if resp.status == 200:  # nothing matches a quote, a wildcard or an injected OR
                    assert body["total"] == 0, (name, value, body["total"])
                else:
                    assert body["error"].startswith(f"{name}: "), body
            listing = await (await client.get("/api/cases")).json()
            assert listing["total"] == 1  # the table is still there, untouched
    finally:
        store.close()


FIXED_SQL_FRAGMENTS = {"clause", "marks", "rows", "_PG_WRITE_LOCK", "cols", "', '.join(AUDIT_COLUMNS)", "page_clause",
                       "order_by", "column", "sql", "by", "' AND '.join(conditions)"}
"""Names interpolated into SQL in cases/store.py: WHERE clauses of fixed conditions (``clause``, ``sql`` from
``_matches``, ``conditions`` from ``cases.listing.where``), ``?`` lists, a constant, a sort column from
``cases.listing.SORTS`` (``order_by``, ``by``)."""


def test_no_sql_is_built_from_values() -> None:
    """Every f-string or concatenation that reaches ``execute`` only joins fixed SQL fragments and ``?`` marks."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    offenders = []
    for py in [p for room in ("cases", "wall", "guidance", "broker") for p in root.glob(f"{room}/*.py")]:
        text = py.read_text()
        for m in re.finditer(r'execute(?:_planned)?\(\s*f"([^"]*)"', text):
            fields = re.findall(r"\{([^}]*)\}", m.group(1))
            if any(f not in FIXED_SQL_FRAGMENTS and "'?'" not in f for f in fields):
                offenders.append(f"{py.name}: {m.group(0)[:80]}")
    # A new name here must hold only fixed SQL and ? marks; check it, then add it to FIXED_SQL_FRAGMENTS.
    assert not offenders, offenders


async def test_control_characters_in_free_text_are_a_field_error_on_every_store(tmp_path, bus, cases_url) -> None:
    """Regression: a NUL in a search, a case note or a reject reason was a 500 on PostgreSQL (which cannot store
    NUL) and cut the text short on SQLite; now a 400 naming the field."""
    from cases.filing import build_filer
    from cases.store import CaseStore

    store = CaseStore.open(cases_url)
    try:
        settings = settings_with_roles(tmp_path)
        (tmp_path / "evidence").mkdir(exist_ok=True)
        case = await asyncio.to_thread(build_filer(settings, store).file, make_alarm(1))
        await bus.publish(make_alarm(2))
        app = create_app(settings, bus=bus, cases=store, live=None, evidence_dir=tmp_path / "evidence")
        async with wall_client(app) as client:
            resp = await login(client, "admin")
            assert resp.status == 200
            token = (await resp.json()).get("csrf_token")
            csrf = {"X-CSRF-Token": token} if token else {}
            resp = await client.get("/api/cases", params={"q": "解放\x00路"})
            assert resp.status == 400 and (await resp.json())["error"].startswith("q: must not contain control"), \
                await resp.text()
            detail = await (await client.get(f"/api/cases/{case.case['id']}")).json()
            action = detail["allowed_actions"][0]["action"]
            resp = await client.post(f"/api/cases/{case.case['id']}/actions", json={"action": action, "note": "a\x00b"},
                                     headers=csrf)
            assert resp.status == 400 and (await resp.json())["error"].startswith("note: "), await resp.text()
            item = (await (await client.post("/api/review/claim", json={}, headers=csrf)).json())["item"]["id"]
            resp = await client.post(f"/api/review/{item}/decision", json={"decision": "reject", "reason": "误报\x00"},
                                     headers=csrf)
            assert resp.status == 400 and (await resp.json())["error"].startswith("reason: "), await resp.text()
            # Newlines and tabs in a note are ordinary text.
            resp = await client.post(f"/api/cases/{case.case['id']}/actions",
                                     json={"action": action, "note": "第一行\n\t第二行"}, headers=csrf)
            assert resp.status == 200, await resp.text()
    finally:
        store.close()
