"""Case REST routes: list and detail, workflow actions with concurrency control, statistics and exports.

The case store is synchronous, so its calls run in a worker thread. Conflicts are answered with the case as it is
now: 409 when someone else changed the case first (stale ``version``) or the state does not allow the action (with
the allowed ones), 403 when the state allows it but not to this role, 400 naming any bad field or category.
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import date, datetime, timedelta
from datetime import time as dt_time
from typing import Any, Literal
from zoneinfo import ZoneInfo

from aiohttp import web
from pydantic import Field

from cases.bundle import CaseConfig, load_case_config
from cases.categories import TimeLimit
from cases.desk import CaseDesk, CaseNotFound, SuperviseRefused, can_supervise
from cases.export import to_csv, to_xlsx
from cases.filing import CaseFiler
from cases.stats import DIMENSIONS, PERIODS, compute_stats
from cases.store import VersionConflict
from cases.workflow import ACTION_LABELS, Action, State, TransitionError, allowed_actions, transitions_from
from config import redact_url
from wall import case_office, daily_report, review_api, state
from wall.access import note
from wall.api import _ID, int_param
from wall.auth import require_session
from wall.errors import BadRequest, json_error
from wall.models import Body, Id, Note, Version, read_body
from wall.views import case_view

log = logging.getLogger("citywall.wall")

CASE_CONFIG: web.AppKey[CaseConfig] = web.AppKey("case_config")
DESK: web.AppKey[CaseDesk] = web.AppKey("case_desk")

_CATEGORY = re.compile(r"^(部件|事件)/\d{4}$")
PEOPLE_ACTIONS = tuple(a.value for a in Action if a is not Action.REPORT)


def category_param(request: web.Request, config: CaseConfig, name: str = "category") -> str | None:
    """Optional ``部件/0101``-style category ref; 400 naming it when the catalog has no such category."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    refs = {c.ref for c in config.catalog.categories}
    if raw not in refs:
        raise BadRequest(name, f"unknown category {raw[:40]!r}; known: {', '.join(sorted(refs))}")
    return raw


def _actions_for(case: dict[str, Any], role: str) -> list[dict[str, str]]:
    return [{"action": a.value, "label": ACTION_LABELS[a]} for a in allowed_actions(case["state"], role)]


def _detail(case: dict[str, Any], role: str) -> dict[str, Any]:
    """A case for one caller: the view plus what this role may do with it now."""
    return {**case_view(case), "allowed_actions": _actions_for(case, role), "can_supervise": can_supervise(case, role)}


def _allowed_view(st: State) -> list[dict[str, Any]]:
    return [{"action": t.action.value, "label": t.action.label, "roles": sorted(t.roles)} for t in transitions_from(st)]


def _case_id(request: web.Request) -> str:
    case_id = request.match_info["id"]
    if not _ID.fullmatch(case_id):
        raise BadRequest("id", f"{case_id[:40]!r} is not a case id")
    return case_id


async def get_case(request: web.Request) -> web.Response:
    """One case with ``evidence_urls`` and ``allowed_actions`` for the caller's role; 404 when unknown."""
    session = require_session(request)
    case_id = _case_id(request)
    case = await asyncio.to_thread(request.app[state.CASES].get_case, case_id, now=request.app[state.CLOCK]())
    if case is None or not case_office.in_scope(case, case_office.unit_scope(request, session)):
        return json_error(404, f"unknown case {case_id}")  # another unit's case: as if it did not exist
    detail = _detail(case, session.role.value)
    return web.json_response({**detail, **case_office.detail_extras(request, detail)})


async def _refuse_out_of_scope(request: web.Request, session: Any, case_id: str) -> web.Response | None:
    """404 when a unit user acts on a case of another unit (nothing is written, the refusal is audited)."""
    scope = case_office.unit_scope(request, session)
    if scope is None:
        return None
    case = await asyncio.to_thread(request.app[state.CASES].get_case, case_id, now=request.app[state.CLOCK]())
    return None if case_office.in_scope(case, scope) else json_error(404, f"unknown case {case_id}")


class CaseActionBody(Body):
    """``POST /api/cases/{id}/actions``: a workflow action as the logged-in user."""

    # A Literal built at import from the enum (pydantic validates and documents it); mypy needs written values.
    action: Literal[PEOPLE_ACTIONS] = Field(description="a workflow action (not report: only the system files)")  # type: ignore[valid-type]
    version: Version | None = None
    note: Note = ""
    extension: TimeLimit | None = Field(None, description="extend only: {value, unit: work_hours|work_days|hours}")
    unit_id: Id | None = Field(None, description="dispatch only: the responsible unit")
    urgency: Literal["一般", "紧急"] | None = Field(None, description="dispatch only: the time limit of this urgency")


class SuperviseBody(Body):
    """``POST /api/cases/{id}/supervise``: 督办 with an optional note."""

    note: Note = ""
    version: Version | None = None


async def act_on_case(request: web.Request) -> web.Response:
    """Apply a workflow action as the logged-in user: 200 with the case after it; 409 (stale version or state)
    and 403 (role) come with the case as it is now and what is allowed."""
    session = require_session(request)
    case_id = _case_id(request)
    body = await read_body(request, CaseActionBody)
    args: dict[str, Any] = {"note": body.note.strip(), "expected_version": body.version}
    args.update({k: v for k, v in (("extension", body.extension), ("unit_id", body.unit_id),
                                    ("urgency", body.urgency)) if v is not None})
    refused = await _refuse_out_of_scope(request, session, case_id)
    if refused is not None:
        return refused
    app = request.app
    desk = app[DESK]
    role = session.role.value
    now = app[state.CLOCK]()
    try:
        event = await asyncio.to_thread(desk.act, case_id, body.action, role=role, user=session.username, now=now,
                                        **args)
    except CaseNotFound:
        return json_error(404, f"unknown case {case_id}")
    except VersionConflict as exc:
        return _version_conflict(exc, role)
    except TransitionError as exc:
        current = await asyncio.to_thread(app[state.CASES].get_case, case_id, now=now)
        by_role = [t for t in exc.allowed if t.action.value == exc.action]
        status = 403 if by_role else 409
        return web.json_response({
            "error": str(exc), "state": exc.state.value, "state_label": exc.state.label,
            "version": current["version"] if current else None,
            "case": _detail(current, role) if current else None,
            "allowed": _allowed_view(exc.state),
        }, status=status)
    except ValueError as exc:  # extension missing for extend, unknown unit, unit_id on a non-dispatch
        text = str(exc)
        field = next((f for f in ("extension", "urgency") if f in text), "unit_id")
        raise BadRequest(field, text) from None
    note(request, case_no=event.case["case_no"], state=event.state)
    return _event_response(event, role)


def _event_response(event: Any, role: str) -> web.Response:
    return web.json_response({"case": _detail(event.case, role),
                              "event": {"action": event.action, "state": event.state, "at": event.at,
                                        "actor": event.actor, "note": event.note}})


def _version_conflict(exc: VersionConflict, role: str) -> web.Response:
    current = exc.current
    return web.json_response({
        "error": f"case {current['case_no']} was changed by someone else (now {current['state_label']}, "
                 f"version {current['version']}; you saw version {exc.expected}); reload and try again",
        "state": current["state"], "state_label": current["state_label"], "version": current["version"],
        "case": _detail(current, role), "allowed": _allowed_view(State(current["state"])),
    }, status=409)


async def supervise_case(request: web.Request) -> web.Response:
    """督办 (leaders only): mark an open case — count, timeline entry with who/when/note, a ``supervise`` case
    event; the state does not change. 403 for other roles, 404, 409 for a finished case or a stale version."""
    session = require_session(request)
    case_id = _case_id(request)
    body = await read_body(request, SuperviseBody, optional=True)  # no body: no note
    refused = await _refuse_out_of_scope(request, session, case_id)
    if refused is not None:
        return refused
    role = session.role.value
    now = request.app[state.CLOCK]()
    try:
        event = await asyncio.to_thread(request.app[DESK].supervise, case_id, role=role, user=session.username,
                                        now=now, note=body.note.strip(), expected_version=body.version)
    except CaseNotFound:
        return json_error(404, f"unknown case {case_id}")
    except VersionConflict as exc:
        return _version_conflict(exc, role)
    except SuperviseRefused as exc:
        return web.json_response({"error": str(exc), "case": _detail(exc.case, role) if exc.case else None},
                                 status=403 if exc.forbidden else 409)
    note(request, case_no=event.case["case_no"], supervise_count=event.case.get("supervise_count"))
    return _event_response(event, role)


MAX_STATS_CASES = 200_000
STATS_DEFAULT_DAYS = 30
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _date_param(request: web.Request, name: str, default: date, tz: ZoneInfo) -> date:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not _DATE.fullmatch(raw):
        raise BadRequest(name, f"must be a date YYYY-MM-DD, got {raw[:40]!r}")
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise BadRequest(name, f"{raw!r} is not a calendar date") from None
    if not MIN_DATE <= day <= MAX_DATE:  # the day after 9999-12-31 does not exist (OverflowError, once a 500)
        raise BadRequest(name, f"must be between {MIN_DATE} and {MAX_DATE}, got {raw}")
    return day


MIN_DATE = date(1970, 1, 2)
MAX_DATE = date(9998, 12, 31)


def _choice(request: web.Request, name: str, options: tuple[str, ...], default: str) -> str:
    raw = request.query.get(name) or default
    if raw not in options:
        raise BadRequest(name, f"must be one of {', '.join(options)}, got {raw[:40]!r}")
    return raw


def _all_cases(store: Any, start: float, end: float, category: str | None, now: float) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    page_size = 500
    while True:
        page, total = store.list_cases(reported_from=start, reported_to=end, category=category, limit=page_size,
                                       offset=len(out), now=now)
        if total > MAX_STATS_CASES:
            raise BadRequest("from", f"{total} cases in this period; at most {MAX_STATS_CASES}: narrow the period")
        out.extend(page)
        if len(page) < page_size:
            return out


async def stats(request: web.Request) -> web.Response:
    """Statistics per unit, grid, category or period over cases reported between ``from`` and ``to`` (dates in the
    site timezone, both inclusive), as JSON, CSV or XLSX."""
    app = request.app
    tz = ZoneInfo(app[state.SETTINGS].timezone)
    now = app[state.CLOCK]()
    today = datetime.fromtimestamp(now, tz).date()
    by = _choice(request, "by", DIMENSIONS, "unit")
    period = _choice(request, "period", PERIODS, "day")
    fmt = _choice(request, "format", ("json", "csv", "xlsx"), "json")
    first = _date_param(request, "from", today - timedelta(days=STATS_DEFAULT_DAYS - 1), tz)
    last = _date_param(request, "to", today, tz)
    if last < first:
        raise BadRequest("to", f"{last} is before from ({first})")
    if (last - first).days > 366 * 3:
        raise BadRequest("to", "at most three years per request")
    category = category_param(request, app[CASE_CONFIG])
    start = datetime.combine(first, dt_time(0), tz).timestamp()
    end = datetime.combine(last + timedelta(days=1), dt_time(0), tz).timestamp()
    cases = await asyncio.to_thread(_all_cases, app[state.CASES], start, end, category, now)
    table = compute_stats(cases, now=now, by=by, period=period, tz=tz)
    name = f"citywall-stats-{by}-{first:%Y%m%d}-{last:%Y%m%d}"
    if fmt == "csv":
        return web.Response(body=to_csv(table), content_type="text/csv", charset="utf-8",
                            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
    if fmt == "xlsx":
        return web.Response(body=to_xlsx(table), headers={
            "Content-Type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "Content-Disposition": f'attachment; filename="{name}.xlsx"'})
    return web.json_response({**table.to_dict(), "from": first.isoformat(), "to": last.isoformat(),
                              "category": category, "cases": len(cases)})


async def webhooks(request: web.Request) -> web.Response:
    """Configured webhook targets (URLs redacted) with pending/delivered counts, and the oldest pending deliveries:
    a target that is down shows here until it has caught up."""
    app = request.app
    limit = int_param(request, "limit", default=100, lo=1, hi=1000)
    status = await asyncio.to_thread(app[state.CASES].webhook_status, limit)
    targets = []
    for t in app[state.SETTINGS].webhooks.targets:
        counts = status["targets"].get(t.name, {"pending": 0, "delivered": 0, "oldest_pending_seq": None})
        targets.append({"name": t.name, "url": redact_url(t.url), "events": t.events, **counts})
    return web.json_response({"targets": targets, "pending": status["pending"]})


def add_routes(app: web.Application) -> None:
    """Register the case routes; loads the case config files named in the settings (errors name file and key)."""
    settings = app[state.SETTINGS]
    files = settings.cases
    config = load_case_config(files.categories_file, files.dispatch_file, files.calendar_file, files.grid_file)
    app[CASE_CONFIG] = config
    app[DESK] = CaseDesk(config, app[state.CASES])
    review_api.add_routes(app, CaseFiler(config, app[state.CASES], list(settings.cameras)))
    daily_report.add_routes(app)
    app.router.add_get("/api/cases", case_office.list_cases)
    app.router.add_get("/api/cases/{id}", get_case)
    app.router.add_post("/api/cases/{id}/actions", act_on_case)
    app.router.add_post("/api/cases/{id}/supervise", supervise_case)
    app.router.add_get("/api/stats", stats)
    app.router.add_get("/api/webhooks", webhooks)
    case_office.add_routes(app)
