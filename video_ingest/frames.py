"""Frame: the one message from ingest to detection — a decoded picture handed over through a latest-frame slot."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True, eq=False)
class Frame:
    camera_id: str
    image: np.ndarray
    """BGR, uint8, shape (height, width, 3)."""
    captured_at: float
    """Unix time the frame's packet arrived."""
    pts_s: float
    """Stream timestamp in seconds."""
    seq: int
    """Increases by one per frame handed over for this camera; a detector skips a seq it has seen."""
    keyframe: bool = True

    def __post_init__(self) -> None:
        img = self.image
        if not (isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3):
            shape = getattr(img, "shape", None)
            dtype = getattr(img, "dtype", type(img).__name__)
            raise ValueError(f"Frame.image must be uint8 (H, W, 3) BGR; got shape {shape} dtype {dtype}")
