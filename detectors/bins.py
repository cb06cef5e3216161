"""Bin state: whether a rubbish bin's zone holds rubbish piled on and around the bin.

The bin belongs to the zone's reference appearance — the long-term background the stationary analyzer keeps,
which holds the empty bin. Rubbish heaped above the rim or dumped beside the bin is a change against that
reference that stays put, so the overflow is the zone's share of *stationary* pixels. People walking past are
not stationary and do not count. A class-aware model can later replace this with bin/rubbish classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detectors.detections import BIN_OVERFLOW, Detections
from detectors.stationary import StationaryResult
from detectors.zones import ZoneMask


@dataclass(frozen=True)
class BinState:
    """One sample of a bin zone."""

    fraction: float
    """Share of the zone's pixels changed and staying (0..1): the fill/spill fraction."""
    area: float
    """The changed, staying pixels as a fraction of the whole frame."""
    box: tuple[float, float, float, float] | None
    """Normalised box around them, None when there are none."""
    confidence: float
    overflowing: bool
    age_s: float = 0.0
    """How long most of those pixels have been there (90th percentile of their stationary age)."""


class BinOverflowAnalyzer:
    """Turns a ``StationaryResult`` into a ``BinState`` for one bin zone."""

    def __init__(self, zone: ZoneMask, *, threshold: float = 0.03, min_area: float = 0.002) -> None:
        if not 0 < threshold < 1:
            raise ValueError(f"threshold must be in (0, 1); got {threshold}")
        self.zone = zone
        self.threshold = threshold
        self.min_area = min_area

    def update(self, result: StationaryResult) -> BinState:
        """The bin zone's state in ``result`` (empty before the background is ready)."""
        w, h = result.size
        zone = self.zone.mask(w, h)
        zone_px = int(zone.sum())
        if not result.ready or zone_px == 0:
            return BinState(0.0, 0.0, None, 0.0, False)
        changed = result.stationary & zone
        n = int(changed.sum())
        fraction = n / zone_px
        area = n / float(w * h)
        box = None
        if n:
            rows = np.flatnonzero(changed.any(axis=1))
            cols = np.flatnonzero(changed.any(axis=0))
            box = (float(cols[0] / w), float(rows[0] / h), float((cols[-1] + 1) / w), float((rows[-1] + 1) / h))
        overflowing = fraction >= self.threshold and area >= self.min_area
        # Confidence grows with how far past the threshold the fill is.
        confidence = float(min(1.0, 0.5 * fraction / self.threshold)) if n else 0.0
        age = float(np.percentile(result.age[changed], 90)) if n and result.age is not None else 0.0
        return BinState(float(fraction), float(area), box, confidence, overflowing, age)

    @staticmethod
    def as_detections(state: BinState) -> Detections:
        """The state as a one-row ``Detections`` (class ``BIN_OVERFLOW``), empty when nothing changed."""
        if state.box is None:
            return Detections.empty()
        return Detections(xyxy=np.array([state.box], np.float32), confidence=np.array([state.confidence]),
                          class_id=np.array([BIN_OVERFLOW]), data={"fraction": np.array([state.fraction])})
