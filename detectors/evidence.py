"""Evidence: the snapshots an alarm carries — a clean full-resolution JPEG and an annotated copy.

Layout under the evidence directory: ``<YYYY-MM-DD>/<camera_id>/<alarm_id>.jpg`` (annotated) and
``<alarm_id>-clean.jpg``; a clear writes ``<alarm_id>-cleared.jpg`` / ``<alarm_id>-cleared-clean.jpg`` (the scene
clear again, for video verification). Paths returned are relative, posix. Files are written to a temporary
name and renamed, so a reader never sees half a JPEG. Text is ASCII: OpenCV's fonts have no CJK glyphs.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Sequence
from datetime import datetime, tzinfo
from pathlib import Path

import cv2
import numpy as np

from detectors.cjk_text import renderer
from detectors.schedule import resolve_timezone
from messages.alarm import Alarm

_SAFE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ZONE_COLOUR = (0, 215, 255)  # BGR amber
BOX_COLOUR = (0, 0, 255)
TEXT_COLOUR = (255, 255, 255)


# The caption's event names (Chinese, as the hall reads them); an event not listed shows its code.
EVENT_NAMES = {"vending": "无照经营游商", "road_occupation": "乱堆物堆料", "bin_overflow": "垃圾箱满溢"}
PHASE_NAMES = {"raised": "告警", "cleared": "已消除"}


def caption_text(alarm: Alarm, local: datetime) -> str:
    """The burnt-in caption in Chinese: camera · zone · event phase · date time · dwell."""
    dwell = int(round(alarm.dwell_s))
    dwell_text = f"{dwell // 60}分{dwell % 60:02d}秒" if dwell >= 60 else f"{dwell}秒"
    return (f"{alarm.camera_name or alarm.camera_id} | {alarm.zone_name or alarm.zone_id} | "
            f"{EVENT_NAMES.get(alarm.event, alarm.event)} {PHASE_NAMES.get(alarm.phase, alarm.phase)} | "
            f"{local.strftime('%Y-%m-%d %H:%M:%S')} | 停留 {dwell_text}")


def ascii_label(text: str, fallback: str) -> str:
    """``text`` without non-ASCII characters, or ``fallback`` if nothing printable is left."""
    kept = "".join(ch for ch in text if 32 <= ord(ch) < 127).strip()
    return kept or fallback


class EvidenceWriter:
    """Writes an alarm's snapshots under ``evidence_dir``; ``write`` returns (annotated, clean) relative paths."""

    def __init__(self, evidence_dir: Path | str, *, timezone: str | tzinfo | None = None, quality: int = 85) -> None:
        self.root = Path(evidence_dir)
        self.tz = resolve_timezone(timezone)
        self.quality = quality

    def write(self, alarm: Alarm, image: np.ndarray, polygons: Sequence[Sequence[tuple[float, float]]] = ()
              ) -> tuple[str, str]:
        """Save ``image`` (BGR uint8, the analysed frame) clean and annotated with ``polygons`` (normalised zone
        outlines) and ``alarm.boxes``; returns the two paths relative to the evidence directory."""
        for name, value in (("camera_id", alarm.camera_id), ("alarm_id", alarm.alarm_id)):
            if not _SAFE.match(value):
                raise ValueError(f"Alarm.{name} {value!r} cannot be used in a file name")
        local = datetime.fromtimestamp(alarm.at, self.tz)
        rel_dir = Path(local.strftime("%Y-%m-%d")) / alarm.camera_id
        stem = alarm.alarm_id if alarm.phase == "raised" else f"{alarm.alarm_id}-cleared"
        annotated = self.annotate(alarm, image, polygons, local)
        clean_rel = (rel_dir / f"{stem}-clean.jpg").as_posix()
        ann_rel = (rel_dir / f"{stem}.jpg").as_posix()
        self._atomic_jpeg(self.root / clean_rel, image)
        self._atomic_jpeg(self.root / ann_rel, annotated)
        return ann_rel, clean_rel

    def annotate(self, alarm: Alarm, image: np.ndarray, polygons: Sequence[Sequence[tuple[float, float]]],
                 local: datetime | None = None) -> np.ndarray:
        """A copy of ``image`` with the zone outlines, the boxes and a caption drawn on it."""
        out = image.copy()
        h, w = out.shape[:2]
        scale = max(1, round(w / 640))
        for poly in polygons:
            pts = np.round(np.asarray(poly, np.float64) * (w, h)).astype(np.int32)
            cv2.polylines(out, [pts], True, ZONE_COLOUR, 2 * scale, cv2.LINE_AA)
        for x1, y1, x2, y2 in alarm.boxes:
            cv2.rectangle(out, (int(x1 * w), int(y1 * h)), (int(x2 * w), int(y2 * h)), BOX_COLOUR, 2 * scale)
        local = local or datetime.fromtimestamp(alarm.at, self.tz)
        cjk = renderer()
        if cjk is not None:  # Chinese through FreeType; without it (no font), the ASCII caption below
            mask = cjk.render(caption_text(alarm, local), 14 * scale)
            mh, mw = mask.shape
            mw = min(mw, w - 12 * scale)
            band = out[0:mh + 6 * scale, 0:min(w, mw + 12 * scale)]
            band[:] = 0
            alpha = mask[:, :mw, None].astype(np.float32) / 255.0
            y0, x0 = 3 * scale, 6 * scale
            region = out[y0:y0 + mh, x0:x0 + mw].astype(np.float32)
            out[y0:y0 + mh, x0:x0 + mw] = (region * (1 - alpha) + np.array(TEXT_COLOUR, np.float32) * alpha
                                           ).astype(np.uint8)
            return out
        caption = (f"{ascii_label(alarm.camera_name, alarm.camera_id)} | "
                   f"{ascii_label(alarm.zone_name, alarm.zone_id)} | {alarm.event} {alarm.phase} | "
                   f"{local.strftime('%Y-%m-%d %H:%M:%S')} | dwell {alarm.dwell_s:.0f}s")
        font_scale = 0.5 * scale
        (tw, th), base = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, font_scale, scale)
        cv2.rectangle(out, (0, 0), (min(w, tw + 12 * scale), th + base + 10 * scale), (0, 0, 0), -1)
        cv2.putText(out, caption, (6 * scale, th + 5 * scale), cv2.FONT_HERSHEY_SIMPLEX, font_scale, TEXT_COLOUR,
                    scale, cv2.LINE_AA)
        return out

    def _atomic_jpeg(self, path: Path, image: np.ndarray) -> None:
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise OSError(f"JPEG encoding failed for {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(buf.tobytes())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
