"""``citywall model train``: train a site model in a separate, low-priority, memory-bounded process, then write its
model card.

The training runs in ``python -m learning.trainer`` (ultralytics), started with ``nice`` (``learning.train.nice``),
an address-space limit (``RLIMIT_AS`` = ``learning.train.memory_mb``), ``threads`` torch/OpenMP threads and a
timeout, so the live system keeps its cores and memory. Ultralytics is kept offline through its environment
(``YOLO_OFFLINE``, ``YOLO_AUTOINSTALL=false``, settings in a temporary ``YOLO_CONFIG_DIR``). The result becomes a
new version in the :class:`learning.registry.ModelRegistry` with ``card.json`` and ``card.md``: the dataset (its
summary), the classes and the class map the detectors use, per-class precision/recall/mAP50 on the held-back
split, the starting weights, the times and the command.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from learning.classes import CLASSES, class_map
from learning.registry import ModelRegistry

ROOT = Path(__file__).resolve().parent.parent
"""The folder holding the ``learning`` package (the child imports it from there, whatever its working folder)."""


class TrainError(RuntimeError):
    """Training failed; the message ends with the tail of the training log."""


TUNABLE = frozenset({"lr0", "lrf", "warmup_epochs", "mosaic", "close_mosaic", "optimizer", "fliplr", "scale",
                     "translate", "hsv_h", "hsv_s", "hsv_v", "cos_lr", "momentum", "weight_decay"})


@dataclass(frozen=True)
class TrainRequest:
    dataset: Path
    """An export folder (``data.yaml`` + ``summary.json``)."""
    start: str = "yolov8n.yaml"
    """A model yaml (from scratch: nothing can be downloaded here) or a ``.pt`` the site copied in."""
    epochs: int = 30
    imgsz: int = 640
    batch: int = 8
    threads: int = 1
    memory_mb: int = 6144
    nice: int = 15
    timeout_s: float = 6 * 3600
    device: str = "cpu"
    seed: int = 0
    overrides: tuple[tuple[str, float | str], ...] = ()
    """Further ultralytics training arguments, from :data:`TUNABLE` only (e.g. a short warm-up for tiny runs)."""

    def __post_init__(self) -> None:
        bad = sorted(k for k, _ in self.overrides if k not in TUNABLE)
        if bad:
            raise TrainError(f"unknown training argument(s) {', '.join(bad)}; allowed: {', '.join(sorted(TUNABLE))}")


def _limits(nice: int, memory_mb: int):  # runs in the child between fork and exec
    def apply() -> None:
        os.nice(nice)
        limit = memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return apply


def train(req: TrainRequest, registry: ModelRegistry, *, now: float, command: str) -> dict[str, Any]:
    """Train, export and register a new version; its model card. :class:`TrainError` when training fails (the
    version folder is removed then)."""
    data = Path(req.dataset) / "data.yaml"
    if not data.is_file():
        raise TrainError(f"{req.dataset} has no data.yaml: export one with `citywall dataset export` first")
    start = req.start
    if start.endswith(".pt") and not Path(start).is_file():
        raise TrainError(f"starting weights {start} not found (nothing can be downloaded here: copy the file in, "
                         f"or start from a model yaml such as yolov8n.yaml)")
    out = registry.new_version(now)
    spec = {**asdict(req), "dataset": str(req.dataset), "data": str(data.resolve()), "out": str(out.resolve()),
            "overrides": dict(req.overrides)}
    (out / "spec.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="citywall-yolo-") as cfg:
        env = {**os.environ, "YOLO_OFFLINE": "true", "YOLO_AUTOINSTALL": "false", "YOLO_CONFIG_DIR": cfg,
               "YOLO_VERBOSE": "false", "OMP_NUM_THREADS": str(req.threads), "MKL_NUM_THREADS": str(req.threads),
               "OPENBLAS_NUM_THREADS": str(req.threads),
               "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, sys.path)])}
        with open(out / "train.log", "wb") as log:
            try:
                proc = subprocess.run([sys.executable, "-m", "learning.trainer", str(out / "spec.json")], cwd=cfg,
                                      env=env, stdout=log, stderr=subprocess.STDOUT, timeout=req.timeout_s,
                                      preexec_fn=_limits(req.nice, req.memory_mb), check=False)
                failed = f"exit status {proc.returncode}" if proc.returncode else ""
            except subprocess.TimeoutExpired:
                failed = f"stopped after {req.timeout_s:.0f} s (learning.train.timeout_s)"
    if failed or not (out / "result.json").is_file():
        tail = (out / "train.log").read_text(encoding="utf-8", errors="replace").strip().splitlines()[-15:]
        shutil.rmtree(out, ignore_errors=True)
        raise TrainError(f"training failed ({failed or 'no result'}):\n" + "\n".join(tail))
    result = json.loads((out / "result.json").read_text(encoding="utf-8"))
    card = model_card(out.name, req, result, _summary(req.dataset), now=now, command=command,
                      onnx=out / "model.onnx")
    (out / "card.json").write_text(json.dumps(card, ensure_ascii=False, indent=1), encoding="utf-8")
    (out / "card.md").write_text(card_markdown(card), encoding="utf-8")
    return card


def _summary(dataset: Path) -> dict[str, Any]:
    try:
        return json.loads((Path(dataset) / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def model_card(version: str, req: TrainRequest, result: dict[str, Any], summary: dict[str, Any], *, now: float,
               command: str, onnx: Path) -> dict[str, Any]:
    names = list(result["class_names"])
    zh = {c.id: c.zh for c in CLASSES}
    return {
        "version": version, "created_at": now, "command": command,
        "data": {"dataset": str(req.dataset), "images": summary.get("images", {}), "boxes": summary.get("boxes", {}),
                 "groups": summary.get("groups", {}), "duplicates_dropped": summary.get("duplicates")},
        "classes": [{"id": n, "zh": zh.get(n, n)} for n in names],
        "class_map": class_map(names),
        "metrics_val": result["per_class"], "metrics_val_overall": result["overall"],
        "training": {"start": req.start, "epochs": req.epochs, "imgsz": req.imgsz, "batch": req.batch,
                     "overrides": dict(req.overrides),
                     "threads": req.threads, "device": req.device, "seconds": result["train_s"],
                     "total_seconds": result["total_s"], "torch": result.get("torch"),
                     "ultralytics": result.get("ultralytics")},
        "onnx": {"file": onnx.name, "bytes": onnx.stat().st_size, "input_size": req.imgsz,
                 "sha256": hashlib.sha256(onnx.read_bytes()).hexdigest()},
    }


def card_markdown(card: dict[str, Any]) -> str:
    rows = "\n".join(f"| {c['zh']} ({c['id']}) | {m.get('precision', '–')} | {m.get('recall', '–')} | "
                     f"{m.get('map50', '–')} |"
                     for c in card["classes"] for m in [card["metrics_val"].get(c["id"], {})])
    t = card["training"]
    d = card["data"]
    return (f"# 模型卡 Model card — {card['version']}\n\n"
            f"Command: `{card['command']}`\n\n"
            f"Data: {d['dataset']} — images {d['images']}, boxes {d['boxes']}, held-back groups "
            f"{d['groups'].get('val', [])}, near-duplicates dropped {d['duplicates_dropped']}\n\n"
            f"Training: from `{t['start']}`, {t['epochs']} epochs at {t['imgsz']} px, batch {t['batch']}, "
            f"{t['threads']} thread(s) on {t['device']}, {t['seconds']} s (torch {t['torch']}, ultralytics "
            f"{t['ultralytics']})\n\n"
            f"| class | precision (val) | recall (val) | mAP50 (val) |\n| --- | --- | --- | --- |\n{rows}\n\n"
            f"Overall on val: {card['metrics_val_overall']}\n\n"
            f"Class map (model class → detector role): {card['class_map']}\n")
