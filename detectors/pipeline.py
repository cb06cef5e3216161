"""Per-camera analysis: one frame in, the alarms it decides out — analyzers, tracker, zones and rules wired.

``CameraAnalyzer.analyze`` is a pure-ish step (state lives in the object, time comes in as ``now``, no I/O):
the stationary analyzer finds what stays, the tracker gives it ids, each zone keeps one rule per event kind:

- the stationary events (``vending``, ``road_occupation``, ``shop_front``, ``bike_parking``, ``exposed_rubbish``):
  every stationary candidate is first *judged* (``detectors.judgement``: people only, a parked two-wheeler, a
  vehicle, goods with or without someone minding them, rubbish), and ``judge_event`` maps the judgement to the
  one event the zone lists for it — people waiting at a bus stop raise nothing, a mat of goods with its seller is
  ``vending``, the same goods left alone are ``road_occupation``, a bike nobody minds is ``bike_parking``;
- ``bin_overflow``: ``BinOverflowAnalyzer``'s fill fraction above its threshold in the bin zone.

Reviewer feedback: with a ``SuppressionList``, a stationary candidate that repeats a rejected alarm (same place,
same look) is left out before the rule sees it.

Evidence writing and publishing belong to ``detectors.worker``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import tzinfo

import numpy as np

from config.settings import Camera, Detection, EventType, Zone
from detectors.bins import BinOverflowAnalyzer
from detectors.detections import Detections
from detectors.feedback import SuppressionList, crop_signature
from detectors.judgement import Judge, Judgement, JudgeParams, Kind, judge_event
from detectors.rules import DwellRule, Presence, RuleEvent
from detectors.schedule import Schedule, resolve_timezone
from detectors.stationary import StationaryObjectAnalyzer, StationaryParams, StationaryResult
from detectors.tracking import IoUTracker
from detectors.zones import ZoneMask
from messages.alarm import Alarm

STATIONARY_DETECTOR = "stationary-bg/1"
KIND_GRACE_S = 5.0
BIN_DETECTOR = "bin-state/1"
STATIONARY_EVENTS = (EventType.VENDING, EventType.ROAD_OCCUPATION, EventType.SHOP_FRONT, EventType.BIKE_PARKING,
                     EventType.EXPOSED_RUBBISH)


@dataclass(frozen=True)
class Finding:
    """A raised or cleared alarm decided on one frame, before evidence is written."""

    alarm: Alarm
    """Complete except ``snapshot`` / ``snapshot_clean``."""
    zone: Zone


@dataclass
class _ZoneRule:
    zone: Zone
    mask: ZoneMask
    event: EventType
    rule: DwellRule
    detector: str
    bin: BinOverflowAnalyzer | None = None
    extra: dict = field(default_factory=dict)
    judgement: dict | None = None
    """The last judgement that made this rule's event (kept for the cleared alarm)."""


@dataclass(eq=False)
class Observation:
    """The first half of a step (``CameraAnalyzer.observe``)."""

    stationary: StationaryResult
    tracked: Detections
    candidates: bool
    """Whether a stationary candidate stands in a vending / road zone (then a model is worth asking)."""
    seconds: float
    moving: np.ndarray | None = None
    """bool (h, w): foreground that is not stationary (passers-by, traffic), at analysis resolution."""


def _cover(inner: tuple[float, float, float, float], outer: np.ndarray) -> np.ndarray:
    """Share of box ``inner`` covered by each of the ``outer`` (N, 4) boxes."""
    ix = np.clip(np.minimum(inner[2], outer[:, 2]) - np.maximum(inner[0], outer[:, 0]), 0, None)
    iy = np.clip(np.minimum(inner[3], outer[:, 3]) - np.maximum(inner[1], outer[:, 1]), 0, None)
    area = max((inner[2] - inner[0]) * (inner[3] - inner[1]), 1e-9)
    return ix * iy / area


def model_evidence(event: EventType, present: list[Presence], model: Detections,
                   cover: float = 0.5) -> tuple[list[Presence], dict]:
    """Pure: what a model's detections say about a zone's stationary candidates.

    Returns the candidates that still count and the evidence for the alarm: ``model_roles`` (roles of model
    boxes covering ≥ ``cover`` of a candidate) and ``people_near`` (person boxes overlapping a candidate grown
    by half its size on each side — a vendor beside a stall). For ``road_occupation`` a candidate mostly
    covered by a ``vehicle`` box is dropped (a parked car is not occupation by objects).
    """
    roles = model.data.get("role")
    if roles is None or not len(model):
        return present, {"model_roles": [], "people_near": 0}
    roles = np.asarray(roles).astype(str)
    seen: set[str] = set()
    people = 0
    kept: list[Presence] = []
    persons = model.xyxy[roles == "person"]
    for p in present:
        c = _cover(p.box, model.xyxy)
        here = set(roles[c >= cover].tolist()) - {"person"}
        seen |= here
        x1, y1, x2, y2 = p.box
        gx, gy = (x2 - x1) / 2, (y2 - y1) / 2
        grown = (x1 - gx, y1 - gy, x2 + gx, y2 + gy)
        people = max(people, int((_cover(grown, persons) > 0).sum()) if len(persons) else 0)
        if event == EventType.ROAD_OCCUPATION and "vehicle" in here:
            continue
        kept.append(p)
    return kept, {"model_roles": sorted(seen), "people_near": people}


@dataclass(eq=False)
class AnalysisStep:
    """Everything one ``analyze`` call saw (for debugging views and tests)."""

    findings: list[Finding]
    stationary: StationaryResult
    tracked: Detections
    analysis_ms: float


class CameraAnalyzer:
    """All detection state for one camera; feed it frames in time order with ``analyze``."""

    def __init__(self, camera: Camera, settings: Detection, *, timezone: str | tzinfo | None = None,
                 params: StationaryParams | None = None, bin_threshold: float = 0.03,
                 grace_s: float = 4.0, clear_s: float = 5.0,
                 new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
                 suppressions: SuppressionList | None = None, judge: JudgeParams | None = None) -> None:
        self.camera = camera
        self.suppressions = suppressions
        """Reviewer rejections (``detectors.feedback``): candidates repeating one are left out."""
        tz = resolve_timezone(timezone)
        self.stationary = StationaryObjectAnalyzer(params or StationaryParams(analysis_width=settings.analysis_width))
        self.tracker = IoUTracker()
        self.judge = Judge(judge)
        """What each stationary candidate is (``detectors.judgement``)."""
        self.judgements: dict[int, Judgement] = {}
        """The latest judgement per track id (for debugging views, tests and the benchmark)."""
        self._quiet = 0
        self.rules: list[_ZoneRule] = []
        for zone in camera.zones:
            mask = ZoneMask(zone.polygon)
            schedule = Schedule(zone.schedule, tz)

            def rule(zone: Zone = zone, schedule: Schedule = schedule) -> DwellRule:
                return DwellRule(dwell_s=zone.dwell_s, min_area=zone.min_area, cooldown_s=zone.cooldown_s,
                                 schedule=schedule, grace_s=grace_s, clear_s=clear_s, new_id=new_id)

            for kind in [e for e in zone.events if e in STATIONARY_EVENTS]:
                self.rules.append(_ZoneRule(zone, mask, kind, rule(), STATIONARY_DETECTOR))
            if EventType.BIN_OVERFLOW in zone.events:
                bins = BinOverflowAnalyzer(mask, threshold=bin_threshold, min_area=zone.min_area)
                self.rules.append(_ZoneRule(zone, mask, EventType.BIN_OVERFLOW, rule(), BIN_DETECTOR, bins))

    def analyze(self, image: np.ndarray, now: float) -> list[Finding]:
        """Analyse one BGR uint8 frame taken at unix time ``now``; returns the alarms it raised or cleared."""
        return self.step(image, now).findings

    def step(self, image: np.ndarray, now: float, model: Detections | None = None) -> AnalysisStep:
        """Like ``analyze`` but returns the intermediate results too; ``model``: a model backend's detections
        for this frame, if any (see ``decide``)."""
        return self.decide(self.observe(image, now), image, now, model)

    def observe(self, image: np.ndarray, now: float) -> Observation:
        """First half of a step: the stationary analysis and tracking, and whether any stationary candidate
        stands in a zone (the worker asks a model about a frame only then)."""
        t0 = time.perf_counter()
        result = self.stationary.update(image, now)
        tracked = self.tracker.update(result.detections, now)
        w, h = result.size
        moving = self.judge.observe_motion(result.foreground, result.stationary) if result.ready else None
        candidates = bool(len(tracked)) and any(
            zr.mask.holds(tracked, w, h).any() for zr in self.rules if zr.bin is None)
        return Observation(result, tracked, candidates, time.perf_counter() - t0, moving)

    def decide(self, obs: Observation, image: np.ndarray, now: float, model: Detections | None = None
               ) -> AnalysisStep:
        """Second half: zones and rules. With ``model`` detections (roles in ``data['role']``), stationary
        candidates a ``vehicle`` box covers are not road occupation, and the alarm's ``extra`` says which roles
        the model saw on the candidates and how many people were near them."""
        t0 = time.perf_counter()
        result, tracked = obs.stationary, obs.tracked
        w, h = result.size
        findings: list[Finding] = []
        judged: dict[int, Judgement] = {}
        if obs.candidates and obs.moving is not None:
            self._quiet = 0
            judged = self.judge.update(image, now, tracked, obs.moving, result.arrived, model,
                                       background=self.stationary.background_planar,
                                       shrunk=self.stationary.levels)
        else:
            self._quiet += 1
            if self._quiet == 5:
                self.judge.forget()
        self.judgements = judged
        # Zones are tested on what the judgement is about (the goods, the bike), not on the blob it sits in: a
        # shopkeeper standing in front of crates on the shop-front strip must not carry the crates onto the pavement.
        placed = tracked
        by_area = np.zeros(len(tracked), bool)
        if judged and len(tracked):
            boxes = tracked.xyxy.copy()
            for k in range(len(tracked)):
                j = judged.get(int(tracked.tracker_id[k]))
                things = [q.box for q in j.parts if q.kind.value != "person"] if j is not None else []
                if things:
                    boxes[k] = (min(b[0] for b in things), min(b[1] for b in things), max(b[2] for b in things),
                                max(b[3] for b in things))
                    by_area[k] = True
            placed = Detections(xyxy=boxes, confidence=tracked.confidence, class_id=tracked.class_id,
                                tracker_id=tracked.tracker_id)
        for zr in self.rules:
            if zr.bin is not None:
                state = zr.bin.update(result)
                present = ([Presence(0, state.box, state.area, state.confidence, now - state.age_s)]
                           if state.overflowing and state.box is not None else [])
                zr.extra = {"fill_fraction": round(state.fraction, 4)}
            else:
                inside = zr.mask.holds(tracked, w, h) if len(tracked) else np.zeros(0, bool)
                if by_area.any():
                    # An object is in the zone where most of it lies; it stands in the zone by its blob's feet
                    # only if most of it lies in no other zone (the feet may be a shopkeeper's legs in front of
                    # crates on the shop-front strip).
                    mine = zr.mask.box_fraction(placed.xyxy, w, h) >= 0.5
                    elsewhere = np.zeros(len(placed), bool)
                    for other in self.rules:
                        if other.zone.id != zr.zone.id and other.bin is None:
                            elsewhere |= other.mask.box_fraction(placed.xyxy, w, h) >= 0.3
                    inside = np.where(by_area, mine | (inside & ~elsewhere), inside)
                present = []
                chosen: Judgement | None = None
                for i in np.flatnonzero(inside):
                    j = judged.get(int(tracked.tracker_id[i]))
                    if j is None or not j.settled or judge_event(j, zr.zone.events) != zr.event:
                        continue
                    if (zr.event == EventType.ROAD_OCCUPATION and j.kind != Kind.STALL
                            and bool(tracked.data["arrived_moving"][i])):
                        continue  # the whole blob drove in and stopped: parking or loading, not goods on the road
                    pres = self._presence(tracked, int(i))
                    since = pres.since if pres.since is not None else now
                    if j.kind_since is not None:
                        # Judging takes a few samples (a seller still setting up looks like people): an object
                        # judged this way for a while counts from a little before (at most KIND_GRACE_S), while a
                        # passing misjudgement still has to last most of the dwell.
                        # A track younger than the place's judgement is the same thing under a new id (traffic
                        # through the zone splits and merges blobs): it counts from when the place was judged so.
                        since = (j.kind_since if j.kind_since < since
                                 else max(since, j.kind_since - min(KIND_GRACE_S, zr.zone.dwell_s / 2)))
                    if zr.event == EventType.BIKE_PARKING and j.unattended_since is not None:
                        # A bike counts from when its rider left it, not from when it stopped.
                        since = max(since, j.unattended_since)
                    pres = Presence(pres.key, pres.box, pres.area, pres.confidence, since)
                    present.append(pres)
                    if chosen is None or pres.area > max((q.area for q in present[:-1]), default=0.0):
                        chosen = j
                if present and self.suppressions is not None and self.suppressions.has(self.camera.id):
                    present = [p for p in present if not self._rejected(zr, p, image, now)]
                zr.extra = {}
                if model is not None:
                    present, zr.extra = model_evidence(zr.event, present, model)
                if chosen is not None and present:
                    zr.extra["judgement"] = zr.judgement = chosen.as_dict(now)
            event = zr.rule.update(now, present)
            if event is not None:
                findings.append(Finding(self._alarm(zr, event), zr.zone))
        ms = (obs.seconds + time.perf_counter() - t0) * 1000.0
        return AnalysisStep(findings, result, tracked, ms)

    def _rejected(self, zr: _ZoneRule, p: Presence, image: np.ndarray, now: float) -> bool:
        assert self.suppressions is not None
        hit = self.suppressions.match(camera_id=self.camera.id, zone_id=zr.zone.id, event=zr.event.value,
                                      box=p.box, signature=crop_signature(image, p.box), now=now)
        if hit is not None:
            self.suppressions.count_suppressed()
        return hit is not None

    @staticmethod
    def _presence(tracked: Detections, i: int) -> Presence:
        x1, y1, x2, y2 = (float(v) for v in tracked.xyxy[i])
        return Presence(int(tracked.tracker_id[i]), (x1, y1, x2, y2), float(tracked.area[i]),
                        float(tracked.confidence[i]), float(tracked.data["first_seen"][i]))

    def _alarm(self, zr: _ZoneRule, event: RuleEvent) -> Alarm:
        extra: dict = dict(zr.extra)
        if "judgement" not in extra and zr.judgement is not None:
            extra["judgement"] = zr.judgement
        if event.keys and zr.bin is None:
            extra["track_ids"] = list(event.keys)
        return Alarm(
            alarm_id=event.alarm_id,
            phase=event.phase,
            camera_id=self.camera.id,
            zone_id=zr.zone.id,
            event=zr.event.value,
            started_at=event.started_at,
            at=event.at,
            dwell_s=round(event.dwell_s, 2),
            confidence=round(float(event.confidence), 3),
            boxes=[(round(x1, 4), round(y1, 4), round(x2, 4), round(y2, 4)) for x1, y1, x2, y2 in event.boxes],
            detector=zr.detector,
            camera_name=self.camera.name,
            zone_name=zr.zone.name,
            extra=extra,
        )
