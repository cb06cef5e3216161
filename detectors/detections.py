"""Detections: the one type every detection stage passes on (analyzers → tracker → zones → rules).

Parallel numpy arrays, one row per object, in the style of supervision's ``Detections``: boxes are
normalised ``(x1, y1, x2, y2)`` in 0..1 so that stages working at different resolutions agree. The type
validates itself on construction and says which field had which shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

STATIONARY_OBJECT = 0
"""Class id of a class-agnostic stationary object (the background analyzer does not know what it is)."""
BIN_OVERFLOW = 1
"""Class id of rubbish piled in and around a bin, found by ``BinOverflowAnalyzer``."""

CLASS_NAMES: dict[int, str] = {STATIONARY_OBJECT: "object", BIN_OVERFLOW: "bin-overflow"}


def _check(name: str, value: np.ndarray, expected: tuple[int | None, ...], n: int | None) -> None:
    shape = value.shape
    if len(shape) != len(expected) or any(e is not None and e != s for e, s in zip(expected, shape, strict=False)):
        want = "(" + ", ".join("N" if e is None and i == 0 else ("*" if e is None else str(e))
                                for i, e in enumerate(expected)) + ("," if len(expected) == 1 else "") + ")"
        raise ValueError(f"Detections.{name} must have shape {want}; got {shape}")
    if n is not None and shape[0] != n:
        raise ValueError(f"Detections.{name} must have {n} rows (one per box in xyxy); got shape {shape}")


@dataclass(eq=False, init=False)
class Detections:
    """Objects found in one frame, as parallel arrays of ``N`` rows. The constructor takes anything array-like;
    ``confidence``, ``class_id`` and ``tracker_id`` default to 1, ``STATIONARY_OBJECT`` and -1 per row."""

    xyxy: np.ndarray
    """float32 (N, 4): normalised (x1, y1, x2, y2), x1 <= x2, y1 <= y2."""
    confidence: np.ndarray
    """float32 (N,): 0..1."""
    class_id: np.ndarray
    """int64 (N,): ``STATIONARY_OBJECT``, ``BIN_OVERFLOW`` or a model's class id."""
    tracker_id: np.ndarray
    """int64 (N,): the track each row belongs to, or -1 before tracking."""
    mask: np.ndarray | None
    """Optional bool (N, H, W): each object's pixels at analysis resolution."""
    data: dict[str, np.ndarray]
    """Extra per-row arrays (each with N rows), e.g. ``age_s``."""

    def __init__(self, xyxy: ArrayLike, confidence: ArrayLike | None = None, class_id: ArrayLike | None = None,
                 tracker_id: ArrayLike | None = None, mask: ArrayLike | None = None,
                 data: dict[str, np.ndarray] | None = None) -> None:
        self.xyxy = np.asarray(xyxy, dtype=np.float32)
        if self.xyxy.size == 0:
            self.xyxy = self.xyxy.reshape(0, 4)
        _check("xyxy", self.xyxy, (None, 4), None)
        n = self.xyxy.shape[0]
        self.confidence = (np.ones(n, np.float32) if confidence is None
                           else np.asarray(confidence, dtype=np.float32))
        self.class_id = (np.zeros(n, np.int64) if class_id is None else np.asarray(class_id, dtype=np.int64))
        self.tracker_id = (np.full(n, -1, np.int64) if tracker_id is None
                           else np.asarray(tracker_id, dtype=np.int64))
        _check("confidence", self.confidence, (None,), n)
        _check("class_id", self.class_id, (None,), n)
        _check("tracker_id", self.tracker_id, (None,), n)
        self.mask = None
        if mask is not None:
            self.mask = np.asarray(mask, dtype=bool)
            _check("mask", self.mask, (None, None, None), n)
        self.data = {} if data is None else data
        for key, value in list(self.data.items()):
            value = np.asarray(value)
            if value.ndim == 0 or value.shape[0] != n:
                raise ValueError(f"Detections.data[{key!r}] must have {n} rows; got shape {value.shape}")
            self.data[key] = value
        if n and (np.any(self.xyxy[:, 2] < self.xyxy[:, 0]) or np.any(self.xyxy[:, 3] < self.xyxy[:, 1])):
            raise ValueError("Detections.xyxy rows must satisfy x1 <= x2 and y1 <= y2")

    @classmethod
    def empty(cls) -> Detections:
        """No objects."""
        return cls(xyxy=np.zeros((0, 4), np.float32))

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def __getitem__(self, index: Any) -> Detections:
        """Rows selected by a boolean mask, an index array or a slice (always returns ``Detections``)."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        if isinstance(index, np.ndarray) and index.dtype == bool and index.shape != (len(self),):
            raise ValueError(f"boolean index must have shape ({len(self)},); got {index.shape}")
        return Detections(
            xyxy=self.xyxy[index],
            confidence=self.confidence[index],
            class_id=self.class_id[index],
            tracker_id=self.tracker_id[index],
            mask=None if self.mask is None else self.mask[index],
            data={k: v[index] for k, v in self.data.items()},
        )

    def filter(self, keep: np.ndarray) -> Detections:
        """The rows where the boolean array ``keep`` (shape (N,)) is true."""
        keep = np.asarray(keep, dtype=bool)
        return self[keep]

    @property
    def area(self) -> np.ndarray:
        """float32 (N,): box area as a fraction of the frame."""
        return ((self.xyxy[:, 2] - self.xyxy[:, 0]) * (self.xyxy[:, 3] - self.xyxy[:, 1])).astype(np.float32)

    def bottom_centre(self) -> np.ndarray:
        """float32 (N, 2): the middle of each box's lower edge (where an object stands on the ground)."""
        return np.stack([(self.xyxy[:, 0] + self.xyxy[:, 2]) / 2, self.xyxy[:, 3]], axis=1).astype(np.float32)

    def boxes(self) -> list[tuple[float, float, float, float]]:
        """The boxes as plain tuples (for messages)."""
        return [(round(float(x1), 4), round(float(y1), 4), round(float(x2), 4), round(float(y2), 4))
                for x1, y1, x2, y2 in self.xyxy]

    @classmethod
    def merge(cls, parts: list[Detections]) -> Detections:
        """Rows of all ``parts`` in order; masks are kept only when every part has them at the same size."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        masks = [p.mask for p in parts if p.mask is not None]
        mask = (np.concatenate(masks) if len(masks) == len(parts) and len({m.shape[1:] for m in masks}) == 1
                else None)
        keys = set.intersection(*(set(p.data) for p in parts))
        return cls(
            xyxy=np.concatenate([p.xyxy for p in parts]),
            confidence=np.concatenate([p.confidence for p in parts]),
            class_id=np.concatenate([p.class_id for p in parts]),
            tracker_id=np.concatenate([p.tracker_id for p in parts]),
            mask=mask,
            data={k: np.concatenate([p.data[k] for p in parts]) for k in keys},
        )
