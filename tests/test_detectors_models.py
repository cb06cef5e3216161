"""Model backends: YOLO pre/post-processing tables, a real ONNX Runtime session on models built here with the
``onnx`` helper API (they output known YOLO-shaped heads), batching, and the bad-model errors."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from config.settings import ConfigError, DetectorModel, load_settings, parse_settings
from detectors.models import (
    ROLE_IDS,
    HogPersonBackend,
    ModelError,
    OnnxBackend,
    load_backend,
    load_backends,
    resolve_class_map,
)
from detectors.yolo import Letterbox, decode_yolov8, letterbox, nms

# --- pure parts ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("h, w, size, scale, pad_x, pad_y", [
    (64, 128, 64, 0.5, 0.0, 16.0),     # wide: bars above and below
    (128, 64, 64, 0.5, 16.0, 0.0),     # tall: bars left and right
    (720, 1280, 640, 0.5, 0.0, 140.0),
    (64, 64, 64, 1.0, 0.0, 0.0),       # already the right size
])
def test_letterbox_geometry(h, w, size, scale, pad_x, pad_y):
    img = np.full((h, w, 3), 200, np.uint8)
    img[..., 0] = 10  # blue channel: RGB order must put it last
    chw, lb = letterbox(img, size)
    assert chw.shape == (3, size, size) and chw.dtype == np.float32
    assert (lb.scale, lb.pad_x, lb.pad_y) == pytest.approx((scale, pad_x, pad_y))
    cy, cx = size // 2, size // 2
    assert chw[2, cy, cx] == pytest.approx(10 / 255) and chw[0, cy, cx] == pytest.approx(200 / 255)
    if pad_y:
        assert chw[0, 0, cx] == pytest.approx(114 / 255)


def test_letterbox_rejects_a_grey_image():
    with pytest.raises(ValueError, match="BGR"):
        letterbox(np.zeros((10, 10), np.uint8), 32)


@pytest.mark.parametrize("boxes, scores, iou, kept", [
    ([[0, 0, 10, 10], [1, 0, 11, 10]], [0.9, 0.8], 0.5, [0]),           # heavy overlap: the weaker goes
    ([[0, 0, 10, 10], [1, 0, 11, 10]], [0.7, 0.8], 0.5, [1]),           # the stronger stays, whichever it is
    ([[0, 0, 10, 10], [20, 0, 30, 10]], [0.9, 0.8], 0.5, [0, 1]),       # apart: both stay
    ([[0, 0, 10, 10], [5, 0, 15, 10]], [0.9, 0.8], 0.5, [0, 1]),        # IoU 1/3 below 0.5
    ([[0, 0, 10, 10], [5, 0, 15, 10]], [0.9, 0.8], 0.3, [0]),
])
def test_nms(boxes, scores, iou, kept):
    assert nms(np.array(boxes, np.float32), np.array(scores, np.float32), iou).tolist() == kept


def _head(rows: list[tuple[float, float, float, float, list[float]]], nc: int, anchors: int) -> np.ndarray:
    """A (4 + nc, anchors) head with the given (cx, cy, w, h, class scores) rows, the rest zero."""
    out = np.zeros((4 + nc, anchors), np.float32)
    for a, (cx, cy, bw, bh, sc) in enumerate(rows):
        out[:4, a] = (cx, cy, bw, bh)
        out[4:, a] = sc
    return out


def test_decode_undoes_the_letterbox_and_suppresses_per_class():
    lb = Letterbox(width=128, height=64, scale=0.5, pad_x=0.0, pad_y=16.0)
    head = _head([(10, 30, 8, 8, [0.0, 0.9, 0.0]),      # kept
                  (11, 30, 8, 8, [0.0, 0.8, 0.0]),      # same object, same class: suppressed
                  (10, 30, 8, 8, [0.0, 0.0, 0.85]),     # same place, other class: kept
                  (40, 30, 10, 10, [0.1, 0.0, 0.0])],   # below the confidence
                 nc=3, anchors=8)
    xyxy, score, cls = decode_yolov8(head, lb, confidence=0.25, iou=0.45)
    assert cls.tolist() == [1, 2] and score.tolist() == pytest.approx([0.9, 0.85])
    assert xyxy[0].tolist() == pytest.approx([12 / 128, 20 / 64, 28 / 128, 36 / 64])
    # Transposed heads (anchors, 4 + nc) decode the same.
    xyxy_t, score_t, cls_t = decode_yolov8(head.T, lb, confidence=0.25, iou=0.45)
    assert cls_t.tolist() == [1, 2] and np.allclose(xyxy_t, xyxy)
    # Only the classes a class map names count.
    _, _, cls_only = decode_yolov8(head, lb, confidence=0.25, iou=0.45, classes=np.array([2]))
    assert cls_only.tolist() == [2]


def test_decode_rejects_a_head_of_the_wrong_shape():
    with pytest.raises(ValueError, match="4 \\+ classes"):
        decode_yolov8(np.zeros((3, 100), np.float32), Letterbox(1, 1, 1, 0, 0), confidence=0.5, iou=0.5)


@pytest.mark.parametrize("class_map, names, nc, expected", [
    ({"stall": "stall", "car": "vehicle"}, {0: "stall", 1: "person", 2: "car"}, 3, {0: "stall", 2: "vehicle"}),
    ({"1": "person"}, {0: "stall", 1: "person"}, 2, {1: "person"}),          # an index works too
    ({"0": "goods", "2": "bin"}, None, 3, {0: "goods", 2: "bin"}),          # no names: indices only
])
def test_resolve_class_map(class_map, names, nc, expected):
    assert resolve_class_map(class_map, names, nc) == expected


@pytest.mark.parametrize("class_map, names, nc, words", [
    ({"stall": "stall", "kiosk": "stall", "tuktuk": "vehicle"}, {0: "stall", 1: "car"}, 2,
     ["kiosk", "tuktuk", "0:stall", "1:car"]),
    ({"3": "goods"}, None, 3, ["3", "indices 0..2"]),
    ({"stall": "stall"}, None, 3, ["stall", "no class names"]),
])
def test_class_map_naming_missing_classes_is_a_clear_error(class_map, names, nc, words):
    with pytest.raises(ModelError) as err:
        resolve_class_map(class_map, names, nc, "m.onnx")
    for w in words:
        assert w in str(err.value)


# --- ONNX Runtime on models built here ------------------------------------------------------------------------

NAMES = "{0: 'stall', 1: 'person', 2: 'car'}"
NC, ANCHORS, SIZE = 3, 8, 64


def _known_head() -> np.ndarray:
    """The head the test model outputs (plus the image mean on anchor 0's stall score)."""
    return _head([(32, 32, 20, 40, [0.0, 0.0, 0.0]),    # a stall whose score is the image's mean brightness
                  (10, 30, 8, 8, [0.0, 0.9, 0.0]),      # a person
                  (11, 30, 8, 8, [0.0, 0.8, 0.0]),      # the same person again (NMS)
                  (50, 30, 12, 12, [0.0, 0.0, 0.85])],  # a car
                 nc=NC, anchors=ANCHORS)


def build_model(path: Path, *, batch: int | str = "batch", names: str | None = NAMES) -> Path:
    """An ONNX graph: images (N, 3, 64, 64) → head (N, 4 + 3, 8) = known head + mean(image) on one score."""
    head = _known_head()[None]
    sel = np.zeros_like(head)
    sel[0, 4 + 0, 0] = 1.0
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["m"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Reshape", ["m", "shape"], ["m3"]),
        helper.make_node("Mul", ["m3", "sel"], ["scaled"]),
        helper.make_node("Add", ["scaled", "head"], ["output0"]),
    ]
    inits = [numpy_helper.from_array(np.array([-1, 1, 1], np.int64), "shape"),
             numpy_helper.from_array(sel, "sel"), numpy_helper.from_array(head, "head")]
    graph = helper.make_graph(
        nodes, "known_yolo",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [batch, 4 + NC, ANCHORS])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    if names is not None:
        helper.set_model_props(model, {"names": names})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _images() -> list[np.ndarray]:
    # 128 x 64 frames (letterboxed into 64: scale 0.5, 16 px bars top and bottom), three brightnesses.
    return [np.full((64, 128, 3), v, np.uint8) for v in (255, 128, 64)]


def _mean_after_letterbox(img: np.ndarray) -> float:
    return float(letterbox(img, SIZE)[0].mean())


def test_onnx_backend_batches_many_cameras_into_one_call(tmp_path):
    model = OnnxBackend(build_model(tmp_path / "m.onnx"), {"stall": "stall", "person": "person", "car": "vehicle"},
                        confidence=0.25)
    assert (model.input_size, model.num_classes, model.fixed_batch) == (SIZE, NC, None)
    assert model.class_names == {0: "stall", 1: "person", 2: "car"}
    imgs = _images()
    dets = model.detect(imgs)
    assert model.calls == 1 and model.images == 3 and len(dets) == 3
    for img, d in zip(imgs, dets, strict=False):
        roles = d.data["role"].tolist()
        assert sorted(roles) == ["person", "stall", "vehicle"]  # the duplicate person was suppressed
        stall = roles.index("stall")
        # Each image got its own head back (the stall score is that image's mean brightness).
        assert d.confidence[stall] == pytest.approx(_mean_after_letterbox(img), abs=1e-4)
        assert d.class_id[stall] == ROLE_IDS["stall"]
        person = roles.index("person")
        assert d.xyxy[person].tolist() == pytest.approx([12 / 128, 20 / 64, 28 / 128, 36 / 64])
        assert d.data["model_class"][person] == 1


def test_unmapped_classes_are_dropped_and_indices_work_without_names(tmp_path):
    path = build_model(tmp_path / "plain.onnx", names=None)
    model = OnnxBackend(path, {"2": "vehicle"})
    (d,) = model.detect(_images()[:1])
    assert d.data["role"].tolist() == ["vehicle"]


def test_a_fixed_batch_model_gets_calls_of_its_size(tmp_path):
    model = OnnxBackend(build_model(tmp_path / "b2.onnx", batch=2), {"person": "person"}, max_batch=16)
    dets = model.detect(_images())
    assert model.fixed_batch == 2 and model.calls == 2 and len(dets) == 3
    assert all(d.data["role"].tolist() == ["person"] for d in dets)


def test_a_file_that_is_not_a_model_is_a_clear_error(tmp_path):
    bogus = tmp_path / "weights.onnx"
    bogus.write_bytes(b"\x89PNG\r\n\x1a\n this is a picture, not a model")
    with pytest.raises(ModelError, match="weights.onnx: not a usable ONNX model"):
        OnnxBackend(bogus, {"person": "person"})
    with pytest.raises(ModelError, match="no such model file"):
        OnnxBackend(tmp_path / "missing.onnx", {"person": "person"})


def test_a_class_map_naming_classes_the_model_lacks_is_a_clear_error(tmp_path):
    path = build_model(tmp_path / "m.onnx")
    with pytest.raises(ModelError) as err:
        OnnxBackend(path, {"stall": "stall", "umbrella": "umbrella", "tricycle": "vehicle"})
    msg = str(err.value)
    assert "m.onnx" in msg and "umbrella, tricycle" in msg and "0:stall, 1:person, 2:car" in msg


def test_a_model_with_no_yolo_head_is_a_clear_error(tmp_path):
    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["out"])], "id",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 32, 32])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "id.onnx"))
    with pytest.raises(ModelError, match="YOLO head"):
        OnnxBackend(tmp_path / "id.onnx", {"0": "person"})


# --- config ---------------------------------------------------------------------------------------------------


def test_config_builds_the_backend(tmp_path):
    path = build_model(tmp_path / "m.onnx")
    cfg = DetectorModel(id="street-yolo", path=path, class_map={"stall": "stall", "car": "vehicle"})
    backend = load_backend(cfg)
    assert backend.name == "street-yolo" and backend.roles == {"stall", "vehicle"}
    assert isinstance(load_backend(DetectorModel(id="people", backend="hog")), HogPersonBackend)


def test_several_configured_models_answer_as_one(tmp_path):
    a = DetectorModel(id="stalls", path=build_model(tmp_path / "a.onnx"), class_map={"stall": "stall"})
    b = DetectorModel(id="cars", path=build_model(tmp_path / "b.onnx"), class_map={"car": "vehicle"})
    assert load_backends([]) is None
    assert load_backends([a]).name == "stalls"
    both = load_backends([a, b])
    assert both.name == "stalls+cars" and both.roles == {"stall", "vehicle"}
    dets = both.detect(_images())
    assert [sorted(d.data["role"].tolist()) for d in dets] == [["stall", "vehicle"]] * 3


def test_an_ultralytics_model_without_the_extra_says_how_to_get_it(tmp_path, monkeypatch):
    # A machine without the extra, here too: None in sys.modules makes the import fail (and nothing imports the
    # real package into this process, which patches PIL.Image.open process-wide).
    monkeypatch.setitem(sys.modules, "ultralytics", None)
    pt = tmp_path / "street.pt"
    pt.write_bytes(b"not checked before the import")
    cfg = DetectorModel(id="street", backend="ultralytics", path=pt, class_map={"stall": "stall"})
    with pytest.raises(ModelError, match=r"ultralytics is not installed .*citywall\[ultralytics\].*backend: onnx"):
        load_backend(cfg)
    with pytest.raises(ModelError, match="no such model file"):
        load_backend(cfg.model_copy(update={"path": tmp_path / "missing.pt"}))


@pytest.mark.parametrize("entry, words", [
    ({"id": "m", "backend": "onnx", "class_map": {"x": "person"}}, ["needs path"]),
    ({"id": "m", "backend": "ultralytics", "class_map": {"x": "person"}}, ["needs path"]),
    ({"id": "m", "path": "m.onnx", "class_map": {"x": "wizard"}}, ["class_map"]),
    ({"id": "m", "backend": "tflite"}, ["backend"]),
])
def test_config_rejects_bad_model_entries(entry, words):
    demo = load_settings(Path(__file__).resolve().parents[1] / "config" / "demo.yaml")
    data = {"users": [u.model_dump(mode="json") for u in demo.users], "detection": {"models": [entry]}}
    with pytest.raises(ConfigError) as err:
        parse_settings(data)
    assert "detection.models" in str(err.value)
    for w in words:
        assert w in str(err.value)


def test_hog_backend_returns_one_detections_per_image():
    hog = HogPersonBackend()
    blank = np.full((360, 640, 3), 128, np.uint8)
    noisy = np.random.default_rng(0).integers(0, 255, (480, 320, 3), dtype=np.uint8)
    dets = hog.detect([blank, noisy])
    assert len(dets) == 2 and hog.calls == 2
    assert len(dets[0]) == 0 and dets[0].data["role"].shape == (0,)
    for d in dets:
        assert np.all(d.class_id == ROLE_IDS["person"]) and np.all((d.xyxy >= 0) & (d.xyxy <= 1))


# --- model detections in the rules, and the worker's batched, gated calls ----------------------------------------


def _model(rows: list[tuple[str, tuple[float, float, float, float]]]):
    from detectors.detections import Detections

    return Detections(xyxy=np.array([b for _, b in rows], np.float32).reshape(-1, 4),
                      class_id=np.array([ROLE_IDS[r] for r, _ in rows], np.int64),
                      data={"role": np.array([r for r, _ in rows], dtype=str).reshape(-1)})


GOODS_BOX = (0.40, 0.50, 0.50, 0.60)


@pytest.mark.parametrize("event, rows, kept, roles, people", [
    ("road_occupation", [("vehicle", (0.38, 0.45, 0.55, 0.65))], 0, ["vehicle"], 0),   # a parked car: dropped
    ("road_occupation", [("goods", (0.40, 0.50, 0.50, 0.60))], 1, ["goods"], 0),
    ("road_occupation", [("vehicle", (0.47, 0.45, 0.70, 0.65))], 1, [], 0),           # covers 30 %: not it
    ("vending", [("vehicle", (0.38, 0.45, 0.55, 0.65))], 1, ["vehicle"], 0),          # vending never drops
    ("vending", [("stall", GOODS_BOX), ("person", (0.51, 0.45, 0.54, 0.62))], 1, ["stall"], 1),  # vendor beside
    ("vending", [("person", (0.80, 0.45, 0.84, 0.62))], 1, [], 0),                    # a person far away
    ("vending", [], 1, [], 0),                                                       # the model saw nothing
])
def test_model_evidence(event, rows, kept, roles, people):
    from config.settings import EventType
    from detectors.pipeline import model_evidence
    from detectors.rules import Presence

    cand = [Presence(1, GOODS_BOX, 0.01)]
    out, extra = model_evidence(EventType(event), cand, _model(rows))
    assert len(out) == kept
    assert extra == {"model_roles": roles, "people_near": people}


@pytest.mark.slow
async def test_worker_asks_the_model_once_per_tick_for_cameras_with_candidates(tmp_path):
    from demo.scenes import make_scene
    from detectors.worker import DetectionWorker
    from video_ingest.frames import Frame

    settings = load_settings(Path(__file__).resolve().parents[1] / "config" / "demo.yaml")
    names = {"cam-vending": "vending", "cam-road": "road_occupation", "cam-street": "quiet_street"}
    scenes = {cid: make_scene(n, 7) for cid, n in names.items()}
    backend = OnnxBackend(build_model(tmp_path / "m.onnx"), {"person": "person", "car": "vehicle"})
    t0 = 1_717_387_200.0
    clock = {"t": 0}

    def frames(cam_id: str) -> Frame:
        t = clock["t"]
        return Frame(cam_id, scenes[cam_id].render(float(t)), captured_at=t0 + t, pts_s=float(t), seq=t)

    worker = DetectionWorker([c for c in settings.cameras if c.id in names], settings.detection, tmp_path,
                             frames, timezone=settings.timezone, backend=backend)
    per_tick = []
    for t in range(30):
        clock["t"] = t
        before = backend.images
        await worker.tick()
        per_tick.append(backend.images - before)
    stats = worker.stats()
    assert stats["model_errors"] == 0 and stats["model_calls"] == backend.calls
    assert per_tick[:5] == [0] * 5                      # background still forming: nothing to ask about
    assert max(per_tick) == 2                           # vending + road candidates in one call; the quiet street never
    assert backend.calls == sum(1 for n in per_tick if n)


@pytest.mark.parametrize("svm", ["daimler", "default"])
def test_hog_backend_svms(svm):
    (d,) = HogPersonBackend(svm=svm).detect([np.full((240, 320, 3), 90, np.uint8)])
    assert len(d) == 0  # a flat grey frame holds nobody


def test_hog_backend_rejects_an_unknown_svm():
    with pytest.raises(ValueError, match="daimler"):
        HogPersonBackend(svm="yolo")


@pytest.mark.slow
def test_loading_ultralytics_leaves_pillow_alone():
    if importlib.util.find_spec("ultralytics") is None:  # looked up, not imported (the import patches Pillow)
        pytest.skip("the learning extra (ultralytics) is not installed")
    from PIL import Image

    from detectors.models import _import_yolo

    before = Image.open
    assert _import_yolo().__name__ == "YOLO"
    assert Image.open is before  # ultralytics' import patches it to pip-install a HEIF plugin on unknown files
