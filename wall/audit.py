"""The audit log on the wall server: recording every control action, and the admin's search (``GET /api/audit``,
the page ``/audit``).

One entry point records HTTP control actions: the access middleware (``wall.access``) calls :func:`record_request`
for every state-changing request, allowed or refused, with the status it got — so a new control route is audited
the day it is added. The action name is the route's ``Rule.audit`` (``screen.layout``, ``plan.invoke``,
``case.dispatch`` …); the target is the route's path parameters; the details are the JSON body (passwords never)
plus whatever the handler added with ``wall.access.note`` (a case number, a broadcast id, the refusal reason). WebSocket
control messages (an ``ack`` on ``/api/ws``) are recorded by the hub with :func:`record`.

Entries go to the case store's append-only ``audit_log`` (``cases.audit``); a store that fails to take one is
logged loudly and counted (``stats()``), never turned into a failure of an action that already happened.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from cases.audit import MAX_PAGE, AuditEntry, AuditQuery
from config import redact_url
from wall import state
from wall.access import NOTES
from wall.api import int_param
from wall.auth import Session, client_address
from wall.connections import STREAMED_BODIES
from wall.errors import BadRequest, parsed_json
from wall.pages import login_first, static_page

log = logging.getLogger("citywall.wall.audit")

_SECRET_KEYS = frozenset({"password", "csrf_token", "old_password", "new_password", "password_hash", "yaml"})


@dataclass
class AuditStats:
    recorded: int = 0
    failed: int = 0
    """Entries the case store did not take (logged as errors)."""
    rate_limited: int = 0
    """Login attempts refused by the login limits before any check: counted here instead of one row each."""


STATS: web.AppKey[AuditStats] = web.AppKey("audit_stats")


async def record(app: web.Application, entry: AuditEntry) -> None:
    """Append ``entry`` to the store (in a worker thread); a failure is logged and counted, not raised."""
    stats = app[STATS]
    try:
        await asyncio.to_thread(app[state.CASES].append_audit, entry)
        stats.recorded += 1
    except Exception:
        stats.failed += 1
        log.exception("audit entry NOT recorded: %s by %s on %s (%s)", entry.action, entry.actor, entry.target,
                      entry.outcome)


async def _body_details(request: web.Request) -> dict[str, Any]:
    """The request as the handler executed it: the body parsed once (``parsed_json``, whatever the Content-Type),
    passwords removed, long values shortened (a body padded past the limit still shows its note and action)."""
    if not request.body_exists or (request.method, request.path) in STREAMED_BODIES:
        return {}  # an upload streams its own body (the handler notes what it stored)
    try:
        body = await parsed_json(request)
    except ValueError as exc:
        return {"_unparsed": str(exc)[:200]}
    except web.HTTPException:  # e.g. over the body limit: the client already got that answer
        return {}
    if not isinstance(body, dict):
        return {"_body": _shorten(body)}
    return {str(k)[:64]: _shorten(v) for k, v in list(body.items())[:MAX_DETAIL_KEYS] if k not in _SECRET_KEYS}


MAX_DETAIL_KEYS = 32
MAX_DETAIL_TEXT = 1000


def _shorten(value: Any, depth: int = 0) -> Any:
    """``value`` bounded for the audit row: strings cut, lists and objects trimmed, nesting cut at depth 4."""
    if isinstance(value, str):
        value = redact_url(value) if "://" in value else value  # a camera URL's password never reaches the log
        if len(value) <= MAX_DETAIL_TEXT:
            return value
        return value[:MAX_DETAIL_TEXT] + f"…(+{len(value) - MAX_DETAIL_TEXT})"
    if depth >= 4 and isinstance(value, (list, dict)):
        return "…"
    if isinstance(value, list):
        return [_shorten(v, depth + 1) for v in value[:20]] + (["…"] if len(value) > 20 else [])
    if isinstance(value, dict):
        return {str(k)[:64]: _shorten(v, depth + 1) for k, v in list(value.items())[:MAX_DETAIL_KEYS]
                if k not in _SECRET_KEYS}
    return value


async def record_request(request: web.Request, session: Session | None, rule: Any, status: int,
                         problem: str) -> None:
    """The access middleware's recorder: one entry per state-changing request (see the module docstring)."""
    notes = dict(request.get(NOTES) or {})
    if notes.pop("unaudited", False):
        request.app[STATS].rate_limited += 1
        return
    body = await _body_details(request)
    resource = request.match_info.route.resource  # (a rule was found: the request matched a route)
    action = (rule.audit if request.method not in ("GET", "HEAD") else rule.read_audit) or \
        f"{request.method} {resource.canonical if resource is not None else request.path}"
    if action == "case.action" and isinstance(body.get("action"), str):
        action = f"case.{body['action'][:32]}"
    actor = notes.pop("actor", None) or (session.username if session else "") or str(body.get("username", ""))[:64]
    role = notes.pop("role", None) or (session.role.value if session else "")
    target = notes.pop("target", None) or "/".join(request.match_info.values())
    details = {**({"request": body} if body and action != "login" else {}), **notes}
    if request.method in ("GET", "HEAD") and request.query:  # a read: what was asked for (e.g. the export's range)
        details["query"] = {str(k)[:64]: _shorten(v) for k, v in list(request.query.items())[:MAX_DETAIL_KEYS]}
    if problem:
        details["refused"] = problem
    await record(request.app, AuditEntry(at=request.app[state.CLOCK](), actor=actor or "-", role=role,
                                         action=action, target=str(target), outcome=status,
                                         client=client_address(request), details=details))


# ------------------------------------------------------------------------------------------------------ search


def _time_param(request: web.Request, name: str) -> float | None:
    raw = request.query.get(name, "").strip()
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise BadRequest(name, f"must be epoch seconds or an ISO date/time like 2026-03-11T08:00, got {raw[:40]!r}") \
            from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo(request.app[state.SETTINGS].timezone))
    return when.timestamp()


def _text_param(request: web.Request, name: str, longest: int = 64) -> str | None:
    raw = request.query.get(name, "").strip()
    if not raw:
        return None
    if len(raw) > longest:
        raise BadRequest(name, f"at most {longest} characters")
    return raw


async def search(request: web.Request) -> web.Response:
    """``GET /api/audit`` (admin): entries newest first, filtered by ``actor``, ``action``, ``target`` (prefix),
    ``since``/``until`` (epoch seconds or ISO time in the site timezone), ``q`` (text in target or details),
    ``outcome`` (HTTP status, e.g. 403 for refusals),
    paged by ``limit``/``offset``."""
    try:
        query = AuditQuery(
            actor=_text_param(request, "actor"), action=_text_param(request, "action"),
            target=_text_param(request, "target"), since=_time_param(request, "since"),
            until=_time_param(request, "until"), q=_text_param(request, "q"),
            outcome=int_param(request, "outcome", default=0, lo=0, hi=599) or None,
            limit=int_param(request, "limit", default=100, lo=1, hi=MAX_PAGE),
            offset=int_param(request, "offset", default=0, lo=0, hi=10_000_000))
    except ValueError as exc:
        if isinstance(exc, BadRequest):
            raise
        field, _, reason = str(exc).partition(": ")
        raise BadRequest(field, reason) from None
    entries, total = await asyncio.to_thread(request.app[state.CASES].search_audit, query)
    return web.json_response({"entries": [e.to_dict() for e in entries], "total": total, "limit": query.limit,
                              "offset": query.offset})


async def verify(request: web.Request) -> web.Response:
    """``GET /api/audit/verify``: walk the hash chain; ``ok`` false names the first row removed or changed."""
    check = await asyncio.to_thread(request.app[state.CASES].verify_audit)
    if not check.ok:
        log.error("audit log tampered with at seq %s: %s", check.first_bad_seq, check.reason)
    return web.json_response({"ok": check.ok, "rows": check.rows, "unchained": check.unchained,
                              "first_bad_seq": check.first_bad_seq, "reason": check.reason})


async def audit_page(request: web.Request) -> web.StreamResponse:
    """``/audit``: the admin's audit log page (web/static/audit.*; its data needs the admin role)."""
    login_first(request)
    return static_page("audit.html")


def add_routes(app: web.Application) -> None:
    app[STATS] = AuditStats()
    app.router.add_get("/api/audit", search)
    app.router.add_get("/api/audit/verify", verify)
    app.router.add_get("/audit", audit_page)
