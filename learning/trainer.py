"""The training process itself: ultralytics train → validation per class → ONNX export, offline.

Run by :mod:`learning.train` as a separate, niced, memory-bounded process (``python -m learning.trainer
spec.json``); it never runs inside the live system. The spec names the dataset's ``data.yaml``, the starting
model (a model yaml such as ``yolov8n.yaml`` = from scratch, or a ``.pt`` the site copied in), epochs, image size,
batch, threads and the output folder. It writes ``weights.pt``, ``model.onnx`` and ``result.json`` (per-class
precision/recall/mAP50 on the dataset's val split, the model's class names, seconds spent) in that folder.

Ultralytics is kept offline by the environment the parent sets before import (``YOLO_OFFLINE``, no auto-install,
settings in a temporary ``YOLO_CONFIG_DIR``) and by ``plots=False`` (no font download); torchvision is never
imported (ultralytics' own NMS is used), so the CPU torch wheel does not need a matching torchvision build.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any


def torch_only_nms() -> None:
    """Stand in a ``torchvision`` whose only part is ``ops.nms`` (ultralytics' own torch NMS), for this process.

    Ultralytics imports torchvision for NMS alone (the validator imports it up front; NMS calls it when imported).
    The registry's torchvision is built against the CUDA torch: beside the CPU torch wheel its C ops do not load and
    ``import torchvision`` fails (``torchvision::nms does not exist``). Its package stays installed for the version
    check ultralytics makes from the package metadata."""
    import types

    from ultralytics.utils.nms import TorchNMS

    ops = types.ModuleType("torchvision.ops")
    ops.nms = TorchNMS.nms  # type: ignore[attr-defined]
    stub = types.ModuleType("torchvision")
    stub.ops = ops  # type: ignore[attr-defined]
    stub.__version__ = "0+torch-only-nms"  # type: ignore[attr-defined]
    sys.modules["torchvision"] = stub
    sys.modules["torchvision.ops"] = ops


def run(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    torch.set_num_threads(int(spec.get("threads", 1)))
    torch_only_nms()
    from ultralytics import YOLO

    out = Path(spec["out"])
    work = out / "work"
    started = time.monotonic()
    model = YOLO(spec["start"])
    model.train(data=spec["data"], epochs=int(spec["epochs"]), imgsz=int(spec["imgsz"]), batch=int(spec["batch"]),
                workers=0, device=spec.get("device", "cpu"), project=str(work), name="train", exist_ok=True,
                plots=False, amp=False, val=True, verbose=False, seed=int(spec.get("seed", 0)), deterministic=True,
                patience=max(int(spec["epochs"]), 10), **dict(spec.get("overrides") or {}))
    trained = time.monotonic() - started
    best = work / "train" / "weights" / "best.pt"
    if not best.is_file():
        best = work / "train" / "weights" / "last.pt"
    final = YOLO(str(best))
    metrics = final.val(data=spec["data"], imgsz=int(spec["imgsz"]), batch=int(spec["batch"]), workers=0,
                        device=spec.get("device", "cpu"), plots=False, verbose=False, project=str(work), name="val",
                        exist_ok=True)
    names = [final.names[i] for i in sorted(final.names)]
    per_class: dict[str, dict[str, float]] = {}
    box = metrics.box
    for j, ci in enumerate(box.ap_class_index.tolist()):
        per_class[names[int(ci)]] = {"precision": round(float(box.p[j]), 4), "recall": round(float(box.r[j]), 4),
                                     "map50": round(float(box.ap50[j]), 4)}
    exported = final.export(format="onnx", imgsz=int(spec["imgsz"]), dynamic=False, simplify=True, opset=17,
                            device="cpu")
    shutil.copyfile(best, out / "weights.pt")
    shutil.move(str(exported), out / "model.onnx")
    result = {"class_names": names, "per_class": per_class,
              "overall": {"precision": round(float(box.mp), 4), "recall": round(float(box.mr), 4),
                          "map50": round(float(box.map50), 4)},
              "train_s": round(trained, 1), "total_s": round(time.monotonic() - started, 1),
              "torch": str(torch.__version__), "ultralytics": _version()}
    if not spec.get("keep_work"):
        shutil.rmtree(work, ignore_errors=True)
    (out / "result.json").write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    return result


def _version() -> str:
    import ultralytics

    return str(ultralytics.__version__)


if __name__ == "__main__":
    run(json.loads(Path(sys.argv[1]).read_text(encoding="utf-8")))
