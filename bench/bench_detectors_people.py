"""The offline person detector (``detectors.models.HogPersonBackend``) on real photographs: found vs visible people.

``python bench/bench_detectors_people.py [--images DIR] [--reps 5]`` runs OpenCV's HOG people detectors (the
Daimler 48x96 and the default 64x128 SVM) on the two
photographs ultralytics ships (``bus.jpg``: four people in a street, two of them cut by the frame edge;
``zidane.jpg``: two men from the waist up). They are AGPL-3.0 material inside the ``ultralytics`` wheel, so
citywall (Apache-2.0) does not commit them: without ``--images`` the bench fetches the wheel once with
``pip download ultralytics --no-deps`` into ``var/cache/ultralytics-assets/`` and unpacks the two JPEGs.

The visible people are boxed by hand below (pixel x1, y1, x2, y2 in the original image). A detection matches
a person at IoU ≥ 0.3 (lenient: HOG's boxes carry a margin around the body, and half the people are cut by
the frame edge); each person matches at most once. Several input scales are tried (the shorter side resized
to ``min_side``); time is the median wall time per image of ``--reps`` runs on one core. Ends with a one-line
JSON summary.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from detectors.models import HogPersonBackend  # noqa: E402
from detectors.tracking import box_iou  # noqa: E402

VISIBLE: dict[str, list[tuple[int, int, int, int]]] = {
    # Two full figures in front of the bus, one cut by the right edge, one by the left edge.
    "bus.jpg": [(50, 400, 245, 905), (222, 405, 345, 860), (668, 395, 810, 880), (0, 555, 80, 875)],
    # Two men from the waist up (the blurred crowd behind them is not counted).
    "zidane.jpg": [(120, 195, 1150, 720), (750, 40, 1130, 720)],
}
MATCH_IOU = 0.3


def fetch_images(cache: Path) -> Path:
    """The directory holding bus.jpg and zidane.jpg, downloading the ultralytics wheel once if needed."""
    if all((cache / n).is_file() for n in VISIBLE):
        return cache
    cache.mkdir(parents=True, exist_ok=True)
    wheels = cache / "wheel"
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(wheels), "ultralytics"],
                   check=True)
    (whl,) = sorted(wheels.glob("ultralytics-*.whl"))[-1:]
    with zipfile.ZipFile(whl) as z:
        for n in VISIBLE:
            (cache / n).write_bytes(z.read(f"ultralytics/assets/{n}"))
    return cache


def _read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path))
    if image is None:
        raise ValueError(f"{path}: not an image OpenCV can read")
    return image


def score(dets_xyxy: np.ndarray, truth: list[tuple[int, int, int, int]], w: int, h: int) -> tuple[int, int, int]:
    """(true positives, false positives, missed people) with one-to-one greedy matching at IoU ≥ MATCH_IOU."""
    t = np.array(truth, np.float32) / np.array([w, h, w, h], np.float32)
    if len(dets_xyxy) == 0:
        return 0, 0, len(truth)
    iou = box_iou(dets_xyxy, t)
    used_d: set[int] = set()
    used_t: set[int] = set()
    for flat in np.argsort(-iou, axis=None):
        i, j = divmod(int(flat), len(truth))
        if iou[i, j] < MATCH_IOU:
            break
        if i in used_d or j in used_t:
            continue
        used_d.add(i)
        used_t.add(j)
    return len(used_t), len(dets_xyxy) - len(used_d), len(truth) - len(used_t)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=Path, help="a directory with bus.jpg and zidane.jpg (default: fetch them)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--sides", default="192,256,320,480", help="shorter-side sizes to try")
    ap.add_argument("--svms", default="daimler,default", help="OpenCV's HOG SVMs to try")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    folder = args.images or fetch_images(ROOT / "var" / "cache" / "ultralytics-assets")
    images = {n: _read(folder / n) for n in VISIBLE}
    print(f"OpenCV {cv2.__version__} HOG people detectors, one thread; match at IoU >= {MATCH_IOU}")
    print(f"{'svm':<8} {'image':<11} {'size':>9} {'side':>5} {'people':>6} {'found':>5} {'TP':>3} {'FP':>3} {'FN':>3} "
          f"{'ms/img':>7}  boxes (x1,y1,x2,y2 px, conf)")
    rows = []
    for svm, side in ((v, int(s)) for v in args.svms.split(",") for s in args.sides.split(",")):
        hog = HogPersonBackend(svm=svm, min_side=side)
        for name, img in images.items():
            h, w = img.shape[:2]
            times = []
            for _ in range(args.reps):
                t0 = time.perf_counter()
                (d,) = hog.detect([img])
                times.append((time.perf_counter() - t0) * 1000)
            tp, fp, fn = score(d.xyxy, VISIBLE[name], w, h)
            boxes = " ".join(f"({int(b[0] * w)},{int(b[1] * h)},{int(b[2] * w)},{int(b[3] * h)},{c:.2f})"
                             for b, c in zip(d.xyxy, d.confidence, strict=False))
            ms = statistics.median(times)
            print(f"{svm:<8} {name:<11} {w}x{h:<5} {side:>5} {len(VISIBLE[name]):>6} {len(d):>5} {tp:>3} {fp:>3} "
                  f"{fn:>3} {ms:>7.0f}  {boxes or '-'}")
            rows.append({"svm": svm, "image": name, "min_side": side, "people": len(VISIBLE[name]), "found": len(d),
                         "tp": tp, "fp": fp, "fn": fn, "ms": round(ms, 1)})
    for svm, side in sorted({(r["svm"], r["min_side"]) for r in rows}):
        sel = [r for r in rows if r["min_side"] == side and r["svm"] == svm]
        tp, fp, fn = (sum(r[k] for r in sel) for k in ("tp", "fp", "fn"))
        print(f"{svm} min_side {side}: recall {tp}/{tp + fn}, precision {tp}/{tp + fp}, "
              f"median {statistics.median(r['ms'] for r in sel):.0f} ms/image")
    print(json.dumps({"bench": "detectors_people", "detector": "hog-person", "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
