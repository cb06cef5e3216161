"""Model backends: a detection model behind one interface that takes frames of many cameras in one call.

``DetectorBackend.detect(images) -> list[Detections]``: one ``Detections`` per image, boxes normalised, each
row's ``class_id`` a *role* id (``ROLE_IDS``: person, stall, cart, umbrella, goods, bin, bin_overflow, garbage,
vehicle) and ``data['role']`` / ``data['model_class']`` saying what it is and which model class it came from.
Rows of model classes the class map does not name are dropped.

- ``OnnxBackend``: a user's YOLOv8-style ``.onnx`` (ultralytics export) run by ONNX Runtime on the CPU, numpy
  pre/post-processing (``detectors.yolo``). A model whose batch axis is dynamic gets up to ``max_batch``
  images per ``run`` call; one with a fixed batch gets calls of exactly that size (padded).
- ``HogPersonBackend``: OpenCV's built-in HOG + linear SVM pedestrian detector — works offline with no file.

``load_backend(config.settings.DetectorModel)`` builds either. Bad models fail at load with ``ModelError``
naming the file and what is wrong (not a model, no YOLO-shaped output, class map naming classes the model
does not have — listed, with the ones it has).
"""

from __future__ import annotations

import ast
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from config.settings import DetectorModel, ObjectRole
from detectors.detections import CLASS_NAMES, Detections
from detectors.yolo import decode_yolov8, letterbox, nms

ROLE_IDS: dict[str, int] = {r.value: 10 + i for i, r in enumerate(ObjectRole)}
"""Class id of each role in ``Detections.class_id`` (clear of the analyzers' ids 0 and 1)."""
CLASS_NAMES.update({v: k for k, v in ROLE_IDS.items()})


class ModelError(ValueError):
    """A model that cannot be used; the message names the file and the problem."""


class DetectorBackend(Protocol):
    """What the detection worker needs from a model."""

    name: str
    roles: frozenset[str]
    """Roles this backend can report."""

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """One ``Detections`` per BGR uint8 image (any sizes), in order."""
        ...


def resolve_class_map(class_map: Mapping[str, str], names: Mapping[int, str] | None, num_classes: int,
                      source: str = "model") -> dict[int, str]:
    """Model class index → role, from a map keyed by class name or index (as a string or int).

    ``names``: the model's own class names by index, if it carries them; ``num_classes``: from its output.
    Raises ``ModelError`` listing every key that names no class of the model, and which classes it has.
    """
    by_name = {str(v): int(k) for k, v in (names or {}).items()}
    out: dict[int, str] = {}
    unknown: list[str] = []
    for key, role in class_map.items():
        role_s = role.value if isinstance(role, ObjectRole) else str(role)
        if role_s not in ROLE_IDS:
            raise ModelError(f"{source}: class map role {role_s!r} is not one of {', '.join(ROLE_IDS)}")
        k = str(key)
        if k in by_name:
            out[by_name[k]] = role_s
        elif k.lstrip("-").isdigit() and 0 <= int(k) < num_classes:
            out[int(k)] = role_s
        else:
            unknown.append(k)
    if unknown:
        have = (", ".join(f"{i}:{n}" for i, n in sorted((names or {}).items())) if names
                else f"indices 0..{num_classes - 1} (the model carries no class names)")
        raise ModelError(f"{source}: class map names classes the model does not have: {', '.join(unknown)}; "
                         f"the model has {have}")
    return out


def _detections(xyxy: np.ndarray, score: np.ndarray, cls: np.ndarray, index_roles: Mapping[int, str]) -> Detections:
    roles = np.array([index_roles[int(c)] for c in cls], dtype=object).astype(str) if len(cls) else np.zeros(0, str)
    return Detections(xyxy=xyxy, confidence=score, class_id=np.array([ROLE_IDS[r] for r in roles], np.int64),
                      data={"role": roles, "model_class": cls.astype(np.int64)})


def _parse_names(raw: str | None) -> dict[int, str] | None:
    """ultralytics writes ``names`` metadata as a Python dict literal: ``{0: 'person', 1: 'bicycle'}``."""
    if not raw:
        return None
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return None
    if isinstance(value, dict):
        return {int(k): str(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return {i: str(v) for i, v in enumerate(value)}
    return None


class OnnxBackend:
    """A YOLOv8-style ONNX model on ONNX Runtime (CPU); see the module docstring."""

    def __init__(self, path: str | Path, class_map: Mapping[str, str], *, name: str | None = None,
                 input_size: int | None = None, confidence: float = 0.25, iou: float = 0.45,
                 max_batch: int = 16, threads: int = 1) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:  # the optional extra is not installed
            raise ModelError(f"{path}: ONNX Runtime is not installed (pip install 'citywall[onnx]')") from exc
        self.path = Path(path)
        self.name = name or self.path.stem
        if not self.path.is_file():
            raise ModelError(f"{self.path}: no such model file")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for unparsable files
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{self.path}: not a usable ONNX model ({first})") from exc
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ModelError(f"{self.path}: expected one image input (N, 3, H, W); got "
                             f"{[(i.name, i.shape) for i in inputs]}")
        self.input_name = inputs[0].name
        n, c, h, w = inputs[0].shape
        if c not in (3, None) and not isinstance(c, str):
            raise ModelError(f"{self.path}: the input must have 3 channels; got shape {inputs[0].shape}")
        fixed = [d for d in (h, w) if isinstance(d, int)]
        if fixed and len(set(fixed)) != 1:
            raise ModelError(f"{self.path}: only square inputs are supported; got {inputs[0].shape}")
        self.input_size = int(fixed[0]) if fixed else int(input_size or 640)
        if input_size and fixed and input_size != self.input_size:
            raise ModelError(f"{self.path}: input_size {input_size} given but the model takes {self.input_size}")
        self.fixed_batch = int(n) if isinstance(n, int) else None
        self.max_batch = self.fixed_batch or max(1, int(max_batch))
        out_shape = outputs[0].shape
        if len(out_shape) != 3:
            raise ModelError(f"{self.path}: expected a YOLO head (N, 4 + classes, anchors); got output shape "
                             f"{out_shape}")
        dims = [d for d in out_shape[1:] if isinstance(d, int)]
        if len(dims) == 2:
            num_classes = min(dims) - 4
        else:  # dynamic dims: learn the head size from one dry run
            probe = self.session.run(None, {self.input_name: np.zeros(
                (self.fixed_batch or 1, 3, self.input_size, self.input_size), np.float32)})[0]
            num_classes = min(probe.shape[1:]) - 4
        if num_classes < 1:
            raise ModelError(f"{self.path}: output shape {out_shape} has no class scores")
        self.num_classes = num_classes
        meta = self.session.get_modelmeta().custom_metadata_map
        self.class_names = _parse_names(meta.get("names"))
        self.index_roles = resolve_class_map(class_map, self.class_names, num_classes, str(self.path))
        self.roles = frozenset(self.index_roles.values())
        self._classes = np.array(sorted(self.index_roles), np.int64)
        self.confidence = confidence
        self.iou = iou
        self.calls = 0
        self.images = 0
        self.inference_s = 0.0

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """One ``Detections`` per image; images are letterboxed and sent ``max_batch`` at a time."""
        out: list[Detections] = []
        for start in range(0, len(images), self.max_batch):
            chunk = images[start:start + self.max_batch]
            boxed = [letterbox(img, self.input_size) for img in chunk]
            batch = np.stack([b[0] for b in boxed])
            if self.fixed_batch and len(batch) < self.fixed_batch:
                pad = np.zeros((self.fixed_batch - len(batch),) + batch.shape[1:], np.float32)
                batch = np.concatenate([batch, pad])
            t0 = time.perf_counter()
            heads = self.session.run(None, {self.input_name: batch})[0]
            self.inference_s += time.perf_counter() - t0
            self.calls += 1
            self.images += len(chunk)
            for head, (_, lb) in zip(heads, boxed, strict=False):
                xyxy, score, cls = decode_yolov8(head, lb, confidence=self.confidence, iou=self.iou,
                                                 classes=self._classes)
                out.append(_detections(xyxy, score, cls, self.index_roles))
        return out


class HogPersonBackend:
    """OpenCV's HOG + linear SVM pedestrian detectors; person boxes only.

    ``svm``: ``"daimler"`` (48x96 window, trained on the Daimler pedestrian set) or ``"default"`` (Dalal–Triggs,
    64x128). Images are first resized so their shorter side is ``min_side`` px: people are found from about one
    window tall, so the size sets both the smallest person found and the cost. Defaults from
    ``bench/bench_detectors_people.py`` (Daimler at 192 px found the most people, with no false box).
    """

    name = "hog-person"
    roles = frozenset({"person"})

    def __init__(self, *, svm: str = "daimler", min_side: int = 192, hit_threshold: float = 0.0,
                 confidence: float = 0.5, iou: float = 0.3, win_stride: int = 8, scale: float = 1.05) -> None:
        # The detectors are float32 arrays (OpenCV's stubs say Sequence[float]): asarray types them, copying nothing.
        if svm == "daimler":
            self.hog = cv2.HOGDescriptor((48, 96), (16, 16), (8, 8), (8, 8), 9)
            self.hog.setSVMDetector(np.asarray(cv2.HOGDescriptor.getDaimlerPeopleDetector(), np.float32))
        elif svm == "default":
            self.hog = cv2.HOGDescriptor()
            self.hog.setSVMDetector(np.asarray(cv2.HOGDescriptor.getDefaultPeopleDetector(), np.float32))
        else:
            raise ValueError(f"svm must be 'daimler' or 'default'; got {svm!r}")
        self.svm = svm
        self.min_side = min_side
        self.hit_threshold = hit_threshold
        self.confidence = confidence
        self.iou = iou
        self.win_stride = win_stride
        self.scale = scale
        self.calls = 0

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        return [self._one(img) for img in images]

    def _one(self, image: np.ndarray) -> Detections:
        self.calls += 1
        h, w = image.shape[:2]
        f = self.min_side / min(h, w)
        img = cv2.resize(image, (max(1, int(w * f)), max(1, int(h * f)))) if abs(f - 1) > 0.05 else image
        s = self.win_stride
        found, margins = self.hog.detectMultiScale(img, hitThreshold=self.hit_threshold, winStride=(s, s),
                                                   padding=(8, 8), scale=self.scale)
        if len(found) == 0:
            return _detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64),
                               {0: "person"})
        rects = np.asarray(found, np.float32).reshape(-1, 4)
        weights = np.asarray(margins, np.float32).reshape(-1)
        # SVM margin → 0..1 (margin 0 ≈ 0.5, margin 1 ≈ 0.88).
        score = 1.0 / (1.0 + np.exp(-2.0 * weights))
        ih, iw = img.shape[:2]
        xyxy = np.stack([rects[:, 0] / iw, rects[:, 1] / ih, (rects[:, 0] + rects[:, 2]) / iw,
                         (rects[:, 1] + rects[:, 3]) / ih], axis=1).clip(0, 1)
        keep = score >= self.confidence
        xyxy, score = xyxy[keep], score[keep]
        k = nms(xyxy, score, self.iou)
        return _detections(xyxy[k], score[k], np.zeros(len(k), np.int64), {0: "person"})


def _import_yolo() -> Any:
    """ultralytics' ``YOLO``, without the patch its import applies to ``PIL.Image.open`` process-wide: on an image
    Pillow cannot identify, the patched ``open`` tries to pip-install a HEIF plugin (no network here; and the wall's
    photo uploads must get Pillow's own error for a file that is not a picture)."""
    from PIL import Image

    pil_open = Image.open
    try:
        from ultralytics import YOLO
    finally:
        Image.open = pil_open
    return YOLO


class UltralyticsBackend:
    """A user's ultralytics model (.pt) through the optional ``ultralytics`` extra, same interface and class map.

    ONNX is the default because it is lighter and faster on CPU (DESIGN.md), and because registry torchvision
    builds break ultralytics' ``predict()`` on CPU-only machines (``torchvision::nms does not exist``); exporting
    the .pt with ``yolo export format=onnx`` and using ``backend: onnx`` avoids both. This adapter is for sites
    whose torch/torchvision pair works.
    """

    def __init__(self, path: str | Path, class_map: Mapping[str, str], *, name: str | None = None,
                 confidence: float = 0.25, iou: float = 0.45, max_batch: int = 16) -> None:
        self.path = Path(path)
        self.name = name or self.path.stem
        if not self.path.is_file():
            raise ModelError(f"{self.path}: no such model file")
        try:
            YOLO = _import_yolo()
        except ImportError as exc:
            raise ModelError(f"{self.path}: ultralytics is not installed (pip install 'citywall[ultralytics]'; "
                             f"or export the model to ONNX and use backend: onnx)") from exc
        try:
            self.model = YOLO(str(self.path))
        except Exception as exc:
            raise ModelError(f"{self.path}: not a usable ultralytics model ({str(exc)[:200]})") from exc
        names = {int(k): str(v) for k, v in (getattr(self.model, "names", None) or {}).items()}
        self.index_roles = resolve_class_map(class_map, names or None, len(names), str(self.path))
        self.roles = frozenset(self.index_roles.values())
        self.confidence, self.iou, self.max_batch = confidence, iou, max_batch

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        out: list[Detections] = []
        for i in range(0, len(images), self.max_batch):
            batch = list(images[i:i + self.max_batch])
            for res in self.model.predict(batch, conf=self.confidence, iou=self.iou, verbose=False):
                boxes = res.boxes
                xyxy = boxes.xyxyn.cpu().numpy().astype(np.float32)
                score = boxes.conf.cpu().numpy().astype(np.float32)
                cls = boxes.cls.cpu().numpy().astype(np.int64)
                keep = np.array([int(c) in self.index_roles for c in cls], bool)
                out.append(_detections(xyxy[keep], score[keep], cls[keep], self.index_roles))
        return out


def load_backend(cfg: DetectorModel) -> DetectorBackend:
    """The backend a ``detection.models`` entry describes."""
    if cfg.backend == "hog":
        return HogPersonBackend(confidence=cfg.confidence, iou=cfg.iou)
    if cfg.backend == "ultralytics":
        assert cfg.path is not None
        return UltralyticsBackend(cfg.path, {k: v.value for k, v in cfg.class_map.items()}, name=cfg.id,
                                  confidence=cfg.confidence, iou=cfg.iou, max_batch=cfg.max_batch)
    assert cfg.path is not None  # the schema requires it for onnx
    return OnnxBackend(cfg.path, {k: v.value for k, v in cfg.class_map.items()}, name=cfg.id,
                       input_size=cfg.input_size, confidence=cfg.confidence, iou=cfg.iou, max_batch=cfg.max_batch)


class CombinedBackend:
    """Several models as one: each sees the same batch; their detections are merged per image (e.g. a user's YOLO
    for stalls and goods beside the HOG person detector)."""

    def __init__(self, backends: Sequence[DetectorBackend]) -> None:
        if not backends:
            raise ValueError("CombinedBackend needs at least one backend")
        self.backends = list(backends)
        self.name = "+".join(b.name for b in self.backends)
        self.roles = frozenset().union(*(b.roles for b in self.backends))

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        per_model = [b.detect(images) for b in self.backends]
        return [Detections.merge([dets[i] for dets in per_model]) for i in range(len(images))]


def load_backends(models: Sequence[DetectorModel]) -> DetectorBackend | None:
    """The backend for a ``detection.models`` list: None when empty, one model as is, several combined.
    ``ModelError`` names the file and the problem when a model cannot be used (checked at start-up)."""
    backends = [load_backend(cfg) for cfg in models]
    if not backends:
        return None
    return backends[0] if len(backends) == 1 else CombinedBackend(backends)
