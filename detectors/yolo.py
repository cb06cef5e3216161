"""YOLO-style pre- and post-processing in plain numpy/OpenCV (no torch): letterbox, output decode, NMS.

Pure functions, shared by every backend that runs a YOLOv8-family detector (ONNX Runtime today):

- ``letterbox``: resize keeping the aspect ratio into a square ``size`` canvas padded with grey 114, BGR→RGB,
  0..1 float32 CHW — what ultralytics does before inference; returns the ``Letterbox`` geometry to undo it;
- ``decode_yolov8``: the (4 + nc, anchors) head (cx, cy, w, h in input pixels, then per-class scores, already
  sigmoid-ed) → boxes in the *original* image, normalised 0..1, with score and class index, after
  class-aware NMS;
- ``nms``: greedy non-maximum suppression.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Letterbox:
    """How an image of ``width`` x ``height`` was placed into the model input: scaled, then padded."""

    width: int
    height: int
    scale: float
    pad_x: float
    pad_y: float


def letterbox(image: np.ndarray, size: int, fill: int = 114) -> tuple[np.ndarray, Letterbox]:
    """(float32 (3, size, size) RGB 0..1, geometry) for a BGR uint8 (H, W, 3) ``image``."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"letterbox needs a BGR (H, W, 3) image; got shape {image.shape}")
    h, w = image.shape[:2]
    scale = min(size / h, size / w)
    nw, nh = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR) if (nw, nh) != (w, h) else image
    px, py = (size - nw) / 2.0, (size - nh) / 2.0
    left, top = int(round(px - 0.1)), int(round(py - 0.1))
    canvas = np.full((size, size, 3), fill, np.uint8)
    canvas[top:top + nh, left:left + nw] = resized
    chw = canvas[:, :, ::-1].transpose(2, 0, 1).astype(np.float32) / 255.0
    return np.ascontiguousarray(chw), Letterbox(w, h, scale, float(left), float(top))


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices of ``boxes`` (N, 4 xyxy) kept by greedy NMS at IoU ``iou``, highest score first."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        ix = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        iy = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = ix * iy
        union = areas[i] + areas[rest] - inter
        overlap = np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
        order = rest[overlap <= iou]
    return np.array(keep, np.int64)


def decode_yolov8(output: np.ndarray, lb: Letterbox, *, confidence: float, iou: float,
                  classes: np.ndarray | None = None, max_det: int = 300
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(xyxy normalised to the original image (N, 4) float32, scores (N,), class indices (N,) int64).

    ``output``: one image's head, (4 + nc, anchors) — or (anchors, 4 + nc), told apart by which axis is
    longer (anchors outnumber classes in every YOLOv8 head). ``classes``: only these class indices count
    (the ones a class map names). NMS is per class.
    """
    out = np.asarray(output, np.float32)
    if out.ndim != 2 or min(out.shape) < 5:
        raise ValueError(f"a YOLOv8 head is (4 + classes, anchors); got shape {out.shape}")
    if out.shape[0] > out.shape[1]:
        out = out.T
    scores_all = out[4:]
    if classes is not None:
        masked = np.full_like(scores_all, -1.0)
        masked[classes] = scores_all[classes]
        scores_all = masked
    cls = scores_all.argmax(axis=0)
    score = scores_all[cls, np.arange(out.shape[1])]
    sel = score >= confidence
    if not sel.any():
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
    cx, cy, bw, bh = out[0, sel], out[1, sel], out[2, sel], out[3, sel]
    score, cls = score[sel], cls[sel].astype(np.int64)
    xyxy = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
    # Back to the original image: undo the padding, then the scale; clip; normalise.
    xyxy[:, [0, 2]] = (xyxy[:, [0, 2]] - lb.pad_x) / lb.scale
    xyxy[:, [1, 3]] = (xyxy[:, [1, 3]] - lb.pad_y) / lb.scale
    xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0, lb.width) / lb.width
    xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0, lb.height) / lb.height
    ok = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
    xyxy, score, cls = xyxy[ok], score[ok], cls[ok]
    # Class-aware NMS in one pass: boxes of different classes are shifted apart so they never overlap.
    keep = nms(xyxy + cls[:, None].astype(np.float32) * 2.0, score, iou)[:max_det]
    return xyxy[keep].astype(np.float32), score[keep].astype(np.float32), cls[keep]
