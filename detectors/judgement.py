"""What stays: a judgement of every stationary candidate — people, a parked two-wheeler, a vehicle, goods with or
without someone minding them, rubbish — with the evidence for it, before any rule fires.

The stationary analyzer (``detectors.stationary``) knows *that* something stays. People waiting at a bus stop, a
person on a bench, a parked e-bike and a hawker's mat all stay; only the mat with its seller is vending. This room
decides *what* each candidate is, model-free by default, from cues that hold on real streets:

- **Living people are never pixel-still.** Over a few samples a standing or sitting person sways, turns, moves
  hands: thin slivers of change along their outline, in the same place, again and again. Goods, bins, bikes and
  parked cars do not do that. ``Judge`` keeps a per-pixel *liveness* score at half resolution from those slivers,
  after removing camera shake (phase correlation of consecutive samples, refined on each candidate's own place so
  a pole's small turn leaves a few tenths of a pixel, with thin sharp things like spokes held to a share of their
  contrast) and leaving out whole bodies walking through (moving foreground components) — a passer-by is a big,
  solid change once, a person waiting is a thin change often.
- **Scale.** ``PersonScale`` learns how tall a person is at each image row from the passers-by the analyzer sees
  moving (upright components, robust line fit), so "low and wide" (goods on a mat), "person-sized" (someone
  sitting very still) and "car-sized" mean something in any camera.
- **How it came.** A thing that drove in at vehicle speed (``arrived_moving`` of the analyzer) is a vehicle: a
  bicycle or e-bike if it is smaller than a car. Two wheels side by side (Hough circles at full resolution) make a
  two-wheeler pushed in by hand.
- **Who stays with it.** Goods count as *attended* in a sample when a live person (or a still, person-shaped
  part, or a neighbouring blob judged people) is within reach; the share of samples, and the seconds, are kept per
  track. Goods attended for most of their stay are a stall (vending) — and stay a stall while the seller steps
  away, and while customers standing at it hide the goods. Someone minds a thing *again* only by staying (3 of 5
  samples): passers-by brushing past a parked bike do not restart its clock.
- **Where it stands.** In traffic a blob is split and renamed every few samples; the *place* is not. What was
  judged where, since when, and since when nobody minded it are kept by place, so dwell and a bike's unattended
  time survive new track ids.
- **A site model**, when configured, overrides by its boxes' roles (person, bike, vehicle, stall/cart/umbrella/
  goods, garbage) through the existing class map; the model-free path stays the default.

``judge_event`` maps a judgement to the event a zone lists (a stall → ``vending``; goods → ``shop_front`` in a
shop-front zone, else ``road_occupation``; rubbish → ``exposed_rubbish``; a bike nobody minds → ``bike_parking``;
people and vehicles → nothing). Pure numpy/OpenCV state, time as an argument, no I/O.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

import cv2
import numpy as np

from config.settings import EventType


class Kind(str, Enum):
    """What a stationary candidate is."""

    PERSON = "person"
    BIKE = "bike"
    VEHICLE = "vehicle"
    GOODS = "goods"
    STALL = "stall"
    RUBBISH = "rubbish"
    UNKNOWN = "unknown"


KIND_LABELS: dict[Kind, tuple[str, str]] = {
    Kind.PERSON: ("仅有行人", "people only"),
    Kind.BIKE: ("非机动车", "parked two-wheeler"),
    Kind.VEHICLE: ("机动车", "motor vehicle"),
    Kind.GOODS: ("货物（无人看管）", "goods, unattended"),
    Kind.STALL: ("货物 + 看摊人", "goods with an attendant"),
    Kind.RUBBISH: ("垃圾", "rubbish"),
    Kind.UNKNOWN: ("不明物体", "unknown object"),
}

ACTIONABLE = frozenset({Kind.STALL})
"""Kinds where someone on site can act on a loudspeaker message (a vendor, a shopkeeper)."""


@dataclass(frozen=True)
class JudgeParams:
    """Tuning of the judgement; lengths in units of the person height ``P`` at the object's foot row."""

    work_width: int = 640
    """Width of the half-resolution working image for liveness."""
    change_threshold: float = 26.0
    """Max-over-channels grey-level change (after shake alignment) that counts a pixel as changed."""
    shake_threshold: float = 16.0
    """With a shaking camera: grey levels outside the 3x3 neighbourhood's range a sample ago that count as changed."""
    solid_width: float = 0.07
    """Changes wider than this (×P) are a body moving, not a person fidgeting in place."""
    body_margin: float = 0.12
    """How far (×P) around a moving body changes are left out (its legs and arms)."""
    history: int = 6
    """Samples of change kept per pixel."""
    live_samples: int = 3
    """A region is live when it changed in at least this many of the last ``history`` samples (a passer-by
    crossing in front of goods changes them once or twice; a person staying there changes all the time)."""
    thin_tolerance: float = 0.6
    """With a shaking camera, registered place by place: the share of a thin structure's contrast that a change
    on it must exceed besides ``change_threshold`` (what a few tenths of a pixel off do to a spoke)."""
    person_reach: float = 0.17
    """A live pixel claims the candidate pixels within this (×P) as part of a person."""
    attend_reach: float = 1.0
    """A person within this (×P) of goods minds them."""
    stall_share: float = 0.5
    """Share of samples with someone minding the goods that makes them a stall."""
    stall_samples: int = 6
    decide_samples: int = 10
    """Goods samples before goods nobody minds are reported as such (before that: undecided)."""
    """Samples of goods seen before the share is trusted (and after which a stall stays a stall)."""
    min_part: float = 0.035
    min_goods: float = 0.12
    """Smallest goods (bounding box, P²) that count as goods set out or left."""
    """Smallest object part, in P² (smaller residue of a person's outline is ignored)."""
    vehicle_length: float = 1.9
    """A thing that drove in longer than this (×P) is a motor vehicle; shorter, a two-wheeler or tricycle."""
    arrival_samples: int = 5
    """Samples of a track (and the tracks it continues) during which "rode in" is evidence of how it came."""
    arrived_ncc: float = 0.6
    """``arrival_ncc`` at which a part drove in (the analyzer's ``vehicle_ncc``)."""
    kind_memory: float = 0.85
    """Per-sample decay of a track's accumulated kind votes (≈ the last 7 samples weigh most)."""
    hidden_goods_s: float = 60.0
    """How long people standing at a stall may hide its goods before the stall counts as gone."""
    wheel_memory_s: float = 5.0
    """How long the wheel test's answer for a box (to 0.5 % of the frame) is reused: a parked thing does not change
    between samples, and the test (Hough circles on the full-resolution crop) is the judgement's costliest step."""


# --- scale -------------------------------------------------------------------------------------------------------


class PersonScale:
    """How tall a person is at each image row, learnt from upright moving foreground components (passers-by).

    ``height_at(y)`` (both normalised to the frame height) follows ``h = a·(y − y0)`` — ground-plane perspective —
    fitted robustly once ``min_samples`` observations are in; before that, or if the fit is implausible, a median
    height; ``None`` with no observations at all."""

    def __init__(self, *, keep: int = 400, min_samples: int = 12) -> None:
        self._obs: deque[tuple[float, float]] = deque(maxlen=keep)
        self.min_samples = min_samples
        self._fit: tuple[float, float] | None = None
        self._median: float | None = None
        self._dirty = False
        self._new = 0
        self.samples = 0

    def observe(self, moving: np.ndarray) -> None:
        """Add upright components of the bool (h, w) moving-foreground mask (analysis resolution)."""
        h, w = moving.shape
        # Heads, torsos and legs of one walker can come apart in the foreground: join them vertically first.
        joined = cv2.morphologyEx(moving.astype(np.uint8), cv2.MORPH_CLOSE, _VERTICAL)
        n, _, stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
        for i in range(1, n):
            x, y, bw, bh, area = (int(v) for v in stats[i])
            if bh < max(8, h // 25) or y <= 0 or y + bh >= h or x <= 0 or x + bw >= w:
                continue
            if not (1.8 <= bh / max(bw, 1) <= 5.0) or area < 0.35 * bw * bh:
                continue
            self._obs.append(((y + bh) / h, bh / h))
            self.samples += 1
            self._new += 1
        # Refit on every observation while learning; once a hundred are in, after every 20 new ones (a fit costs
        # about 1.5 ms and a camera's view does not change between two of them).
        if self._new and (len(self._obs) < 100 or self._new >= 20):
            self._dirty = True
            self._new = 0

    def _refit(self) -> None:
        self._dirty = False
        if not self._obs:
            return
        obs = np.array(self._obs, np.float64)
        # Components are more often cut short (a leg lost, half hidden) than too tall: the upper quartile.
        self._median = float(np.percentile(obs[:, 1], 75))
        if len(obs) < self.min_samples or np.ptp(obs[:, 0]) < 0.08:
            self._fit = None
            return
        order = np.argsort(obs[:, 0])
        bins = [b for b in np.array_split(obs[order], min(8, len(obs) // 6)) if len(b)]
        ys = np.array([np.median(b[:, 0]) for b in bins])
        hs = np.array([np.percentile(b[:, 1], 75) for b in bins])
        a, b = np.polyfit(ys, hs, 1) if len(bins) >= 3 else (0.0, 0.0)
        # People nearer the camera (lower rows) look taller: a slope < 0 or a horizon inside the lower frame is a
        # bad fit (a crowd of merged walkers, cyclists): use the median height instead.
        self._fit = (float(a), float(b)) if a > 0 and -b / a < 0.5 else None

    def height_at(self, y: float) -> float | None:
        """Person height (fraction of frame height) for feet at normalised row ``y``."""
        if self._dirty:
            self._refit()
        if self._fit is not None:
            a, b = self._fit
            return max(0.02, a * y + b)
        return self._median


# --- one sample's parts ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """A piece of a candidate after people are taken out: what it looks like and what it is judged to be."""

    box: tuple[float, float, float, float]
    """Normalised (x1, y1, x2, y2)."""
    kind: Kind
    width_p: float
    """Width in person heights."""
    height_p: float
    why: str


@dataclass
class _Track:
    first: float
    last: float
    votes: dict[Kind, float] = field(default_factory=dict)
    goods_samples: int = 0
    attended_samples: int = 0
    attended_s: float = 0.0
    last_attended: float | None = None
    unattended_since: float | None = None
    stall: bool = False
    people: int = 0
    parts: list[Part] = field(default_factory=list)
    box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    samples: int = 0
    attended_ema: float = 0.0
    """Recent share of goods samples with someone minding them (a seller may sit still at first, then fidget)."""
    goods_ema: float = 0.0
    """How steadily goods (or rubbish) are seen on this track (exponential average of 0/1 per sample)."""
    bike_box: tuple[float, float, float, float] | None = None
    """Where a two-wheeler was recognised on this track: an "object" found there later is that bike."""
    wheel_samples: int = 0
    object_samples: int = 0
    rode_in: bool = False
    goods_seen: float = 0.0
    attended_bits: int = 0
    """Whether someone minded it, one bit per recent sample (bit 0 = the latest)."""
    """When goods (or rubbish) were last seen on this track."""
    family: str = ""
    family_since: float = 0.0
    """Since when the track has been judged this family of kinds (goods, stall and rubbish are one family)."""


@dataclass(frozen=True)
class Judgement:
    """What one tracked candidate is, with the evidence (per track, accumulated over its samples)."""

    track_id: int
    kind: Kind
    confidence: float
    attended_share: float
    """Share of the samples with goods in which someone minded them (0 when no goods were seen)."""
    attended_s: float
    """Seconds with someone minding the goods."""
    unattended_since: float | None
    """Since when nobody has minded it (unix time), or None while someone does."""
    people: int
    """Live people counted at or next to it in the latest sample."""
    parts: tuple[Part, ...]
    source: str = "model-free"
    """``model-free`` or ``model:<roles>`` when a site model's boxes decided."""
    samples: int = 0
    """Samples this judgement rests on (a track and the tracks it continues)."""
    pending: bool = False
    """Goods seen for only a few samples, minded so far: a stall or not is not decided yet (nothing is raised)."""
    kind_since: float | None = None
    """Since when it has been judged this kind (goods, stall and rubbish count as one): the dwell of an event
    starts no earlier (a passer-by who cuts a parked bike in two for a few seconds is no pile of goods that has
    stood for minutes)."""

    @property
    def settled(self) -> bool:
        """Seen long enough (3 samples) to act on: a passer-by cutting a blob in two for a moment creates a new
        track that is gone again before it settles."""
        return self.samples >= 3

    @property
    def label(self) -> str:
        return KIND_LABELS[self.kind][0]

    def evidence(self, now: float | None = None) -> str:
        """Short Chinese evidence line for the review console, e.g. ``货物 + 看摊人 52 s``."""
        zh = KIND_LABELS[self.kind][0]
        if self.kind == Kind.STALL:
            return f"{zh} {self.attended_s:.0f} s"
        if self.kind in (Kind.GOODS, Kind.BIKE, Kind.RUBBISH) and self.unattended_since is not None and now:
            return f"{zh}，无人看管 {max(0.0, now - self.unattended_since):.0f} s"
        if self.kind == Kind.PERSON:
            return f"{zh}（{max(self.people, 1)} 人）"
        return zh

    def as_dict(self, now: float | None = None) -> dict:
        """JSON-ready form carried in ``Alarm.extra['judgement']``."""
        return {"kind": self.kind.value, "label": self.label, "label_en": KIND_LABELS[self.kind][1],
                "actionable": self.kind in ACTIONABLE,
                "confidence": round(self.confidence, 3), "attended_share": round(self.attended_share, 3),
                "attended_s": round(self.attended_s, 1), "people": self.people,
                "evidence": self.evidence(now), "source": self.source,
                "parts": [{"kind": p.kind.value, "box": [round(v, 4) for v in p.box], "why": p.why}
                          for p in self.parts[:6]]}


def judge_event(j: Judgement, events: Sequence[EventType]) -> EventType | None:
    """The event a zone listing ``events`` raises for judgement ``j`` (None: nothing to raise)."""
    listed = set(events)

    def first(*options: EventType) -> EventType | None:
        for e in options:
            if e in listed:
                return e
        return None

    if j.pending:
        return None
    if j.kind == Kind.STALL:
        return first(EventType.VENDING, EventType.SHOP_FRONT, EventType.ROAD_OCCUPATION)
    if j.kind == Kind.GOODS:
        return first(EventType.SHOP_FRONT, EventType.ROAD_OCCUPATION)
    if j.kind == Kind.RUBBISH:
        return first(EventType.EXPOSED_RUBBISH, EventType.ROAD_OCCUPATION)
    if j.kind == Kind.BIKE and j.unattended_since is not None:
        return first(EventType.BIKE_PARKING)
    return None


# --- the judge ---------------------------------------------------------------------------------------------------

_ROLE_KIND = {"person": Kind.PERSON, "bike": Kind.BIKE, "vehicle": Kind.VEHICLE, "stall": Kind.GOODS,
              "cart": Kind.GOODS, "umbrella": Kind.GOODS, "goods": Kind.GOODS, "garbage": Kind.RUBBISH}


_FAMILY = {Kind.GOODS: "goods", Kind.STALL: "goods", Kind.RUBBISH: "goods"}

_WEIGHT = {"two wheels": 3.0, "rode in": 2.0, "drove in, car-sized": 2.0}
"""Vote weight of a part's evidence (default 1): what is seen rarely by mistake counts more."""

_K3 = np.ones((3, 3), np.uint8)
_K5 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], np.uint8)
_VERTICAL = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 7))


def _channel_max(image: np.ndarray) -> np.ndarray:
    """Per pixel, the largest of a (h, w, 3) image's channels."""
    return np.maximum(np.maximum(image[..., 0], image[..., 1]), image[..., 2])


def _disk(r: float) -> np.ndarray:
    k = max(1, int(round(r))) * 2 + 1
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))


def _cover(inner: tuple[float, float, float, float], outer: np.ndarray) -> np.ndarray:
    ix = np.clip(np.minimum(inner[2], outer[:, 2]) - np.maximum(inner[0], outer[:, 0]), 0, None)
    iy = np.clip(np.minimum(inner[3], outer[:, 3]) - np.maximum(inner[1], outer[:, 1]), 0, None)
    area = max((inner[2] - inner[0]) * (inner[3] - inner[1]), 1e-9)
    return ix * iy / area


class Judge:
    """Per-camera judgement state. Call ``update`` once per analysed sample that has stationary candidates."""

    def __init__(self, params: JudgeParams | None = None) -> None:
        self.params = params or JudgeParams()
        self.scale = PersonScale()
        self._prev: np.ndarray | None = None
        self._prev_grey: np.ndarray | None = None
        self._prev_half: np.ndarray | None = None
        self._prev_moving: np.ndarray | None = None
        self._prev_t: float | None = None
        self._live: np.ndarray | None = None
        self._tracks: dict[int, _Track] = {}
        self._places: list[list] = []
        """[family, box, since, last seen, unattended since] of what was judged where (see ``_place``)."""
        self._stalls: list[list] = []
        """Places judged a stall: [box, attended_s, last seen]. A track is a fragile identity (a seller walking
        off splits or renames the blob); the place is not — goods found there again are the same stall."""
        self.shift = (0.0, 0.0)
        """Camera shake estimated between the last two samples (px of the working image)."""
        self.samples = 0
        self._motion_samples = 0
        self._shaky = 0
        self._fresh_t = 0.0
        self._since_fresh = 0
        self._now = 0.0
        self._wheel_memo: dict[tuple[int, ...], tuple[bool, float]] = {}
        self.wheel_tests = 0
        """Wheel tests run (not answered from memory)."""

    # --- scale learning runs on every sample (cheap) ---------------------------------------------------------

    def observe_motion(self, foreground: np.ndarray, stationary: np.ndarray) -> np.ndarray:
        """Feed the moving foreground of a sample (analysis resolution) to the scale; returns the moving mask."""
        moving = foreground & ~stationary
        self._motion_samples += 1
        # Learn fast at first, then keep following slowly (a camera's view does not change often).
        if self.scale.samples < 400 or self._motion_samples % 10 == 0:
            self.scale.observe(moving)
        return moving

    def forget(self) -> None:
        """Drop the working images (no candidates for a while): the next sample starts liveness afresh."""
        self._prev = self._prev_grey = self._prev_half = self._prev_moving = self._live = None
        self._prev_t = None

    # --- the step ---------------------------------------------------------------------------------------------

    def update(self, image: np.ndarray, now: float, tracked, moving: np.ndarray, arrived: np.ndarray | None,
               model=None, background: np.ndarray | None = None,
               shrunk: Sequence[np.ndarray] = ()) -> dict[int, Judgement]:
        """Judge every tracked stationary candidate (``Detections`` with tracker ids and analysis masks).

        ``moving``: bool moving-foreground mask (analysis resolution); ``arrived``: the analyzer's per-pixel
        arrival scores (same resolution) or None; ``model``: a site model's ``Detections`` with ``data['role']``;
        ``background``: the analyzer's planar background (to see through a wheel); ``shrunk``: area shrinks of
        ``image`` already made (the analyzer's ``levels``), one of which may be the working size.
        """
        self._background = background
        self._now = now
        p = self.params
        self.samples += 1
        H, W = image.shape[:2]
        ww = min(p.work_width, W)
        wh = max(1, int(round(H * ww / W)))
        made = [lv for lv in shrunk if lv.shape[:2] == (wh, ww)]
        work = made[0] if made else (
            cv2.resize(image, (ww, wh), interpolation=cv2.INTER_AREA) if (ww, wh) != (W, H) else image)
        work = cv2.blur(work, (3, 3))
        grey = cv2.cvtColor(work, cv2.COLOR_BGR2GRAY).astype(np.float32)
        half = cv2.resize(grey, (max(16, ww // 2), max(16, wh // 2)), interpolation=cv2.INTER_AREA)
        ah, aw = moving.shape
        moving_w = cv2.resize(self._bodies(moving).astype(np.uint8), (ww, wh), interpolation=cv2.INTER_NEAREST)
        fresh = self._prev is None or self._prev.shape != work.shape or (
            self._prev_t is not None and now - self._prev_t > 5.0)
        if fresh:
            self._live = np.zeros((wh, ww), np.uint8)
            self._fresh_t, self._since_fresh = now, 0
        else:
            self._since_fresh += 1
        # Right after a fresh start (first candidates, or a gap of over 5 s between samples on a loaded machine)
        # nobody can look alive yet: people would be judged objects. Tracks judged before the gap keep their
        # judgement until liveness has had ``live_samples`` samples again (new tracks are judged as always).
        warming = self._since_fresh < p.live_samples
        assert self._live is not None
        n = len(tracked)
        regions = np.zeros((wh, ww), bool)
        boxes_w = []
        for i in range(n):
            x1, y1, x2, y2 = (float(v) for v in tracked.xyxy[i])
            ph = self._p_frac(y2) * wh
            mx, my = 1.1 * ph, 0.3 * ph
            bx = (max(0, int(x1 * ww - mx)), max(0, int(y1 * wh - my)), min(ww, int(x2 * ww + mx) + 1),
                  min(wh, int(y2 * wh + my) + 1))
            boxes_w.append(bx)
            regions[bx[1]:bx[3], bx[0]:bx[2]] = True
        # self._live holds, per pixel, one bit per recent sample: "changed then" (bit 0 = this sample).
        self._live <<= 1
        self._live &= (1 << p.history) - 1
        if not fresh:
            assert self._prev is not None and self._prev_grey is not None and self._prev_half is not None
            assert self._prev_moving is not None
            # Shake between the two samples: measured at half the working size first (a quarter of the cost), and
            # again at full size only if that sees a shift or the camera shook lately — the half-size figure is
            # within ~0.1 px on a steady view but up to ~1.5 px off on a shaking one.
            (dx, dy), _ = cv2.phaseCorrelate(self._prev_half, half)
            dx, dy = dx * ww / half.shape[1], dy * wh / half.shape[0]
            if self._shaky or abs(dx) + abs(dy) > 0.2:
                (dx, dy), _ = cv2.phaseCorrelate(self._prev_grey, grey)
            if abs(dx) > 12 or abs(dy) > 12:
                dx = dy = 0.0
            self.shift = (dx, dy)
            m = np.array([[1, 0, dx], [0, 1, dy]], np.float32)
            prev = (cv2.warpAffine(self._prev, m, (ww, wh), borderMode=cv2.BORDER_REPLICATE) if (dx or dy)
                    else self._prev)
            ys, xs = np.nonzero(regions.any(axis=1))[0], np.nonzero(regions.any(axis=0))[0]
            if len(ys) and len(xs):
                y0, y1_, x0, x1_ = ys[0], ys[-1] + 1, xs[0], xs[-1] + 1
                a = work[y0:y1_, x0:x1_]
                b = prev[y0:y1_, x0:x1_]
                if abs(dx) + abs(dy) > 0.3 or self._shaky:
                    # A shaking pole also turns the picture a little: a place away from the centre moves by up to
                    # a pixel more or less than the frame as a whole, and a seated seller's hand moves only one or
                    # two. Each candidate's place is registered on its own (``_register_locally``), then compared
                    # as on a steady camera; where that fails, a pixel only changed if it left the range of its
                    # 3x3 neighbourhood a sample ago.
                    self._shaky = 20 if abs(dx) + abs(dy) > 0.3 else self._shaky - 1
                    changed = np.zeros(a.shape[:2], np.uint8)
                    for bx in boxes_w:
                        r = (slice(bx[1] - y0, bx[3] - y0), slice(bx[0] - x0, bx[2] - x0))
                        ra, rb = a[r], b[r]
                        reg = self._register_locally(ra, rb, bx, (dx, dy))
                        if reg is not None:
                            # What registration leaves (a few tenths of a pixel) changes thin, sharp things (a
                            # bicycle's spokes and frame) by a good part of their contrast: there a change must
                            # exceed that part of the thin thing's own contrast (top-hat / black-hat), while a body's
                            # outline moving a pixel is judged as on a steady camera.
                            g = cv2.cvtColor(reg, cv2.COLOR_BGR2GRAY)
                            thin = cv2.max(cv2.morphologyEx(g, cv2.MORPH_TOPHAT, _K5),
                                           cv2.morphologyEx(g, cv2.MORPH_BLACKHAT, _K5))
                            tolerance = cv2.addWeighted(thin, p.thin_tolerance, thin, 0.0, p.change_threshold)
                            here = _channel_max(cv2.absdiff(ra, reg)) > tolerance
                        else:
                            out_of_range = cv2.max(cv2.subtract(ra, cv2.dilate(rb, _K3)),
                                                   cv2.subtract(cv2.erode(rb, _K3), ra))
                            here = _channel_max(out_of_range) > p.shake_threshold
                        changed[r] |= here.astype(np.uint8)
                else:
                    changed = (_channel_max(cv2.absdiff(a, b)) > p.change_threshold).astype(np.uint8)
                # Whole bodies walking or driving through (now or a sample ago) are not someone staying: solid
                # changes (a torso, a car, seen through a bicycle frame too) and everything attached to them.
                ph_mid = self._p_frac(float(np.median(tracked.xyxy[:, 3])) if n else 0.6) * wh
                solid = cv2.morphologyEx(changed, cv2.MORPH_OPEN, _disk(max(1.0, p.solid_width * ph_mid / 2)))
                walkers = moving_w[y0:y1_, x0:x1_] | self._prev_moving[y0:y1_, x0:x1_] | solid
                walkers = cv2.dilate(walkers, _disk(max(2.0, p.body_margin * ph_mid)))
                changed = changed.astype(bool) & ~walkers.astype(bool)
                self._live[y0:y1_, x0:x1_] |= changed.astype(np.uint8)
        self._live[~regions] = 0
        self._prev, self._prev_grey, self._prev_half, self._prev_moving, self._prev_t = work, grey, half, moving_w, now
        ph_mid = self._p_frac(float(np.median(tracked.xyxy[:, 3])) if n else 0.6) * wh
        live_mask = self._persistent(self._live, 0.08 * ph_mid)

        model_roles: np.ndarray | None = None
        model_boxes: np.ndarray | None = None
        if model is not None and len(model) and model.data.get("role") is not None:
            model_roles = np.asarray(model.data["role"]).astype(str)
            model_boxes = model.xyxy

        # People first (everywhere near the candidates), then each candidate's remaining parts.
        people_mask = np.zeros((wh, ww), np.uint8)
        per_cand: list[tuple[np.ndarray, tuple[int, int, int, int], float]] = []
        for i in range(n):
            x1, y1, x2, y2 = (float(v) for v in tracked.xyxy[i])
            ph = self._p_frac(y2) * wh
            bx = boxes_w[i]
            if tracked.mask is not None:
                cm = cv2.resize(tracked.mask[i].astype(np.uint8), (ww, wh), interpolation=cv2.INTER_NEAREST)
            else:
                cm = np.zeros((wh, ww), np.uint8)
                cm[int(y1 * wh):int(y2 * wh) + 1, int(x1 * ww):int(x2 * ww) + 1] = 1
            sub = (slice(bx[1], bx[3]), slice(bx[0], bx[2]))
            near = cv2.dilate(cm[sub], _disk(0.05 * ph)).astype(bool)
            lv = live_mask[sub] & near
            if lv.any():
                claim = cv2.dilate(lv.astype(np.uint8), _disk(p.person_reach * ph))
                claim = cv2.morphologyEx(claim, cv2.MORPH_CLOSE, _disk(0.1 * ph))
                # A person stands on their feet: what lies just below a live body (legs, shoes, shadow) is theirs.
                k = max(2, int(0.3 * ph))
                claim = cv2.dilate(claim, np.ones((k, 1), np.uint8), anchor=(0, k - 1))
                people_mask[sub] |= (claim.astype(bool) & (cm[sub].astype(bool) | lv.astype(bool))).astype(np.uint8)
            per_cand.append((cm, bx, ph))
        if model_roles is not None and model_boxes is not None:
            for b in model_boxes[model_roles == "person"]:
                people_mask[int(b[1] * wh):int(b[3] * wh) + 1, int(b[0] * ww):int(b[2] * ww) + 1] = 1

        out: dict[int, Judgement] = {}
        found: list[tuple[list[Part], int]] = []
        for i in range(n):
            cm, bx, ph = per_cand[i]
            sub = (slice(bx[1], bx[3]), slice(bx[0], bx[2]))
            cmb = cm[sub].astype(bool)
            pm = people_mask[sub].astype(bool)
            rest = (cmb & ~pm).astype(np.uint8)
            rest = cv2.morphologyEx(rest, cv2.MORPH_OPEN, _disk(0.03 * ph))
            parts: list[Part] = []
            k, labels, stats, _ = cv2.connectedComponentsWithStats(rest, connectivity=8)
            for c in range(1, k):
                x, y, bw, bh, area = (int(v) for v in stats[c])
                if area < p.min_part * ph * ph:
                    continue
                box = ((bx[0] + x) / ww, (bx[1] + y) / wh, (bx[0] + x + bw) / ww, (bx[1] + y + bh) / wh)
                comp = labels == c
                part = self._part(image, box, comp, bw / ph, bh / ph, area / max(bw * bh, 1), arrived,
                                  model_roles, model_boxes, (bx[0] + x, bx[1] + y, bw, bh), (ww, wh), ph)
                if part.kind in (Kind.GOODS, Kind.RUBBISH) and model_roles is None:
                    part = self._piece_of_a_bike(image, part, tracked.xyxy, i, ph / wh)
                parts.append(part)
            found.append((parts, int(pm.sum() > 0.04 * ph * ph)))
        # People staying beside a thing may be a blob of their own (a courier on the phone next to his e-bike):
        # candidates judged people for a few samples mind what is within reach as much as a live person or a still
        # person-shaped part in the thing's own blob does (a passer-by's piece in another blob does not).
        minders: list[tuple[float, ...]] = []
        for i in range(n):
            held = self._tracks.get(int(tracked.tracker_id[i]))
            if held is not None and held.family == Kind.PERSON.value and held.samples >= 3:
                minders.append(tuple(float(v) for v in tracked.xyxy[i]))
        for i in range(n):
            tid = int(tracked.tracker_id[i])
            cm, bx, ph = per_cand[i]
            sub = (slice(bx[1], bx[3]), slice(bx[0], bx[2]))
            parts, live_here = found[i]
            # Still people: a person-shaped part (nobody moved in it) counts as a person too.
            still_people = [q for q in parts if q.kind == Kind.PERSON]
            objects = [q for q in parts if q.kind != Kind.PERSON]
            # Goods big enough to trade or to block the way (a bag in a hand, a pair of shoes is not a stall).
            goods = [q for q in objects if q.kind in (Kind.GOODS, Kind.RUBBISH)
                     and q.width_p * q.height_p >= p.min_goods]
            attended = False
            people = 0
            if goods or objects:
                reach = p.attend_reach * ph
                gx0 = min(int(q.box[0] * ww) for q in objects) - int(reach)
                gx1 = max(int(q.box[2] * ww) for q in objects) + int(reach)
                gy0 = min(int(q.box[1] * wh) for q in objects) - int(0.5 * reach)
                gy1 = max(int(q.box[3] * wh) for q in objects) + int(0.5 * reach)
                win = people_mask[max(0, gy0):max(0, gy1), max(0, gx0):max(0, gx1)]
                attended = bool(win.sum() > 0.04 * ph * ph) or any(
                    _near(q, o.box, reach / ww) for q in [*minders, *(sp.box for sp in still_people)]
                    for o in objects)
                people = self._count_people(win, ph)
            else:
                people = max(self._count_people(people_mask[sub], ph), len(still_people))
            left, top, right, bottom = (float(v) for v in tracked.xyxy[i])
            box = (left, top, right, bottom)
            held = self._tracks.get(tid)
            if warming and held is not None and held.first < self._fresh_t:
                held.last, held.box = now, box
                out[tid] = self._judgement(tid, held, now)
                continue
            out[tid] = self._accumulate(tid, now, box, parts, objects, goods, attended, live_here, still_people,
                                        people, model_roles is not None)
        # Forget tracks not seen for a while.
        for tid in [t for t, tr in self._tracks.items() if now - tr.last > 30.0]:
            del self._tracks[tid]
        return out

    def _register_locally(self, a: np.ndarray, first: np.ndarray, rect: tuple[int, int, int, int],
                          shift: tuple[float, float]) -> np.ndarray | None:
        """The previous working image over ``rect`` (x0, y0, x1, y1) registered to ``a`` (this sample there) to a
        fraction of a pixel, or None when that fails. The frame-wide ``shift`` is refined on the place itself
        (phase correlation of ``a`` and ``first``, the previous crop already shifted frame-wide), then the previous
        image is warped once by shift + residual. Registered this closely, a steady camera's change test works on a
        shaking one (measured on the life suite's shaken scenes: as few changed pixels where nothing moves as on a
        steady view)."""
        x0, y0, x1, y1 = rect
        h, w = a.shape[:2]
        if h < 16 or w < 16 or self._prev is None:
            return None
        prev = self._prev
        H, W = prev.shape[:2]

        def warped(tx: float, ty: float) -> np.ndarray:
            m = int(abs(tx) + abs(ty)) + 3
            X0, Y0, X1, Y1 = max(0, x0 - m), max(0, y0 - m), min(W, x1 + m), min(H, y1 + m)
            out = cv2.warpAffine(prev[Y0:Y1, X0:X1], np.array([[1, 0, tx], [0, 1, ty]], np.float32),
                                 (X1 - X0, Y1 - Y0), borderMode=cv2.BORDER_REPLICATE)
            return out[y0 - Y0:y0 - Y0 + h, x0 - X0:x0 - X0 + w]

        ga = cv2.cvtColor(a, cv2.COLOR_BGR2GRAY).astype(np.float32)
        gb = cv2.cvtColor(first, cv2.COLOR_BGR2GRAY).astype(np.float32)
        (rx, ry), response = cv2.phaseCorrelate(gb, ga, cv2.createHanningWindow((w, h), cv2.CV_32F))
        if abs(rx) > 2.0 or abs(ry) > 2.0 or response < 0.1:
            return None
        if abs(rx) + abs(ry) < 0.05:
            return first
        return warped(shift[0] + rx, shift[1] + ry)

    def judgement(self, track_id: int) -> Judgement | None:
        """The latest judgement of a track, if it was judged."""
        tr = self._tracks.get(track_id)
        return None if tr is None else self._judgement(track_id, tr, tr.last)

    # --- pieces -----------------------------------------------------------------------------------------------

    def _p_frac(self, y: float) -> float:
        """Person height as a fraction of the frame height at normalised row ``y`` (a guess before learning)."""
        h = self.scale.height_at(y)
        return h if h is not None else 0.22

    def _persistent(self, bits: np.ndarray, join_px: float) -> np.ndarray:
        """uint8 mask of pixels near changes that recur: connected groups of recently changed pixels whose changes
        fall in at least ``live_samples`` of the last ``history`` samples."""
        p = self.params
        # A pixel that changed once is noise, rain or a passer-by's edge; one at a fidgeting outline changes again.
        any_change = (_POPCOUNT[bits] >= 2).astype(np.uint8)
        if not any_change.any():
            return any_change
        # Work on the rectangle around the changes (a margin wider than the join): the same groups, far less area.
        disk = _disk(max(1.0, join_px))
        m = disk.shape[0]
        ys, xs = np.nonzero(any_change.any(axis=1))[0], np.nonzero(any_change.any(axis=0))[0]
        y0, y1, x0, x1 = max(0, ys[0] - m), ys[-1] + 1 + m, max(0, xs[0] - m), xs[-1] + 1 + m
        changes, crop_bits = any_change[y0:y1, x0:x1], bits[y0:y1, x0:x1]
        grown = cv2.dilate(changes, disk)
        n, labels = cv2.connectedComponents(grown, connectivity=8)
        out = np.zeros_like(any_change)
        if n <= 1:
            return out
        # OR of the change bits per group, then how many samples each group saw change in.
        where = changes.astype(bool)
        seen = np.zeros(n, np.uint8)
        np.bitwise_or.at(seen, labels[where], crop_bits[where])
        counts = np.unpackbits(seen[:, None], axis=1).sum(axis=1)
        keep = counts >= p.live_samples
        keep[0] = False
        out[y0:y1, x0:x1] = keep[labels] & where
        return out

    @staticmethod
    def _bodies(moving: np.ndarray) -> np.ndarray:
        """Moving components big enough to be a whole body or vehicle (a fidget sliver is not)."""
        h, w = moving.shape
        n, labels, stats, _ = cv2.connectedComponentsWithStats(moving.astype(np.uint8), connectivity=8)
        if n <= 1:
            return np.zeros_like(moving, bool)
        big = stats[:, cv2.CC_STAT_AREA] >= max(12, int(0.0006 * h * w))
        big[0] = False
        return big[labels]

    @staticmethod
    def _count_people(mask: np.ndarray, ph: float) -> int:
        if not mask.any():
            return 0
        cols = mask.any(axis=0)
        width = float(cols.sum())
        return max(1, int(round(width / max(0.32 * ph, 1.0))))

    def _part(self, image: np.ndarray, box, comp: np.ndarray, w_p: float, h_p: float, fill: float,
              arrived: np.ndarray | None, roles, mboxes, pix: tuple[int, int, int, int], work: tuple[int, int],
              ph: float) -> Part:
        p = self.params
        if roles is not None and mboxes is not None and len(mboxes):
            c = _cover(box, mboxes)
            if c.max() >= 0.5:
                role = str(roles[int(np.argmax(c))])
                kind = _ROLE_KIND.get(role)
                if kind is not None:
                    return Part(box, kind, w_p, h_p, f"model:{role}")
        if 0.45 <= w_p <= 2.0 and 0.3 <= h_p <= 1.0 and self._wheels(image, box, ph / work[1]):
            return Part(box, Kind.BIKE, w_p, h_p, "two wheels")
        if 0.4 <= h_p <= 1.3 and w_p <= 0.6 and h_p / max(w_p, 1e-3) >= 1.3:
            return Part(box, Kind.PERSON, w_p, h_p, "person-shaped, still")
        if arrived is not None:
            ah, aw = arrived.shape
            x0, y0 = int(box[0] * aw), int(box[1] * ah)
            x1, y1 = max(x0 + 1, int(math.ceil(box[2] * aw))), max(y0 + 1, int(math.ceil(box[3] * ah)))
            a = arrived[y0:y1, x0:x1]
            if a.size and float(np.median(a)) >= p.arrived_ncc:
                if w_p >= p.vehicle_length and h_p >= 0.45:
                    return Part(box, Kind.VEHICLE, w_p, h_p, "drove in, car-sized")
                if w_p >= 0.45 and h_p >= 0.4:
                    return Part(box, Kind.BIKE, w_p, h_p, "rode in")
        if h_p <= 0.45 and w_p <= 1.6 and _bag_like(image, box, fill):
            return Part(box, Kind.RUBBISH, w_p, h_p, "low, bag-like")
        return Part(box, Kind.GOODS, w_p, h_p, "object")

    def _wheels(self, image: np.ndarray, box, p_frac: float) -> bool:
        """``_has_wheels`` for ``box``, answered from memory when the same box was tested within
        ``wheel_memory_s`` (a "no" within 40 % of it: at low bit rate a wheel is found in some samples only, and a
        remembered "no" would take those chances away)."""
        now, keep = self._now, self.params.wheel_memory_s
        key = tuple(int(round(float(v) * 200)) for v in box)
        hit = self._wheel_memo.get(key)
        if hit is not None and (0.0 <= now - hit[1] <= (keep if hit[0] else keep / 2.5)):
            return hit[0]
        found = _has_wheels(image, box, p_frac, self._background)
        self.wheel_tests += 1
        if len(self._wheel_memo) >= 256:
            self._wheel_memo = {k: v for k, v in self._wheel_memo.items() if 0.0 <= now - v[1] <= keep}
        self._wheel_memo[key] = (found, now)
        return found

    def _piece_of_a_bike(self, image: np.ndarray, part: Part, boxes: np.ndarray, own: int, p_frac: float) -> Part:
        """A bicycle is mostly see-through: its frame and wheels can come apart into several stationary
        candidates (most often when it arrived between two samples), none of which has two wheels by itself. A
        goods-like piece whose candidate stands beside others at the same feet level is a bike's piece if the
        group has two wheels."""
        x1, y1, x2, y2 = (float(v) for v in boxes[own])
        gap = 0.3 * p_frac * image.shape[0] / image.shape[1]  # a third of a person's height, as a width
        group = [(x1, y1, x2, y2)]
        for j, (a1, b1, a2, b2) in enumerate(boxes):
            if j != own and a1 <= x2 + gap and a2 >= x1 - gap and abs(b2 - y2) <= 0.35 * p_frac:
                group.append((float(a1), float(b1), float(a2), float(b2)))
        if len(group) < 2:
            return part
        union = (min(b[0] for b in group), min(b[1] for b in group), max(b[2] for b in group),
                 max(b[3] for b in group))
        ww = (union[2] - union[0]) * image.shape[1] / (p_frac * image.shape[0])
        hh = (union[3] - union[1]) / p_frac
        # The group may hold someone standing beside the bike too: taller than a bike alone.
        if 0.45 <= ww <= 2.0 and 0.3 <= hh <= 1.3 and self._wheels(image, union, p_frac):
            return Part(part.box, Kind.BIKE, part.width_p, part.height_p, "two wheels")
        return part

    def _accumulate(self, tid: int, now: float, box, parts: list[Part], objects: list[Part], goods: list[Part],
                    attended: bool, live_here: int, still_people: list[Part], people: int, model: bool) -> Judgement:
        p = self.params
        tr = self._tracks.get(tid)
        if tr is None:
            tr = self._tracks[tid] = _Track(first=now, last=now, box=box)
            # A new track where another was a moment ago (split by a passer-by, renamed after a merge) continues
            # what was known of that place.
            for old in self._tracks.values():
                if old is not tr and now - old.last <= 10.0 and _overlap(old.box, box) >= 0.5:
                    for k, v in old.votes.items():
                        tr.votes[k] = max(tr.votes.get(k, 0.0), v)
                    tr.samples = max(tr.samples, old.samples)
                    tr.first = min(tr.first, old.first)
                    tr.stall |= old.stall
                    tr.goods_samples, tr.attended_samples = (max(tr.goods_samples, old.goods_samples),
                                                             max(tr.attended_samples, old.attended_samples))
                    tr.attended_s = max(tr.attended_s, old.attended_s)
                    tr.goods_ema = max(tr.goods_ema, old.goods_ema)
                    tr.goods_seen = max(tr.goods_seen, old.goods_seen)
                    tr.attended_ema = max(tr.attended_ema, old.attended_ema)
                    tr.bike_box = tr.bike_box or old.bike_box
                    tr.wheel_samples = max(tr.wheel_samples, old.wheel_samples)
                    tr.rode_in |= old.rode_in
                    tr.object_samples = max(tr.object_samples, old.object_samples)
                    if old.unattended_since is not None:
                        tr.unattended_since = min(tr.unattended_since or now, old.unattended_since)
        dt = min(max(now - tr.last, 0.0), 5.0) if tr.last != now else 0.0
        tr.last = now
        tr.box = box
        tr.samples += 1
        for k in list(tr.votes):
            tr.votes[k] *= p.kind_memory
        if tr.samples > p.arrival_samples:
            # How a thing came is seen when it comes: "rode in" on a thing that has stood for a while is traffic
            # passing over it (a cyclist in front of a shop's crates), not how the crates arrived.
            late = [q for q in objects if q.why == "rode in"]
            if late:
                objects = [q for q in objects if q not in late]
                parts = [q for q in parts if q not in late]
        bikes = [q for q in objects if q.kind == Kind.BIKE]
        tr.object_samples += bool(objects)
        tr.wheel_samples += bool(bikes)
        tr.rode_in |= any(q.why == "rode in" for q in bikes)
        if bikes:
            b0 = bikes[0].box
            tr.bike_box = b0 if tr.bike_box is None else (min(b0[0], tr.bike_box[0]), min(b0[1], tr.bike_box[1]),
                                                           max(b0[2], tr.bike_box[2]), max(b0[3], tr.bike_box[3]))
        recognised = tr.rode_in or (tr.wheel_samples >= 2 and tr.wheel_samples >= 0.15 * tr.object_samples)
        if tr.bike_box is not None and goods and recognised:
            # Hough misses a wheel now and then: an "object" where the bike was recognised is the bike.
            same = [q for q in goods if _overlap(q.box, tr.bike_box) >= 0.6 and q.width_p >= 0.4]
            if same:
                goods = [q for q in goods if q not in same]
                objects = [q for q in objects if q not in same]
                bikes = bikes + [Part(q.box, Kind.BIKE, q.width_p, q.height_p, "where the bike was") for q in same]
        if goods:
            tr.goods_seen = now
        # A stall's customers and its seller stand over the goods and hide them: while people are at a stall whose
        # goods were seen lately, goods not seen are hidden, not gone (people crowding round a mat are no reason to
        # call it people only and clear the alarm, to raise it again a dwell later).
        hidden = (not goods and tr.stall and bool(live_here or still_people) and tr.bike_box is None
                  and not tr.rode_in and tr.goods_samples >= p.decide_samples
                  and now - tr.goods_seen <= p.hidden_goods_s)
        if not hidden:
            tr.goods_ema = 0.7 * tr.goods_ema + 0.3 * (1.0 if goods else 0.0)
        if bikes:
            # Two wheels seen, or a ride in, is strong evidence; not seeing them (a wheel hidden, Hough missing it)
            # is weak evidence: a bike once recognised outweighs a few "object" samples.
            tr.votes[Kind.BIKE] = tr.votes.get(Kind.BIKE, 0.0) + _WEIGHT.get(bikes[0].why, 1.0)
        if goods:
            tr.goods_samples += 1
            main = max(goods, key=lambda q: q.width_p * q.height_p)
            # Goods set out beside a bike or tricycle in the same sample are goods for sure (a vendor's cart).
            tr.votes[main.kind] = tr.votes.get(main.kind, 0.0) + (2.0 if bikes else 1.0)
            tr.attended_ema = 0.75 * tr.attended_ema + 0.25 * (1.0 if attended else 0.0)
            if attended:
                tr.attended_samples += 1
                tr.attended_s += dt if tr.last_attended is not None else 1.0
        elif objects and not bikes:
            main = max(objects, key=lambda q: q.width_p * q.height_p)
            tr.votes[main.kind] = tr.votes.get(main.kind, 0.0) + _WEIGHT.get(main.why, 1.0)
        elif bikes:
            pass
        elif live_here or still_people:
            tr.votes[Kind.PERSON] = tr.votes.get(Kind.PERSON, 0.0) + 1.0
        else:
            tr.votes[Kind.UNKNOWN] = tr.votes.get(Kind.UNKNOWN, 0.0) + 0.5
        tr.attended_bits = ((tr.attended_bits << 1) | int(attended)) & 0b11111
        if attended:
            tr.last_attended = now
            # Someone minds it again only if they stay: passers-by brushing past a parked bike in busy traffic
            # are near it for a sample or two, its owner (or a seller) is there most of the time.
            if tr.unattended_since is None or _POPCOUNT[tr.attended_bits] >= 3:
                tr.unattended_since = None
        elif tr.unattended_since is None:
            tr.unattended_since = now
        share = tr.attended_samples / tr.goods_samples if tr.goods_samples else 0.0
        if (tr.goods_samples >= p.stall_samples and max(share, tr.attended_ema) >= p.stall_share
                and tr.goods_ema >= 0.5):
            tr.stall = True
        if goods:
            gbox = (min(q.box[0] for q in goods), min(q.box[1] for q in goods), max(q.box[2] for q in goods),
                    max(q.box[3] for q in goods))
            self._stalls = [s for s in self._stalls if now - s[2] <= 90.0]
            place = next((s for s in self._stalls if _overlap(s[0], gbox) >= 0.4), None)
            if tr.stall:
                if place is None:
                    self._stalls.append([gbox, tr.attended_s, now])
                else:
                    place[0], place[1], place[2] = gbox, max(place[1], tr.attended_s), now
            elif place is not None:
                tr.stall = True
                tr.attended_s = max(tr.attended_s, place[1])
                place[2] = now
        tr.people = people
        tr.parts = parts
        j = self._judgement(tid, tr, now)
        if model:
            roles = ",".join(sorted({q.why[6:] for q in parts if q.why.startswith("model:")}))
            j = Judgement(j.track_id, j.kind, j.confidence, j.attended_share, j.attended_s, j.unattended_since,
                          j.people, j.parts, f"model:{roles}" if roles else "model-free", j.samples, j.pending,
                          j.kind_since)
        return j

    def _place(self, family: str, box, now: float) -> list:
        """The record of where this family of kinds has been judged: [family, box, since, last seen, unattended
        since]. Tracks split, merge and get new ids as people walk past and sellers move about; the place where
        goods (or a bike) stand does not."""
        self._places = [pl for pl in self._places if now - pl[3] <= 10.0]
        for pl in self._places:
            if pl[0] == family and _overlap(pl[1], box) >= 0.4:
                pl[1], pl[3] = box, now
                return pl
        pl = [family, box, now, now, None]
        self._places.append(pl)
        return pl

    def _judgement(self, tid: int, tr: _Track, now: float) -> Judgement:
        total = sum(tr.votes.values()) or 1.0
        share = tr.attended_samples / tr.goods_samples if tr.goods_samples else 0.0
        if tr.goods_ema >= 0.5:
            # Goods are there (beside a tricycle, a bike or people, or alone): the track is about the goods.
            kind = Kind.RUBBISH if tr.votes.get(Kind.RUBBISH, 0.0) > tr.votes.get(Kind.GOODS, 0.0) else Kind.GOODS
            score = tr.votes.get(kind, 0.0)
            if tr.stall:
                kind = Kind.STALL
        else:
            rest = {k: v for k, v in tr.votes.items() if k not in (Kind.GOODS, Kind.RUBBISH)}
            kind, score = max(rest.items(), key=lambda kv: kv[1]) if rest else (Kind.UNKNOWN, 0.0)
        family = _FAMILY.get(kind, kind.value)
        place = self._place(family, tr.box, now)
        tr.family_since = place[2]
        tr.family = family
        # Nobody has minded the thing at this place since when (kept by the place, not the track: in traffic a
        # parked bike's blob gets a new id every few samples, and each new track would start the clock again).
        # Only a track seen a few samples may say someone minds it now.
        if tr.unattended_since is None:
            if tr.samples >= 3:
                place[4] = None
        else:
            place[4] = tr.unattended_since if place[4] is None else min(place[4], tr.unattended_since)
        unattended_since = place[4] if tr.unattended_since is not None else None
        # Goods just set out: whether someone minds them takes a few samples to see (a seller sitting down,
        # still for a moment): not decided before ``decide_samples``.
        pending = kind in (Kind.GOODS, Kind.RUBBISH) and tr.goods_samples < self.params.decide_samples
        return Judgement(tid, kind, float(score / total), share, tr.attended_s, unattended_since, tr.people,
                         tuple(tr.parts), samples=tr.samples, pending=pending, kind_since=tr.family_since)


def _overlap(a, b) -> float:
    """Intersection over the smaller of two normalised boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    small = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return ix * iy / max(small, 1e-9)


def _near(a, b, reach: float) -> bool:
    return not (a[2] + reach < b[0] or b[2] + reach < a[0] or a[3] + reach < b[1] or b[3] + reach < a[1])


def _crop(image: np.ndarray, box, pad: float = 0.0) -> np.ndarray:
    H, W = image.shape[:2]
    x1, y1, x2, y2 = box
    px, py = (x2 - x1) * pad, (y2 - y1) * pad
    return image[max(0, int((y1 - py) * H)):min(H, int(math.ceil((y2 + py) * H))),
                 max(0, int((x1 - px) * W)):min(W, int(math.ceil((x2 + px) * W)))]


def _has_wheels(image: np.ndarray, box, p_frac: float, background: np.ndarray | None = None) -> bool:
    """Two wheels side by side in the lower part of ``box`` (full-resolution Hough circles): a two-wheeler. With
    the analyzer's ``background``, a wheel must also be see-through (the ground shows inside the tyre), which a
    bag, a ball or the end of a pipe is not."""
    crop = _crop(image, box, 0.08)
    if crop.size == 0:
        return False
    H = image.shape[0]
    ph = p_frac * H
    scale = min(1.0, 160.0 / max(ph, 1.0))
    g = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    if scale < 1.0:
        g = cv2.resize(g, (max(1, int(g.shape[1] * scale)), max(1, int(g.shape[0] * scale))),
                       interpolation=cv2.INTER_AREA)
    g = cv2.medianBlur(g, 3)
    bg_g: np.ndarray | None = None
    if background is not None:
        bh, bw = background.shape[1:]
        H, W = image.shape[:2]
        x1, y1, x2, y2 = box
        px, py = (x2 - x1) * 0.08, (y2 - y1) * 0.08
        bx0, by0 = max(0, int((x1 - px) * bw)), max(0, int((y1 - py) * bh))
        bx1 = min(bw, max(bx0 + 1, int(math.ceil((x2 + px) * bw))))
        by1 = min(bh, max(by0 + 1, int(math.ceil((y2 + py) * bh))))
        region = background[:, by0:by1, bx0:bx1].transpose(1, 2, 0)
        if region.size:
            grey_bg = 0.114 * region[..., 0] + 0.587 * region[..., 1] + 0.299 * region[..., 2]
            resized: np.ndarray = cv2.resize(grey_bg.astype(np.float32), (g.shape[1], g.shape[0]),
                                             interpolation=cv2.INTER_LINEAR)  # float32 in, float32 out
            gain = float(np.median(g.astype(np.float32) / np.maximum(resized, 1.0)))
            resized *= gain
            bg_g = resized
    r0, r1 = max(4, int(0.1 * ph * scale)), max(6, int(0.26 * ph * scale))
    circles = cv2.HoughCircles(g, cv2.HOUGH_GRADIENT, dp=1.0, minDist=1.4 * r0, param1=90, param2=18,
                               minRadius=r0, maxRadius=r1)
    if circles is None:
        return False
    c = circles[0]
    # Wheels stand on the ground: their bottoms reach the lowest fifth of the box.
    rings = np.array([_is_ring(g, ci[0], ci[1], ci[2], bg_g) for ci in c], bool)
    lower = c[(c[:, 1] + c[:, 2] >= 0.8 * g.shape[0]) & rings]
    for i in range(len(lower)):
        for j in range(i + 1, len(lower)):
            (xa, ya, ra), (xb, yb, rb) = lower[i], lower[j]
            ratio = max(ra, rb) / max(min(ra, rb), 1e-3)
            sep = abs(xa - xb)
            # A wheelbase is about two thirds of a person's height (1.0-1.1 m against 1.7 m).
            if (ratio <= 1.35 and abs(ya - yb) <= 0.35 * max(ra, rb) and 1.6 * min(ra, rb) <= sep <= 5.5 * max(ra, rb)
                    and 0.4 * ph * scale <= sep <= 0.95 * ph * scale):
                return True
    return False


def _is_ring(g: np.ndarray, x: float, y: float, r: float, bg: np.ndarray | None = None) -> bool:
    """A wheel is a ring: its rim (the tyre) differs clearly from what lies inside it (spokes over the ground);
    a bag, a ball or a fruit is the same colour rim to middle."""
    ang = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    h, w = g.shape

    def ring(rad: float) -> np.ndarray:
        xs = np.clip((x + rad * np.cos(ang)).astype(int), 0, w - 1)
        ys = np.clip((y + rad * np.sin(ang)).astype(int), 0, h - 1)
        return g[ys, xs].astype(np.float32)

    inner = ring(0.55 * r)
    # The Hough radius is rough: look for the tyre anywhere from 0.8 r to 1.15 r along each ray. Tyres are black
    # rubber: along most rays the rim is clearly darker than what lies inside the wheel.
    rim = np.min([ring(f * r) for f in (0.8, 0.88, 0.96, 1.04, 1.12)], axis=0)
    if float((rim < inner - 30.0).mean()) < 0.6 or float(np.median(rim)) > 90.0:
        return False
    if bg is None:
        return True
    xs = np.clip((x + 0.55 * r * np.cos(ang)).astype(int), 0, w - 1)
    ys = np.clip((y + 0.55 * r * np.sin(ang)).astype(int), 0, h - 1)
    return float((np.abs(inner - bg[ys, xs]) < 30.0).mean()) >= 0.35


def _bag_like(image: np.ndarray, box, fill: float) -> bool:
    """Rounded lumps (bags, litter) rather than made things: goods, crates, boxes and a seller's cloth all show long
    straight edges; bags do not, and do not fill their box."""
    crop = _crop(image, box, 0.05)
    if crop.size == 0 or fill > 0.85:
        return False
    g = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    edges = cv2.Canny(cv2.GaussianBlur(g, (3, 3), 0), 60, 140)
    length = 0.35 * max(g.shape)
    lines = cv2.HoughLinesP(edges, 1, np.pi / 180, threshold=max(12, int(length * 0.6)), minLineLength=length,
                            maxLineGap=3)
    return lines is None or len(lines) <= 1
