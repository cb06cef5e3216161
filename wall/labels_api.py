"""Review labels (``/api/review/{id}/labels``): the reviewer's classes and boxes on a decided alarm's clean snapshot.

``GET`` gives the label classes (keys 1–8), the label saved for the item if any, and the boxes a new label starts
from (the judgement's parts with their kinds, else the alarm's boxes). ``PUT`` stores the label once the item is
decided (confirm or reject): boxes + classes, the camera, the frame's time, the decision, who labelled it and when,
and a copy of the clean full-resolution snapshot (``learning.labels.LabelStore``). A malformed box is a 400 naming
the field (``boxes[1].class``); an item not decided yet is a 409.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from learning import learning_root
from learning.classes import public
from learning.labels import LabelError, LabelStore, parse_boxes, proposed_boxes
from wall import state
from wall.api import _ID
from wall.auth import require_session
from wall.errors import BadRequest, json_error, parsed_json
from wall.review_api import _raised, _recent
from wall.views import evidence_url

LABELS: web.AppKey[LabelStore] = web.AppKey("review_labels")


def _item_id(request: web.Request) -> str:
    item = request.match_info["id"]
    if not _ID.fullmatch(item):
        raise BadRequest("id", f"{item[:40]!r} is not an item id")
    return item


async def _alarm(request: web.Request, item: str) -> dict[str, Any] | None:
    held = await asyncio.to_thread(request.app[state.CASES].held_alarm, item)
    if held is not None:
        return held.alarm
    _ids, alarms = _raised(await _recent(request))
    return alarms.get(item)


async def labels_get(request: web.Request) -> web.Response:
    require_session(request)
    item = _item_id(request)
    alarm = await _alarm(request, item)
    if alarm is None:
        return json_error(404, f"unknown review item {item}")
    saved = await asyncio.to_thread(request.app[LABELS].get, item)
    return web.json_response({"id": item, "classes": public(), "label": saved.to_dict() if saved else None,
                              "proposed": proposed_boxes(alarm),
                              "snapshot_clean_url": evidence_url(alarm.get("snapshot_clean"))})


async def labels_put(request: web.Request) -> web.Response:
    session = require_session(request)
    item = _item_id(request)
    try:
        body = await parsed_json(request)
    except ValueError:
        raise BadRequest("body", "must be a JSON object {boxes}") from None
    if not isinstance(body, dict):
        raise BadRequest("body", "must be a JSON object {boxes}")
    unknown = sorted(set(body) - {"boxes"})
    if unknown:
        raise BadRequest(unknown[0], "unknown field (expected boxes)")
    try:
        boxes = parse_boxes(body.get("boxes"))
    except LabelError as exc:
        raise BadRequest(exc.field, exc.reason) from None
    alarm = await _alarm(request, item)
    if alarm is None:
        return json_error(404, f"unknown review item {item}")
    now = request.app[state.CLOCK]()
    st = (await asyncio.to_thread(request.app[state.CASES].review_states, [item], now=now)).get(item, {})
    decision = st.get("decision")
    if not decision:
        return json_error(409, f"review item {item} is not decided yet: confirm or reject it first")
    try:
        label = await asyncio.to_thread(
            request.app[LABELS].save, alarm=alarm, decision=decision["decision"], decided_by=session.username,
            decided_at=now, boxes=boxes, evidence_dir=request.app[state.EVIDENCE_DIR])
    except LabelError as exc:
        return json_error(422, f"{exc.field}: {exc.reason}")
    return web.json_response(label.to_dict())


def add_routes(app: web.Application) -> None:
    settings = app[state.SETTINGS]
    root = learning_root(settings)
    app[LABELS] = LabelStore(app[state.CASES], root)
    app.router.add_get("/api/review/{id}/labels", labels_get)
    app.router.add_put("/api/review/{id}/labels", labels_put)
