"""How stored records are shown to browsers: evidence paths become ``/evidence/...`` URLs, secrets are redacted.

Shared by the REST routes and the WebSocket hub so both show the same shape.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from config import redact_url

EVIDENCE_PREFIX = "/evidence/"


def evidence_url(rel_path: str | None) -> str | None:
    """``cam-1/2026/a.jpg`` → ``/evidence/cam-1/2026/a.jpg`` (percent-encoded); None stays None."""
    if not rel_path:
        return None
    return EVIDENCE_PREFIX + quote(rel_path.lstrip("/"), safe="/")


def alarm_view(data: dict[str, Any]) -> dict[str, Any]:
    """An alarm dict from the bus plus ``snapshot_url``, ``snapshot_clean_url`` and ``clip_url`` (the evidence clip,
    which is still being written for ``post_s`` seconds after the alarm)."""
    view = dict(data)
    view["snapshot_url"] = evidence_url(data.get("snapshot"))
    view["snapshot_clean_url"] = evidence_url(data.get("snapshot_clean"))
    extra = data.get("extra")
    clip = extra.get("clip") if isinstance(extra, dict) else None
    view["clip_url"] = evidence_url(clip) if isinstance(clip, str) else None
    return view


def case_view(case: dict[str, Any]) -> dict[str, Any]:
    """A case dict plus ``evidence_urls`` (one per entry of ``evidence``)."""
    view = dict(case)
    evidence = case.get("evidence") or []
    view["evidence_urls"] = [u for u in (evidence_url(p) for p in evidence if isinstance(p, str)) if u]
    return view


def case_event_view(event: dict[str, Any]) -> dict[str, Any]:
    """A CaseEvent dict whose embedded ``case`` carries ``evidence_urls``."""
    view = dict(event)
    if isinstance(event.get("case"), dict):
        view["case"] = case_view(event["case"])
    return view


def status_view(status: dict[str, Any]) -> dict[str, Any]:
    """A CameraStatus dict with any URL credentials in ``error`` redacted (defence in depth)."""
    view = dict(status)
    if isinstance(view.get("error"), str):
        view["error"] = redact_url(view["error"])
    return view


def broadcast_view(data: dict[str, Any]) -> dict[str, Any]:
    """A BroadcastRecord dict whose ``hall_url`` is the same-origin path ``/clips/<name>`` the page can play."""
    view = dict(data)
    url = data.get("hall_url")
    if isinstance(url, str) and url:
        path = urlsplit(url).path
        view["hall_url"] = path if path.startswith("/clips/") else None
    return view
