"""The ``guidance:`` settings section (voice guidance / 喊话): speakers, templates, policy, closed loop, schedules,
manual-broadcast limits.

It lives in ``config`` because every room reads settings (config ← everything); ``guidance`` builds its runtime
objects from these models and ``cases`` asks :meth:`GuidanceSettings.defers_filing` whether an alarm waits for the
closed loop. Checks that need the rest of the settings (camera and zone ids) are in :func:`guidance_problems`, which
``parse_settings`` calls so every problem is reported as ``key.path: reason``.
"""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

if TYPE_CHECKING:
    from config.settings import Settings

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_ID = r"^[A-Za-z0-9_.-]{1,64}$"  # speaker ids are MQTT topic segments
TEMPLATE_VARIABLES = frozenset({"place", "time"})
"""Variables a template may use: the spoken place (zone/camera name) and the local time "HH:MM"."""
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
AdapterKind = Literal["mqtt", "http", "hall"]
ClipFormatName = Literal["alaw_wav", "mp3", "opus"]
_DEFAULT_FORMATS: dict[str, ClipFormatName] = {"mqtt": "mp3", "http": "mp3", "hall": "opus"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_hhmm(value: str) -> str:
    """``HH:MM`` (00:00-23:59) or ValueError."""
    if not _HHMM.match(value):
        raise ValueError(f"time must be HH:MM (00:00-23:59), got {value!r}")
    return value


def template_fields(event: str, text: str) -> frozenset[str]:
    """The ``{name}`` fields of a template; ValueError naming the event for a malformed or disallowed field.

    Only plain names are allowed (no ``{a.b}``, ``{a[0]}``, format specs), so a template from config cannot reach
    into objects."""
    if not text.strip():
        raise ValueError(f"template {event!r}: text is empty")
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise ValueError(f"template {event!r}: {exc}") from None
    names: set[str] = set()
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if not field.isidentifier():
            raise ValueError(f"template {event!r}: field {{{field}}} must be a plain variable name")
        if spec or conversion:
            raise ValueError(f"template {event!r}: field {{{field}}} may not have a format spec or conversion")
        names.add(field)
    return frozenset(names)


class SpeakerSettings(_Strict):
    """One loudspeaker: how to reach it (adapter), which camera sites it covers, which groups it belongs to."""

    id: Annotated[str, Field(pattern=_ID)]
    name: str = Field(min_length=1)
    adapter: AdapterKind = "mqtt"
    url: str | None = Field(default=None, description="control URL of an HTTP speaker (adapter http); "
                            "http(s)://user:password@host/... sends HTTP Basic authentication")
    auth_token: str | None = Field(default=None, min_length=8, repr=False,
                                   description="HTTP speakers: sent as Authorization: Bearer <token> (use ${ENV})")
    camera_ids: list[str] = Field(default_factory=list, description="cameras whose alarms this speaker answers")
    zone: str = Field(default="", description="zone id on those cameras it faces; empty: the whole view")
    area: str = ""
    groups: list[Annotated[str, Field(pattern=_ID)]] = Field(default_factory=list)
    volume: int = Field(default=80, ge=0, le=100)

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is not None and urlsplit(v).scheme not in ("http", "https"):
            raise ValueError(f"url must be http(s)://, got {v!r}")
        return v


# Kept for the guidance package's older name.
SpeakerConfig = SpeakerSettings


class PolicySettings(_Strict):
    """``guidance.policy``: quiet hours (site-local ``HH:MM``; equal = none) and per-site limits."""

    quiet_start: str = "22:00"
    quiet_end: str = "07:00"
    max_per_hour: int = Field(default=6, ge=1, description="automatic broadcasts per speaker per sliding hour")
    min_repeat_interval_s: float = Field(default=300.0, ge=0, description="same text again at a site, at the soonest")

    @field_validator("quiet_start", "quiet_end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        return check_hhmm(v)


class ClosedLoopSettings(_Strict):
    """``guidance.closed_loop``: which raised alarms are answered by voice first and re-checked before filing."""

    enabled: bool = True
    events: list[str] = Field(default_factory=lambda: ["vending", "road_occupation"])
    recheck_after_s: float = Field(default=60.0, gt=0, le=3600,
                                   description="seconds after the broadcast to look whether the scene cleared")


class ScheduleSettings(_Strict):
    """A daily policy message: at ``at`` (site-local ``HH:MM``) on ``days``, ``text`` on ``targets``.

    A target is a speaker id, ``group:<name>`` or ``all``."""

    id: Annotated[str, Field(pattern=_ID)]
    at: str
    days: list[Day] = Field(default_factory=lambda: list(DAYS), min_length=1)
    text: str = Field(min_length=1, max_length=500)
    targets: list[str] = Field(min_length=1)

    @field_validator("at")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        return check_hhmm(v)


class ManualSettings(_Strict):
    """``guidance.manual``: limits on a leader's manual broadcasts and on uploaded clips."""

    max_text_chars: int = Field(default=200, ge=1, le=500)
    per_user_per_minute: int = Field(default=6, ge=1, description="manual broadcasts one user may start per minute")
    max_upload_bytes: int = Field(default=5_000_000, ge=1000, le=50_000_000)
    max_upload_s: float = Field(default=120.0, gt=0, le=600)
    uploads_per_user_per_minute: int = Field(default=3, ge=1, description="clip uploads one user may send per minute")


class GuidanceSettings(_Strict):
    """``guidance:``: off by default; when on, alarms at cameras with speakers are answered by voice."""

    enabled: bool = False
    voice: str = "cmn-latn-pinyin"
    speed_wpm: int = Field(default=150, ge=80, le=450)
    clip_dir: Path | None = Field(default=None, description="rendered/uploaded clips; empty: data_dir/guidance-clips")
    repeat: int = Field(default=2, ge=1, le=10, description="times an automatic warning is played")
    ack_timeout_s: float = Field(default=5.0, gt=0, le=60)
    formats: dict[str, ClipFormatName] = Field(default_factory=lambda: dict(_DEFAULT_FORMATS))
    templates: dict[str, str] = Field(default_factory=dict, description="message per event type; {place}, {time}")
    policy: PolicySettings = Field(default_factory=PolicySettings)
    closed_loop: ClosedLoopSettings = Field(default_factory=ClosedLoopSettings)
    schedules: list[ScheduleSettings] = Field(default_factory=list)
    manual: ManualSettings = Field(default_factory=ManualSettings)
    speakers: list[SpeakerSettings] = Field(default_factory=list)

    @field_validator("templates")
    @classmethod
    def _templates(cls, v: dict[str, str]) -> dict[str, str]:
        for event, text in v.items():
            unknown = sorted(template_fields(event, text) - TEMPLATE_VARIABLES)
            if unknown:
                raise ValueError(f"template {event!r}: unknown variable {{{unknown[0]}}} "
                                 f"(known: {', '.join(sorted(TEMPLATE_VARIABLES))})")
        return v

    @field_validator("formats")
    @classmethod
    def _formats(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(v) - {"mqtt", "http", "hall"})
        if unknown:
            raise ValueError(f"unknown adapter kind {unknown[0]!r} (known: hall, http, mqtt)")
        return v

    def speakers_for(self, camera_id: str) -> list[SpeakerSettings]:
        """Speakers covering ``camera_id``."""
        return [s for s in self.speakers if camera_id in s.camera_ids]

    def groups(self) -> dict[str, list[str]]:
        """group name → speaker ids, in config order."""
        out: dict[str, list[str]] = {}
        for s in self.speakers:
            for g in s.groups:
                out.setdefault(g, []).append(s.id)
        return out

    def defers_filing(self, camera_id: str, event: str, extra: dict | None = None) -> bool:
        """Whether a raised alarm waits for the closed loop's outcome before a case is filed: guidance on, the
        closed loop on, the event in its events, a speaker at the camera — and someone there who can act on the
        message: an alarm whose judgement (``extra['judgement']``, detectors.judgement) says nobody minds the thing
        (goods left alone, a parked bike, rubbish) is filed at once, never spoken to people merely passing."""
        if not (self.enabled and self.closed_loop.enabled and event in self.closed_loop.events
                and bool(self.speakers_for(camera_id))):
            return False
        judgement = (extra or {}).get("judgement")
        return not (isinstance(judgement, dict) and judgement.get("actionable") is False)


def guidance_problems(settings: Settings) -> list[tuple[str, str]]:
    """Checks across sections, as ``(key.path, reason)``: speaker cameras/zones exist, ids unique, HTTP speakers
    have a URL, schedule and emergency-plan broadcast targets name known speakers or groups, closed-loop events are
    known event types."""
    g = settings.guidance
    problems: list[tuple[str, str]] = []
    cameras = {c.id: c for c in settings.cameras}
    seen: set[str] = set()
    for i, s in enumerate(g.speakers):
        where = f"guidance.speakers[{i}]"
        if s.id in seen:
            problems.append((f"{where}.id", f"speaker id {s.id!r} is used twice"))
        seen.add(s.id)
        for j, cam in enumerate(s.camera_ids):
            if cam not in cameras:
                problems.append((f"{where}.camera_ids[{j}]", f"unknown camera {cam!r} (known: "
                                 f"{', '.join(sorted(cameras)) or 'none'})"))
        if s.zone:
            zones = {z.id for cam in s.camera_ids if cam in cameras for z in cameras[cam].zones}
            if s.zone not in zones:
                problems.append((f"{where}.zone", f"unknown zone {s.zone!r} on cameras {', '.join(s.camera_ids)}"))
        if s.adapter == "http" and not s.url:
            problems.append((f"{where}.url", "an http speaker needs its control url"))
    groups = g.groups()

    def check_target(where: str, target: str) -> None:
        if target == "all":
            return
        if target.startswith("group:"):
            if target[6:] not in groups:
                problems.append((where, f"unknown group {target[6:]!r} (known: {', '.join(sorted(groups)) or 'none'})"))
        elif target not in seen:
            problems.append((where, f"unknown speaker {target!r} (a speaker id, group:<name> or all)"))

    for i, sched in enumerate(g.schedules):
        for j, target in enumerate(sched.targets):
            check_target(f"guidance.schedules[{i}].targets[{j}]", target)
    for i, plan in enumerate(settings.video_wall.plans):
        if plan.broadcast is None:
            continue
        if not g.enabled:
            problems.append((f"video_wall.plans[{i}].broadcast", "needs guidance.enabled (the speakers)"))
        for j, target in enumerate(plan.broadcast.targets):
            check_target(f"video_wall.plans[{i}].broadcast.targets[{j}]", target)
    ids = [s.id for s in g.schedules]
    for i, sid in enumerate(ids):
        if sid in ids[:i]:
            problems.append((f"guidance.schedules[{i}].id", f"schedule id {sid!r} is used twice"))
    from config.settings import EventType  # settings imports this module

    known = {e.value for e in EventType}
    for i, ev in enumerate(g.closed_loop.events):
        if ev not in known:
            problems.append((f"guidance.closed_loop.events[{i}]", f"unknown event {ev!r} (known: "
                             f"{', '.join(sorted(known))})"))
    return problems


__all__ = ["ClosedLoopSettings", "GuidanceSettings", "ManualSettings", "PolicySettings", "ScheduleSettings",
           "SpeakerConfig", "SpeakerSettings", "TEMPLATE_VARIABLES", "check_hhmm", "guidance_problems",
           "template_fields"]
