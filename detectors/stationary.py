"""Stationary-object analysis without any model: what arrived in the scene and STAYS.

Per camera, at ~1 sample per second, on a small blurred copy of the frame (``analysis_width`` px wide):

1. **Long-term background**, kept in the light it was learnt in: the per-pixel temporal median of the first
   ``init_samples`` samples (passers-by at start-up vanish), then updated selectively towards the current
   sample *divided by the lighting field* — quickly where the pixel shows background, very slowly where it
   does not (an object that stays is absorbed only after tens of minutes).
2. **Lighting field** (``photometry.illumination_field``): per 20-px cell, the median ratio now/background
   over pixels that showed background last time, smoothed to every pixel. Global exposure changes, dusk and
   cloud shadows are explained by it; the sample is compared with ``background × field``. Because the
   background itself is never re-lit, the part under an object stays consistent with its surroundings
   (a lagging per-pixel update used to leave a false edge there that made real objects look like ghosts).
3. **Light-only test** (``photometry.lighting_only``): foreground that differs from the lit background only
   by light — brightness ratio in a band, chromaticity kept, local texture kept — is not foreground (a sharp
   shadow edge the coarse field cannot follow), and is absorbed by the quick background update.
4. **Short-term consistency**: a foreground pixel is *stationary* when its value matches at least
   ``min_matches`` of the last ``history`` samples (lighting-matched). A walking person or a driving car
   covers different pixels each second; a stall or a pile of goods keeps the same pixels. Matching *some* (not
   all) earlier samples keeps a stall stationary while a passer-by briefly walks in front of it.
5. **Blobs**: morphology cleanup, connected components → ``Detections`` (class ``STATIONARY_OBJECT``) with a
   per-pixel "stationary since" map (dated from the earliest sample a new pixel matched), so each blob carries
   an age.
6. **Ghosts**: an object that was in the background at start-up and then leaves shows up as a stationary
   "hole". Its outline is a strong edge in the background and a weak one in the current frame (the opposite
   of a real object), so such blobs are absorbed into the background at once instead of being reported.
7. **How it arrived** (``photometry.arrival_match``): while a blob is young, its appearance is searched for,
   displaced along its row, in frames from before it stopped. Found, and it moved at vehicle speed → it drove
   in (``data['arrived_moving']``, a vehicle that parked); not found, or walking pace → it was put down or
   pushed in by hand.

Everything is pure numpy/OpenCV state driven by ``update(image, now)``; no clocks, no I/O.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from detectors.detections import STATIONARY_OBJECT, Detections
from detectors.photometry import arrival_match, grey, illumination_field, lighting_only


@dataclass(frozen=True)
class StationaryParams:
    """Tuning of ``StationaryObjectAnalyzer``; grey levels refer to the blurred 8-bit analysis image."""

    analysis_width: int = 320
    init_samples: int = 5
    """Samples whose per-pixel median becomes the first background."""
    blur_ksize: int = 5
    diff_threshold: float = 24.0
    """Max-over-channels difference from the gain-matched background that makes a pixel foreground."""
    stable_threshold: float = 16.0
    """Max-over-channels difference from an earlier sample that counts as the same pixel value."""
    history: int = 4
    """Earlier samples kept for the consistency check."""
    min_matches: int = 2
    """How many of them a foreground pixel must match to be stationary (so it stayed ~2 s or more)."""
    fast_tau_s: float = 8.0
    """Background time constant where the scene shows background (lighting drift)."""
    slow_tau_s: float = 1800.0
    """Background time constant under foreground: how slowly a staying object is absorbed."""
    grace_s: float = 3.0
    """A pixel keeps its stationary age through an occlusion this long."""
    min_blob_fraction: float = 0.0004
    """Smallest blob reported, as a fraction of the frame."""
    ghost_ratio: float = 0.7
    """A blob whose outline is this much weaker now than in the background is a ghost (something left)."""
    max_gain_step: float = 0.5
    """A change of the global lighting factor by more than ± this within one sample is a scene cut (camera
    moved, day/night switch): the background is rebuilt."""
    light_cell: int = 20
    """Cell size (analysis px) of the illumination field: smaller follows shadow edges closer, costs more."""
    lighting_test: bool = True
    """Drop foreground that differs from the background only by light (``photometry.lighting_only``)."""
    vehicle_history: int = 6
    """Grey frames kept to test how a new blob arrived (``photometry.arrived_moving``)."""
    vehicle_ncc: float = 0.6
    """Correlation at which a new blob counts as having driven in (``data['arrived_moving']``)."""
    vehicle_min_speed: float = 0.1
    """Frame widths per second a blob must have moved at (before it stopped) to count as a vehicle: a car or a
    tricycle parks at ≥ 0.2 here; a person carrying a box or pushing a hand cart walks at ≤ 0.1 in most views.
    Perspective makes this a camera-dependent guess; the speed is a lower bound (the stop may fall between
    samples)."""
    vehicle_young_s: float = 4.0
    """Blobs are tested for how they arrived while their median stationary age is below this."""
    stabilise: bool = True
    """Undo camera shake (a pole in the wind): each sample is shifted back onto the background (phase correlation
    at half the analysis size), so what stays keeps its pixels."""
    stabilise_every: int = 10
    """A camera found steady is checked for shake only every this many samples (shaky ones every sample)."""

    def __post_init__(self) -> None:
        if self.min_matches > self.history:
            raise ValueError(f"min_matches ({self.min_matches}) must not exceed history ({self.history})")
        if self.init_samples < 1:
            raise ValueError(f"init_samples must be >= 1; got {self.init_samples}")
        if self.blur_ksize % 2 != 1:
            raise ValueError(f"blur_ksize must be odd; got {self.blur_ksize}")


@dataclass(eq=False)
class StationaryResult:
    """One analysed sample: the stationary blobs and the masks they came from (analysis resolution)."""

    ready: bool
    """False while the first background is still being collected."""
    detections: Detections
    """Stationary blobs (class ``STATIONARY_OBJECT``, masks set, ``data['age_s']``)."""
    stationary: np.ndarray
    """bool (h, w): pixels of reported blobs."""
    foreground: np.ndarray
    """bool (h, w): pixels that differ from the background (moving or not)."""
    size: tuple[int, int]
    """(w, h) of the analysis image."""
    gain: float = 1.0
    """Global lighting now relative to the light the background was learnt in (median of the field)."""
    ghosts: int = 0
    """Blobs absorbed as ghosts in this sample."""
    age: np.ndarray | None = None
    """float32 (h, w): seconds each stationary pixel has been stationary (0 elsewhere)."""
    arrived: np.ndarray | None = None
    """float32 (h, w): per-pixel arrival score (how well the pixel's blob matched a displaced copy of itself in a
    frame from before it stopped: ≥ ``vehicle_ncc`` = drove in). The analyzer's own array, valid until the next
    ``update``: read it, do not keep it."""


# Images are kept planar, float32 (3, h, w): reductions over the colour axis are then fast elementwise maxima.


def _max_abs_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a - b).max(axis=0)


def area_pyramid(image: np.ndarray, width: int, height: int) -> list[np.ndarray]:
    """``image`` and its pixel-area shrinks down to (width, height): exact halvings while the image is at least
    twice as large as asked, then one last resize (OpenCV's 2x area path is about four times faster than a direct
    4x one: 1280x720 → 320x180 in 0.4 ms instead of 1.1 ms; the result differs from the direct one by at most one
    grey level). The last level is the asked size; the first is ``image`` itself."""
    levels = [image]
    h, w = image.shape[:2]
    while w >= 2 * width and h >= 2 * height and w % 2 == 0 and h % 2 == 0 and (w, h) != (width, height):
        w, h = w // 2, h // 2
        levels.append(cv2.resize(levels[-1], (w, h), interpolation=cv2.INTER_AREA))
    if (w, h) != (width, height):
        levels.append(cv2.resize(levels[-1], (width, height), interpolation=cv2.INTER_AREA))
    return levels


def _bounding_slices(mask: np.ndarray, margin: int) -> tuple[slice, slice] | None:
    """(rows, cols) slices of ``mask``'s set pixels grown by ``margin`` (clipped to the image); None when empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    h, w = mask.shape
    return (slice(max(0, int(rows[0]) - margin), min(h, int(rows[-1]) + 1 + margin)),
            slice(max(0, int(cols[0]) - margin), min(w, int(cols[-1]) + 1 + margin)))


def _edge_strength(img: np.ndarray) -> np.ndarray:
    """Per-pixel max over channels of |d/dx| + |d/dy| for a planar (3, h, w) image."""
    out = None
    for plane in img:
        gx = cv2.Sobel(plane, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(plane, cv2.CV_32F, 0, 1, ksize=3)
        e = np.abs(gx) + np.abs(gy)
        out = e if out is None else np.maximum(out, e)
    assert out is not None
    return out


_K3 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
_K5 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
_K7 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))


class StationaryObjectAnalyzer:
    """Finds objects that appeared in a fixed camera's view and stay put; see the module docstring."""

    def __init__(self, params: StationaryParams | None = None) -> None:
        self.params = params or StationaryParams()
        self._size: tuple[int, int] | None = None
        self._init: list[np.ndarray] = []
        self._bg: np.ndarray | None = None
        self._history: deque[tuple[np.ndarray, np.ndarray]] = deque(maxlen=self.params.history)
        self._grey_hist: deque[tuple[np.ndarray, float]] = deque(maxlen=self.params.vehicle_history)
        self._hist_times: deque[float] = deque(maxlen=self.params.history)
        self._arrived: np.ndarray | None = None
        self._overall = 1.0
        self._fg_prev: np.ndarray | None = None
        self._since: np.ndarray | None = None
        self._last_seen: np.ndarray | None = None
        self._last_now: float | None = None
        self._prev_now: float | None = None
        self.samples = 0
        self.resets = 0
        self._shaky = 0
        self._window: np.ndarray | None = None
        self.levels: list[np.ndarray] = []
        """The last frame's area shrinks down to the analysis size (``area_pyramid``): a judgement working
        at one of those sizes takes it from here instead of resizing the frame again."""
        self.shift = (0.0, 0.0)
        """The last shake correction applied (analysis px)."""

    # --- state -------------------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Whether the background has been initialised."""
        return self._bg is not None

    @property
    def background(self) -> np.ndarray | None:
        """float32 (h, w, 3) BGR background at analysis resolution (a copy), or None before initialisation."""
        return None if self._bg is None else np.ascontiguousarray(self._bg.transpose(1, 2, 0))

    @property
    def background_planar(self) -> np.ndarray | None:
        """The background itself, planar float32 (3, h, w) BGR at analysis resolution, in the light it was learnt
        in (no copy: read it before the next ``update``)."""
        return self._bg

    def reset(self) -> None:
        """Forget everything (new scene, camera moved, resolution changed)."""
        self._size = None
        self._init = []
        self._bg = None
        self._history.clear()
        self._hist_times.clear()
        self._grey_hist.clear()
        self._fg_prev = self._since = self._last_seen = self._arrived = None
        self._overall = 1.0
        self._last_now = self._prev_now = None
        self.resets += 1

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """The planar float32 (3, h, w) analysis image: ``image`` (BGR uint8 (H, W, 3)) downscaled to
        ``analysis_width`` and blurred."""
        h, w = image.shape[:2]
        aw = min(self.params.analysis_width, w)
        ah = max(1, int(round(h * aw / w)))
        levels = area_pyramid(image, aw, ah)
        self.levels = levels[1:]  # not the frame itself: the analyzer keeps no full-size picture alive
        small = levels[-1]
        k = self.params.blur_ksize
        return np.ascontiguousarray(cv2.GaussianBlur(small, (k, k), 0).transpose(2, 0, 1), dtype=np.float32)

    # --- the step ----------------------------------------------------------------------------------------

    def update(self, image: np.ndarray, now: float) -> StationaryResult:
        """Analyse one BGR uint8 frame taken at unix time ``now``; returns the stationary blobs."""
        p = self.params
        cur = self.prepare(image)
        h, w = cur.shape[1:]
        if self._size != (w, h):
            if self._size is not None:
                self.reset()
            self._size = (w, h)
        self.samples += 1
        dt = 1.0 if self._last_now is None else min(max(now - self._last_now, 0.0), 60.0)
        self._prev_now = self._last_now
        self._last_now = now
        cur_g = grey(cur)

        if self._bg is None:
            self._init.append(cur)
            self._history.append((cur, np.ones((h, w), np.float32)))
            self._hist_times.append(now)
            self._grey_hist.append((cur_g, now))
            if len(self._init) >= p.init_samples:
                self._bg = np.median(np.stack(self._init), axis=0).astype(np.float32)
                self._init = []
                self._fg_prev = np.zeros((h, w), bool)
                self._since = np.full((h, w), np.nan)
                self._last_seen = np.full((h, w), -np.inf)
                self._arrived = np.zeros((h, w), np.float32)
                self._overall = 1.0
            return self._empty(w, h, ready=self._bg is not None)

        bg = self._bg
        if p.stabilise and (self._shaky > 0 or self.samples % p.stabilise_every == 0):
            cur, cur_g = self._stabilise(cur, cur_g, bg)
        light, overall = self._light_field(cur_g, bg)
        if abs(overall / max(self._overall, 1e-3) - 1.0) > p.max_gain_step:
            # A jump like this is a scene cut (camera moved, day/night switch), not drift: start again.
            self.reset()
            self._size = (w, h)
            return self.update(image, now)
        self._overall = overall
        lit = bg * light  # the background as it would look in today's light
        diff = _max_abs_diff(cur, lit)
        fg: np.ndarray = diff > p.diff_threshold
        # The per-pixel tests below only matter where fg is set: they run on fg's bounding box (with the margin a
        # 5x5 window needs, so every fg pixel gets the value the whole-frame computation would give).
        roi = _bounding_slices(fg, margin=4)
        if p.lighting_test and roi is not None:
            fg[roi] &= ~lighting_only(cur[(slice(None), *roi)], lit[(slice(None), *roi)])
        fg = cv2.morphologyEx(fg.astype(np.uint8), cv2.MORPH_OPEN, _K3)

        raw: np.ndarray = np.zeros((h, w), np.uint8)
        roi = _bounding_slices(fg, margin=0)
        if roi is not None:
            matches = np.zeros(raw[roi].shape, np.uint8)
            cur_roi, light_roi = cur[(slice(None), *roi)], light[roi]
            for past, past_light in self._history:
                ratio = light_roi / past_light[roi]
                matches += _max_abs_diff(cur_roi, past[(slice(None), *roi)] * ratio) < p.stable_threshold
            raw[roi] = fg[roi].astype(bool) & (matches >= p.min_matches)
        raw = cv2.morphologyEx(raw, cv2.MORPH_CLOSE, _K7)
        raw = cv2.morphologyEx(raw, cv2.MORPH_OPEN, _K3)

        dets, stationary, ghosts = self._blobs(raw, cur, cur_g, bg, light, lit, diff, now)

        # Selective background update, in the background's own light (cur / light): quick where the scene shows
        # background, very slow under anything else.
        fg_near = cv2.dilate(fg, _K5).astype(bool)
        fast = 1.0 - math.exp(-dt / p.fast_tau_s)
        slow = 1.0 - math.exp(-dt / p.slow_tau_s)
        rate = np.where(fg_near, np.float32(slow), np.float32(fast))
        bg += rate * (cur / light - bg)
        self._history.append((cur, light))
        self._hist_times.append(now)
        self._grey_hist.append((cur_g, now))
        self._fg_prev = fg_near
        assert self._since is not None  # made with the background (and _blobs just used it)
        age = np.where(stationary, now - np.nan_to_num(self._since, nan=now), 0.0).astype(np.float32)
        return StationaryResult(True, dets, stationary, fg.astype(bool), (w, h), overall, ghosts, age, self._arrived)

    # --- pieces ------------------------------------------------------------------------------------------

    def _stabilise(self, cur: np.ndarray, cur_g: np.ndarray, bg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Shift ``cur`` back onto the background if the camera moved a little (shake); keeps measuring every
        sample for a while once shake was seen."""
        h, w = cur_g.shape
        sw, sh = max(16, w // 2), max(16, h // 2)
        a = cv2.resize(grey(bg), (sw, sh), interpolation=cv2.INTER_AREA)
        b = cv2.resize(cur_g, (sw, sh), interpolation=cv2.INTER_AREA)
        if self._window is None or self._window.shape != a.shape:
            self._window = cv2.createHanningWindow((sw, sh), cv2.CV_32F)
        (dx, dy), response = cv2.phaseCorrelate(a, b, self._window)
        dx, dy = dx * w / sw, dy * h / sh
        if response < 0.05 or abs(dx) > 0.08 * w or abs(dy) > 0.08 * h or math.hypot(dx, dy) < 0.3:
            self._shaky = max(0, self._shaky - 1)
            self.shift = (0.0, 0.0)
            return cur, cur_g
        self._shaky = 30
        self.shift = (dx, dy)
        m = np.array([[1, 0, -dx], [0, 1, -dy]], np.float32)
        out = np.stack([cv2.warpAffine(plane, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                        for plane in cur])
        return out, grey(out)

    def _empty(self, w: int, h: int, *, ready: bool) -> StationaryResult:
        z = np.zeros((h, w), bool)
        return StationaryResult(ready, Detections.empty(), z, z, (w, h), 1.0, 0, np.zeros((h, w), np.float32))

    def _light_field(self, cur_g: np.ndarray, bg: np.ndarray) -> tuple[np.ndarray, float]:
        """Lighting now relative to the background, per pixel, from pixels that showed background last time
        (whatever new object covers part of the view is left out)."""
        bg_g = grey(bg)
        valid = bg_g > 30.0  # near-black pixels carry no brightness information
        ref = valid & ~self._fg_prev if self._fg_prev is not None else valid
        if ref.mean() < 0.2:
            ref = valid
        return illumination_field(cur_g, bg_g, ref, cell=self.params.light_cell)

    def _blobs(self, raw: np.ndarray, cur: np.ndarray, cur_g: np.ndarray, bg: np.ndarray, light: np.ndarray,
               lit: np.ndarray, diff: np.ndarray, now: float) -> tuple[Detections, np.ndarray, int]:
        p = self.params
        h, w = raw.shape
        n, labels, stats, _ = cv2.connectedComponentsWithStats(raw, connectivity=8)
        min_px = max(4, int(p.min_blob_fraction * w * h))
        keep = np.zeros((h, w), bool)
        boxes: list[tuple[float, float, float, float]] = []
        pixel_boxes: list[tuple[int, int, int, int]] = []
        conf: list[float] = []
        masks: list[np.ndarray] = []
        ghosts = 0
        for i in range(1, n):
            x, y, bw, bh, area = (int(v) for v in stats[i])
            if area < min_px:
                continue
            blob = labels == i
            if self._is_ghost(blob, x, y, bw, bh, cur, lit):
                # Put what the camera sees now into the background: the thing that was there has gone.
                grown = cv2.dilate(blob.astype(np.uint8), _K5).astype(bool)
                bg[:, grown] = cur[:, grown] / light[grown]
                ghosts += 1
                continue
            keep |= blob
            boxes.append((x / w, y / h, (x + bw) / w, (y + bh) / h))
            pixel_boxes.append((x, y, bw, bh))
            strength = float(diff[blob].mean()) / p.diff_threshold
            conf.append(min(1.0, 0.4 + 0.2 * strength))
            masks.append(blob)

        # Per-pixel age: a pixel keeps its start time through gaps up to grace_s (occlusions) — and always from
        # one sample to the next, whatever the sampling interval.
        assert self._since is not None and self._last_seen is not None and self._arrived is not None
        recent = now - p.grace_s
        if self._prev_now is not None:
            recent = min(recent, self._prev_now)
        alive = np.isfinite(self._since) & (self._last_seen >= recent)
        # A pixel that just became stationary matched min_matches earlier samples, so it has looked this way at
        # least since the min_matches-th most recent one: date it from there (an honest lower bound on age).
        # The history is read before this sample is appended, so [-min_matches] is that earlier sample.
        times = self._hist_times
        start = times[-p.min_matches] if len(times) >= p.min_matches else now
        self._since = np.where(keep & ~alive, start, self._since)
        self._last_seen = np.where(keep, now, self._last_seen)
        gone = ~keep & ~(self._last_seen >= recent)
        self._since[gone] = np.nan
        self._arrived[gone | (keep & ~alive)] = 0.0
        ages = [float(now - np.nanmedian(self._since[m])) for m in masks]

        # How did young blobs arrive? A rigid thing that drove in and stopped (a vehicle) is found displaced
        # along its row in a frame from before it stopped (before ``since``, which dates from the stop).
        arrival = np.zeros(len(masks), np.float32)
        for k, (m, age) in enumerate(zip(masks, ages, strict=False)):
            if age < p.vehicle_young_s:
                since = now - age
                score = 0.0
                for g, t in [(g, t) for g, t in self._grey_hist if t < since - 0.5][-2:]:
                    ncc, shift = arrival_match(cur_g, g, pixel_boxes[k])
                    speed = abs(shift) / w / max(since - t, 1e-3)  # frame widths per second, a lower bound
                    if speed >= p.vehicle_min_speed:
                        score = max(score, ncc)
                self._arrived[m] = np.maximum(self._arrived[m], score)
            arrival[k] = float(np.median(self._arrived[m]))

        dets = Detections(
            xyxy=np.array(boxes, np.float32).reshape(-1, 4),
            confidence=np.array(conf, np.float32),
            class_id=np.full(len(boxes), STATIONARY_OBJECT, np.int64),
            mask=np.array(masks, bool).reshape(-1, h, w),
            data={"age_s": np.array(ages, np.float32), "pixels": np.array([m.sum() for m in masks], np.int64),
                  "arrival_ncc": arrival, "arrived_moving": arrival >= p.vehicle_ncc},
        )
        return dets, keep, ghosts

    def _is_ghost(self, blob: np.ndarray, x: int, y: int, bw: int, bh: int, cur: np.ndarray,
                  bg_now: np.ndarray) -> bool:
        """Whether the blob's outline is an edge of the background rather than of the current frame."""
        h, w = blob.shape
        m = 3
        x0, y0, x1, y1 = max(x - m, 0), max(y - m, 0), min(x + bw + m, w), min(y + bh + m, h)
        sub = blob[y0:y1, x0:x1].astype(np.uint8)
        ring = cv2.dilate(sub, _K5).astype(bool) & ~cv2.erode(sub, _K3).astype(bool)
        if ring.sum() < 8:
            return False
        e_cur = float(_edge_strength(cur[:, y0:y1, x0:x1])[ring].mean())
        e_bg = float(_edge_strength(bg_now[:, y0:y1, x0:x1])[ring].mean())
        return e_cur < self.params.ghost_ratio * e_bg
