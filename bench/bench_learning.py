"""The learning loop's bench: does a site model trained here from N reviewed examples fix what the model-free
judgement confuses (a parked or delivery e-bike with its rider beside it read as goods + attendant = vending; a
vendor's cargo tricycle), and what does training cost on this box?

``python bench/bench_learning.py [--examples 160] [--epochs 40] [--imgsz 192] [--seed 8] [--conditions normal,shake]``
(about 11 min here: 7.5 min of training, two passes over 14 scenario runs):

1. N reviewed examples: street frames of the scenario suite's pavement layout (other seeds than the suite's) with
   e-bikes / bicycles (often a person standing beside them) and vendors' cargo tricycles with goods set out, their
   boxes and classes known (``demo.labelled``) — what reviewers label in the console — stored as review labels,
   exported with ``learning.dataset.export_dataset`` (split by camera and day).
2. ``learning.train.train``: ultralytics from ``yolov8n.yaml`` (nothing can be downloaded), a separate niced
   process with one torch thread; meanwhile this process runs the model-free pass over the scenarios below and
   reports the analysis rate it kept (the live system's side of "training never blocks it").
3. The same scenarios of the street-life suite (``bench/scenarios.py``, ``--conditions``), run twice in the
   same run: the model-free judgement alone, then with the site model's boxes (``CameraAnalyzer.decide(...,
   model)``, asked only on frames with a stationary candidate, as the worker does). Precision/recall per event.
Prints a table and a final JSON line.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cases.store import CaseStore  # noqa: E402
from config import load_settings  # noqa: E402
from demo.backdrop import paint_street  # noqa: E402
from demo.labelled import labelled_frame  # noqa: E402
from detectors.pipeline import CameraAnalyzer  # noqa: E402
from learning.dataset import export_dataset  # noqa: E402
from learning.labels import LabelStore, parse_boxes  # noqa: E402
from learning.registry import ModelRegistry  # noqa: E402
from learning.switch import site_backend  # noqa: E402
from learning.train import TrainRequest, train  # noqa: E402

_spec = importlib.util.spec_from_file_location("citywall_bench_scenarios", Path(__file__).with_name("scenarios.py"))
assert _spec is not None and _spec.loader is not None
_scenarios = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _scenarios
_spec.loader.exec_module(_scenarios)

CONFIG = Path(__file__).resolve().parents[1] / "config" / "demo.yaml"
T0 = 1_717_387_200.0
CLEAR_TARGET_S = 10.0
SCENES = ("bench-and-ebike", "delivery-ebike", "trike-vendor", "mat-vendor", "parked", "bike")
"""Scenario names (substrings) of the life suite the bench runs: the e-bike and cart look-alikes."""


Box = tuple[float, float, float, float]


def reviewed_examples(n: int, seed: int) -> list[tuple[np.ndarray, list[tuple[str, Box]]]]:
    rng = np.random.default_rng([seed, 18])
    streets = [paint_street(_scenarios.LIFE_LAYOUT, np.random.default_rng([seed, 100 + k])) for k in range(4)]
    out = []
    for i in range(n):
        objects = [str(rng.choice(["bike", "vendor_stall"]))]
        if rng.random() < 0.7:
            objects.append("person")  # the rider or the seller beside it
        if rng.random() < 0.4:
            objects.append(str(rng.choice(["bike", "vendor_stall"])))
        rng.shuffle(objects)
        out.append(labelled_frame(streets[i % len(streets)], rng, objects))
    return out


def run(sc, settings, backend=None) -> tuple[list[tuple[str, float]], int, float]:
    """Raised alarms (event, t) of one scenario; frames asked of the model; analysis seconds."""
    analyzer = CameraAnalyzer(sc.camera, settings.detection, timezone=settings.timezone)
    raised: list[tuple[str, float]] = []
    asked = 0
    spent = 0.0
    for i in range(sc.seconds):
        img = sc.frame(float(i))
        t0 = time.perf_counter()
        obs = analyzer.observe(img, T0 + i)
        dets = None
        if backend is not None and obs.candidates:
            dets = backend.detect([img])[0]
            asked += 1
        step = analyzer.decide(obs, img, T0 + i, dets)
        spent += time.perf_counter() - t0
        raised += [(f.alarm.event, float(i)) for f in step.findings if f.alarm.phase == "raised"]
    return raised, asked, spent


def score(results: dict[str, list[tuple[str, float]]], scenarios: dict) -> dict[str, dict[str, float | int | None]]:
    per: dict[str, dict[str, int]] = {}
    for name, raised in results.items():
        truth = list(scenarios[name].truth)
        used = [False] * len(truth)
        for event, t in raised:
            hit = next((k for k, tr in enumerate(truth) if not used[k] and tr.event == event
                        and tr.start_s <= t <= tr.end_s + CLEAR_TARGET_S), None)
            c = per.setdefault(event, {"tp": 0, "fp": 0, "fn": 0})
            if hit is None:
                c["fp"] += 1
            else:
                used[hit] = True
                c["tp"] += 1
        for k, tr in enumerate(truth):
            if not used[k]:
                per.setdefault(tr.event, {"tp": 0, "fp": 0, "fn": 0})["fn"] += 1
    return {e: {**c, "precision": round(c["tp"] / (c["tp"] + c["fp"]), 3) if c["tp"] + c["fp"] else None,
                "recall": round(c["tp"] / (c["tp"] + c["fn"]), 3) if c["tp"] + c["fn"] else None}
            for e, c in sorted(per.items())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--examples", type=int, default=160)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--imgsz", type=int, default=192)
    ap.add_argument("--seed", type=int, default=8, help="the scenario suite's seed (the examples use others)")
    ap.add_argument("--confidence", type=float, default=0.25)
    ap.add_argument("--conditions", default="normal,shake", help="conditions of the life suite (normal, shake, "
                                                                 "lowrate)")
    args = ap.parse_args()
    settings = load_settings(CONFIG)
    suite = [sc for sc in _scenarios.build_life_suite(args.seed, tuple(args.conditions.split(",")))
             if any(s in sc.name for s in SCENES)]
    scenarios = {sc.name: sc for sc in suite}
    with tempfile.TemporaryDirectory(prefix="bench-learning-") as tmp:
        work = Path(tmp)
        store = CaseStore.open(f"sqlite:///{work / 'cases.sqlite'}")
        labels = LabelStore(store, work / "learning")
        evidence = work / "evidence"
        for i, (image, boxes) in enumerate(reviewed_examples(args.examples, args.seed + 1000)):
            camera = f"cam-{i % 4}"
            rel = f"{camera}/ex-{i}.jpg"
            (evidence / camera).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(evidence / rel), image)
            at = T0 + (i % 3) * 86_400 + i
            alarm = {"alarm_id": f"ex-{i}", "camera_id": camera, "at": at, "snapshot_clean": rel,
                     "event": "vending", "boxes": [list(boxes[0][1])]}
            labels.save(alarm=alarm, decision="confirm", decided_by="bench", decided_at=at,
                        boxes=parse_boxes([{"class": c, "box": list(b)} for c, b in boxes]), evidence_dir=evidence)
        summary = export_dataset(labels.all(), labels.root, work / "dataset", val_share=0.25)
        print(f"examples: {args.examples} frames, boxes {summary.boxes}, split groups "
              f"{ {k: len(v) for k, v in summary.groups.items()} }")

        registry = ModelRegistry(work / "models")
        result: dict = {}

        def _train() -> None:
            req = TrainRequest(dataset=work / "dataset", epochs=args.epochs, imgsz=args.imgsz, batch=8, threads=1,
                               overrides=(("warmup_epochs", 0), ("mosaic", 0.0), ("optimizer", "AdamW"),
                                          ("lr0", 0.003)))
            t0 = time.monotonic()
            result["card"] = train(req, registry, now=time.time(), command="bench/bench_learning.py")
            result["wall_s"] = time.monotonic() - t0

        trainer = threading.Thread(target=_train)
        trainer.start()
        before: dict[str, list[tuple[str, float]]] = {}
        frames = 0
        analysed_s = 0.0
        t_before = time.monotonic()
        for sc in suite:  # the model-free pass, while the training process runs
            before[sc.name], _, spent = run(sc, settings)
            frames += sc.seconds
            analysed_s += spent
        before_wall = time.monotonic() - t_before
        overlapped = trainer.is_alive()
        trainer.join()
        card = result["card"]
        backend = site_backend(registry, card["version"], confidence=args.confidence)
        after: dict[str, list[tuple[str, float]]] = {}
        asked = 0
        for sc in suite:
            after[sc.name], n, _ = run(sc, settings, backend)
            asked += n
        store.close()
    s_before, s_after = score(before, scenarios), score(after, scenarios)
    print(f"\ntraining: {result['wall_s']:.0f} s wall ({card['training']['seconds']} s in ultralytics), "
          f"{args.epochs} epochs at {args.imgsz} px, 1 thread, nice {TrainRequest.nice}")
    print(f"val (held-back camera-days): {card['metrics_val']}")
    print(f"model-free pass during training: {frames} frames in {before_wall:.0f} s wall "
          f"({frames / before_wall:.1f} frames/s; analysis {1000 * analysed_s / frames:.1f} ms/frame; "
          f"training still running at its end: {overlapped})")
    print("\n| scenario | truth | model-free alarms | with site model |\n| --- | --- | --- | --- |")
    for sc in suite:
        truth = ", ".join(f"{t.event}" for t in sc.truth) or "none"
        print(f"| {sc.name} | {truth} | {', '.join(e for e, _ in before[sc.name]) or '–'} | "
              f"{', '.join(e for e, _ in after[sc.name]) or '–'} |")
    print("\n| event | model-free P / R (TP/FP/FN) | with site model P / R (TP/FP/FN) |\n| --- | --- | --- |")
    for e in sorted(set(s_before) | set(s_after)):
        b, a = s_before.get(e, {}), s_after.get(e, {})
        print(f"| {e} | {b.get('precision')} / {b.get('recall')} ({b.get('tp', 0)}/{b.get('fp', 0)}/{b.get('fn', 0)}) "
              f"| {a.get('precision')} / {a.get('recall')} ({a.get('tp', 0)}/{a.get('fp', 0)}/{a.get('fn', 0)}) |")
    print(json.dumps({"examples": args.examples, "epochs": args.epochs, "imgsz": args.imgsz,
                      "train_wall_s": round(result["wall_s"], 1), "val": card["metrics_val_overall"],
                      "frames_per_s_during_training": round(frames / before_wall, 2), "model_frames": asked,
                      "before": s_before, "after": s_after}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
