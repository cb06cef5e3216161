"""Export memory benchmark: peak RSS of exporting 10 minutes of one camera, written to a file on disk (now) against
the whole MP4 built in memory (before), each in a fresh child process so its peak is the export's own.

Run: ``.venv/bin/python bench/bench_export_memory.py [--minutes 10]``. Records ~20 s of one 720p25 demo camera
(its own demo RTSP server), copies the segments forward (renamed, re-indexed) until they hold ``--minutes``, then
runs each way in a child: ``file`` — ``RecordingLibrary.export_file`` (sample tables planned, the samples copied
from the segment files to a nameless file, 1 MiB at a time), then the file read back in 1 MiB chunks as the wall
server sends it; ``memory`` — what the export did before: every sample's bytes in a list, then
``fmp4.mp4_file`` joining them into one ``bytes``. Prints each child's RSS after start-up, its peak (ru_maxrss), the
difference, the time and the MP4's size; both MP4s are compared byte for byte (the same file).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cases.store import CaseStore  # noqa: E402
from config import parse_settings  # noqa: E402
from demo.media import ensure_media  # noqa: E402
from demo.server import DemoRtspServer  # noqa: E402
from recording.index import RecordingIndex  # noqa: E402
from recording.playback import RecordingLibrary, _load, _wall, init_facts  # noqa: E402
from recording.recorder import SegmentRow, segment_path  # noqa: E402
from recording.service import RecordingService  # noqa: E402
from video_ingest import fmp4  # noqa: E402
from video_ingest.service import IngestService  # noqa: E402

MEDIA_DIR = ROOT / "var" / "demo-media"
HASH = "scrypt$16384$8$1$00$00"
CAMERA = "cam-0"


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def in_memory(library: RecordingLibrary, since: float, until: float) -> bytes:
    """The export as it was before: every sample's bytes collected, then one MP4 built in memory."""
    samples: list[fmp4.Sample] = []
    facts = None
    timescale = 90000
    for row in library.index.segments(CAMERA, since, until):
        loaded = _load(library.index.root, row)
        seg = loaded.seg
        if facts is None:
            facts, timescale = init_facts(seg.init), seg.timescale
        for f in seg.frames:
            if _wall(loaded, f) >= until:
                break
            if not samples and not f.keyframe:
                continue
            samples.append(fmp4.Sample(seg.sample(loaded.data, f), f.duration, f.keyframe, f.composition_offset))
    assert facts is not None
    return fmp4.mp4_file(codec=facts.codec, width=facts.width, height=facts.height, config=facts.config,
                         samples=samples, timescale=timescale)


def child(mode: str, db: str, root: str, since: float, until: float) -> None:
    store = CaseStore.open(f"sqlite:///{db}")
    library = RecordingLibrary(RecordingIndex(store, Path(root)), max_export_s=until - since + 60)
    base = rss_kib()
    digest = hashlib.sha256()
    t0 = time.perf_counter()
    if mode == "file":
        plan, f = library.export_file(CAMERA, since, until)
        with f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        size = plan.size
    else:
        data = in_memory(library, since, until)
        digest.update(data)
        size = len(data)
    took = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"mode": mode, "base_mib": base / 1024, "peak_mib": peak / 1024, "added_mib": (peak - base) / 1024,
                      "seconds": took, "bytes": size, "sha256": digest.hexdigest()}))


async def record(tmp: Path, seconds: float) -> tuple[str, Path]:
    media = ensure_media(MEDIA_DIR, 7, ["vending"])
    server = DemoRtspServer(media)
    server.start()
    settings = parse_settings({
        "storage": {"data_dir": str(tmp / "var")},
        "users": [{"username": "admin", "display_name": "a", "role": "admin", "password_hash": HASH}],
        "cameras": [{"id": CAMERA, "name": "c", "url": "rtsp://127.0.0.1:1/x", "position": {"lon": 120, "lat": 30}}],
        "recording": {"mode": "continuous", "segment_s": 10}})
    db = tmp / "cases.sqlite"
    store = CaseStore.open(f"sqlite:///{db}")
    ingest = IngestService({CAMERA: server.url("vending")}, sample_keyframes=False)
    await ingest.start()
    service = RecordingService(settings, store, [CAMERA])
    await service.start(ingest.subscribe_packets)
    try:
        await asyncio.sleep(seconds)
    finally:
        await ingest.stop()
        await service.stop()
        server.stop()
    store.close()
    return str(db), service.root


def extend(db: str, root: Path, minutes: float) -> tuple[float, float]:
    store = CaseStore.open(f"sqlite:///{db}")
    index = RecordingIndex(store, root)
    done = [r for r in index.segments(CAMERA, 0, time.time()) if r.complete]
    start = done[0].start_at
    holes = (done[-1].end_at - start) - sum(r.end_at - r.start_at for r in done)
    until = start + minutes * 60 + holes
    t = done[-1].end_at
    while t < until:
        for r in done:
            if t >= until:
                break
            path = segment_path(CAMERA, t)
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / r.path, root / path)
            index.closed(SegmentRow(CAMERA, path, t, t + (r.end_at - r.start_at), r.bytes, r.codec))
            t += r.end_at - r.start_at
    store.close()
    return start, until


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--record-s", type=float, default=22.0)
    parser.add_argument("--child", nargs=5, metavar=("MODE", "DB", "ROOT", "SINCE", "UNTIL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, db, root, since, until = args.child
        child(mode, db, root, float(since), float(until))
        return
    tmp = Path(tempfile.mkdtemp(prefix="cw-export-mem-"))
    try:
        db, root = asyncio.run(record(tmp, args.record_s))
        since, until = extend(db, root, args.minutes)
        results = []
        for mode in ("memory", "file"):
            out = subprocess.run([sys.executable, __file__, "--child", mode, db, str(root), str(since), str(until)],
                                 capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            results.append(r)
            print(f"{mode:>6}: RSS after start {r['base_mib']:.0f} MiB, peak {r['peak_mib']:.0f} MiB "
                  f"(+{r['added_mib']:.0f} MiB for the export), {r['seconds']:.2f} s, {r['bytes'] / 1e6:.1f} MB")
        same = results[0]["sha256"] == results[1]["sha256"]
        print(f"{args.minutes:g} min export; the two MP4s are {'identical' if same else 'DIFFERENT'}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
