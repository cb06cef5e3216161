"""Review console routes: ``/review`` (the page) and ``/api/review`` (queue, claim, decision).

The queue is every held alarm not yet decided (kept in the case store by the case worker, ``CaseStore.held_alarms``,
however old) and the raised alarms in the bus's recent ``alarms`` history, one item per alarm id, oldest first —
the held alarms the history no longer has come first — with each item's claim and decision from the case store
(``cases.review.ReviewDesk``). Each item says how the filing policy (``cases.auto_file``, ``cases.policy``) treats
it — ``filing.auto`` true: the worker files it at once (still reviewable: a reject marks the case a false
positive); false: *held*, it becomes a case only when confirmed — and the case it is in (``case``), if any. The
case room's deadline alarms (``kind``) are not review items. Claiming is atomic in the store, so two reviewers never
get the same item; a decision without a live claim is 409 naming who holds it or who decided it.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import Field

import web as web_assets
from cases.filing import CaseFiler, FilingError
from cases.policy import filing_decision
from cases.review import MAX_REASON, REJECT_REASONS, ReviewConflict, ReviewDesk
from cases.store import HeldAlarm
from messages import streams
from messages.alarm import Alarm
from messages.review import AlarmRejected
from wall import state
from wall.access import note
from wall.api import _ID, _bus_call, int_param
from wall.auth import require_session
from wall.errors import BadRequest, json_error
from wall.models import Body, Clean, Id, read_body
from wall.pages import PAGE_HEADERS
from wall.views import alarm_view, case_view

REVIEW: web.AppKey[ReviewDesk] = web.AppKey("review_desk")
HISTORY = 500
LEASE_S = 120.0


async def _recent(request: web.Request) -> list[Any]:
    """The recent ``alarms`` history, newest first."""
    return await _bus_call(request.app[state.BUS].history(streams.ALARMS, count=HISTORY))


def _raised(entries: list[Any]) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """Raised detector alarms, oldest first (ids, and id → alarm dict)."""
    alarms: dict[str, dict[str, Any]] = {}
    for entry in reversed(entries):  # history is newest first
        data = entry.data
        if data.get("phase") == "raised" and isinstance(data.get("alarm_id"), str) and data["alarm_id"] not in alarms:
            alarms[data["alarm_id"]] = data
    return list(alarms), alarms


def _merge(held: list[HeldAlarm], entries: list[Any]) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """The queue from the undecided held alarms (oldest first) and the recent history (newest first): the held
    alarms it no longer has, then its raised alarms in stream order; a held alarm is given as the worker held it."""
    ids, alarms = _raised(entries)
    older = [h.alarm_id for h in held if h.alarm_id not in alarms]
    alarms.update((h.alarm_id, h.alarm) for h in held)
    return older + ids, alarms


async def _queue(request: web.Request) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """Review items, oldest first (ids, and id → alarm dict)."""
    held = await asyncio.to_thread(request.app[state.CASES].held_alarms)
    return _merge(held, await _recent(request))


def _cleared(entries: list[Any], alarm_id: str) -> Alarm | None:
    """The ``cleared`` message of ``alarm_id`` among ``entries``, if the scene has cleared already."""
    for entry in entries:
        if entry.data.get("alarm_id") == alarm_id and entry.data.get("phase") == "cleared":
            try:
                return Alarm.from_dict(entry.data)
            except (TypeError, ValueError, KeyError):
                return None
    return None


def _filing(request: web.Request, alarm: dict[str, Any]) -> dict[str, Any] | None:
    """How the filing policy treats this alarm (None for one whose numbers are unreadable)."""
    try:
        return filing_decision(request.app[state.SETTINGS].cases.auto_file, str(alarm.get("event")),
                               float(alarm["confidence"]), float(alarm["dwell_s"])).to_dict()
    except (KeyError, TypeError, ValueError):
        return None


def _item(request: web.Request, alarm: dict[str, Any], st: dict[str, Any], me: str) -> dict[str, Any]:
    claim, decision = st.get("claim"), st.get("decision")
    if decision:
        status = "confirmed" if decision["decision"] == "confirm" else "rejected"
    elif claim:
        status = "mine" if claim["reviewer"] == me else "claimed"
    else:
        status = "free"
    return {"id": alarm["alarm_id"], "status": status, "claimed_by": claim["reviewer"] if claim else None,
            "claim_until": claim["until_at"] if claim else None, "decision": decision, "alarm": alarm_view(alarm),
            "filing": _filing(request, alarm), "case": st.get("case")}


async def review_queue(request: web.Request) -> web.Response:
    """The queue (oldest first): every undecided held alarm and recent raised alarm with its status for me (free,
    mine, claimed, confirmed, rejected), and the reject reasons the console offers."""
    session = require_session(request)
    limit = int_param(request, "limit", default=200, lo=1, hi=HISTORY)
    ids, alarms = await _queue(request)
    now = request.app[state.CLOCK]()
    states = await asyncio.to_thread(request.app[state.CASES].review_states, ids, now=now)
    items = [_item(request, alarms[i], states.get(i, {}), session.username) for i in ids]
    counts = {s: sum(1 for it in items if it["status"] == s)
              for s in ("free", "mine", "claimed", "confirmed", "rejected")}
    open_items = [it for it in items if it["status"] in ("free", "mine", "claimed")]
    # 待复核 is what still waits for a person to file it; an auto-filed item (a case already) is counted apart.
    counts["unfiled"] = sum(1 for it in open_items if it["status"] != "claimed" and not it["case"])
    counts["auto_filed"] = sum(1 for it in open_items if it["case"])
    return web.json_response({"items": open_items[:limit], "counts": counts, "reasons": list(REJECT_REASONS),
                              "lease_s": request.app[REVIEW].lease_s})


class ClaimBody(Body):
    """``POST /api/review/claim``: the next (or previous, or first) free item, or the one picked (``this``)."""

    current: Id | None = Field(None, description="the item shown now (needed with direction this)")
    direction: Literal["next", "prev", "first", "this"] = "next"


class DecisionBody(Body):
    """``POST /api/review/{id}/decision``: confirm (→ a case) or reject (a false positive, with a reason)."""

    decision: Literal["confirm", "reject"]
    reason: Annotated[str, Field(max_length=MAX_REASON), Clean] = Field("", description="误报原因, needed to reject")


async def review_claim(request: web.Request) -> web.Response:
    """Claim the next (or previous) free item for me, or the one picked from the list (``direction: this``);
    ``{"item": null}`` when there is none (or the picked one is someone else's)."""
    session = require_session(request)
    body = await read_body(request, ClaimBody)
    current, direction = body.current, body.direction
    if direction == "this" and current is None:
        raise BadRequest("current", "direction this needs the item id in current")
    ids, alarms = await _queue(request)
    now = request.app[state.CLOCK]()
    desk = request.app[REVIEW]
    item = await asyncio.to_thread(desk.claim, session.username, ids, now=now, current=current, direction=direction)
    if item is None:
        return web.json_response({"item": None, "position": None, "total": len(ids)})
    st = await asyncio.to_thread(request.app[state.CASES].review_states, [item], now=now)
    return web.json_response({"item": _item(request, alarms[item], st.get(item, {}), session.username),
                              "position": ids.index(item) + 1, "total": len(ids)})


async def review_decide(request: web.Request) -> web.Response:
    """Confirm (→ case) or reject (false positive, with a reason) the item I hold."""
    session = require_session(request)
    item = request.match_info["id"]
    if not _ID.fullmatch(item):
        raise BadRequest("id", f"{item[:40]!r} is not an item id")
    body = await read_body(request, DecisionBody)
    decision, reason = body.decision, body.reason
    if decision == "reject" and not reason.strip():
        raise BadRequest("reason", "a rejection needs a reason (误报原因)")
    entries = await _recent(request)
    _ids, alarms = _raised(entries)
    held = await asyncio.to_thread(request.app[state.CASES].held_alarm, item)
    if held is None and item not in alarms:
        return json_error(404, f"unknown review item {item} (neither held for review nor among the recent raised "
                               f"alarms)")
    alarm = Alarm.from_dict(held.alarm if held is not None else alarms[item])
    desk = request.app[REVIEW]
    # The clear from the history if it still has it; else the desk uses the one recorded on the held alarm.
    cleared = _cleared(entries, item) if decision == "confirm" else None
    try:
        result = await asyncio.to_thread(desk.decide, alarm, session.username, decision,
                                         now=request.app[state.CLOCK](), reason=reason,
                                         actor=f"{session.username}({session.role.value})", cleared=cleared)
    except ReviewConflict as exc:
        return web.json_response({"error": str(exc), "claimed_by": exc.holder, "decision": exc.decision},
                                 status=409)
    except FilingError as exc:  # e.g. an event no category files: the reviewer can still reject it
        return json_error(422, f"cannot file {item} as a case: {exc}")
    note(request, case_no=result.case["case_no"] if result.case else None)
    if result.decision == "reject":  # the detectors learn it: the same object there stops firing
        await request.app[state.BUS].publish(
            AlarmRejected.of(alarm, session.username, result.reason, request.app[state.CLOCK]()))
    return web.json_response({"id": item, "decision": result.decision, "reason": result.reason,
                              "case": case_view(result.case) if result.case else None})


async def review_page(request: web.Request) -> web.StreamResponse:
    """The review console (its script sends the browser to /login without a session)."""
    return web.FileResponse(web_assets.STATIC_DIR / "review.html",
                            headers={**PAGE_HEADERS, "Content-Type": "text/html; charset=utf-8"})


def add_routes(app: web.Application, filer: CaseFiler) -> None:
    app[REVIEW] = ReviewDesk(app[state.CASES], filer, lease_s=LEASE_S)
    app.router.add_get("/review", review_page)
    app.router.add_get("/api/review", review_queue)
    app.router.add_post("/api/review/claim", review_claim)
    app.router.add_post("/api/review/{id}/decision", review_decide)
