"""Encoded demo media: each scene rendered and encoded once to a raw H.264 Annex-B file, then cached.

The files are what the demo RTSP server loops. Encoding choices follow what a real IP camera sends and what
the ingest side relies on: H.264 constrained baseline (avc1.42C01F), yuv420p, no B-frames (zerolatency), an IDR
every 25 frames (one per second) with SPS/PPS repeated before each IDR, ~2 Mbit/s. Each
``<name>-<seed>-v<N>.h264`` has a JSON sidecar (``.json``) written last; a file counts as valid only when its
sidecar exists and matches, and both are written under temporary names and renamed, so a crash never leaves a
half file that looks valid.
"""

from __future__ import annotations

import fcntl
import json
import multiprocessing
import os
import sys
import time
from fractions import Fraction
from pathlib import Path

from demo.scenes import SCENE_NAMES

MEDIA_VERSION = 2          # bump when scenes or encoding change: old files are then ignored
BIT_RATE = 2_000_000
GOP = 25
PRESET = "ultrafast"
X264_PARAMS = (
    f"keyint={GOP}:min-keyint={GOP}:scenecut=0:bframes=0:repeat-headers=1:open-gop=0"
    f":vbv-maxrate={BIT_RATE // 1000 * 5 // 4}:vbv-bufsize={BIT_RATE // 1000}"
)


def media_paths(media_dir: Path, name: str, seed: int) -> tuple[Path, Path]:
    """(stream file, sidecar) paths for scene ``name`` and ``seed``."""
    stem = f"{name}-{seed}-v{MEDIA_VERSION}"
    return media_dir / f"{stem}.h264", media_dir / f"{stem}.json"


def read_sidecar(path: Path) -> dict | None:
    """The sidecar of a stream file (``.h264`` or ``.json`` path), or ``None`` when missing or unreadable."""
    side = path.with_suffix(".json")
    try:
        return json.loads(side.read_text())
    except (OSError, ValueError):
        return None


def is_valid(media_dir: Path, name: str, seed: int) -> bool:
    """Whether the cached file of scene ``name`` for ``seed`` is complete (sidecar present, version and size match)."""
    return _valid(*media_paths(Path(media_dir), name, seed))


def _valid(stream: Path, side: Path) -> bool:
    meta = read_sidecar(side)
    if not meta:
        return False
    try:
        return meta.get("version") == MEDIA_VERSION and stream.stat().st_size == meta["bytes"] > 0
    except (OSError, KeyError, TypeError):
        return False


def encode_scene(name: str, seed: int, out: Path, *, threads: int = 1) -> dict:
    """Render scene ``name`` for ``seed`` and encode it to the Annex-B file ``out`` (written in place; callers
    write to a temporary name). Returns the sidecar metadata."""
    import av  # imported here: the RTSP server side never needs it
    import cv2
    import numpy as np

    from demo.scenes import make_scene

    scene = make_scene(name, seed)
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height = scene.width, scene.height
    ctx.pix_fmt = "yuv420p"
    ctx.time_base = Fraction(1, scene.fps)
    ctx.framerate = Fraction(scene.fps, 1)
    ctx.bit_rate = BIT_RATE
    ctx.gop_size = GOP
    ctx.max_b_frames = 0
    ctx.options = {"preset": PRESET, "tune": "zerolatency", "profile": "baseline",
                   "x264-params": f"{X264_PARAMS}:threads={threads}"}
    t0 = time.perf_counter()
    render_s = 0.0
    keyframes: list[int] = []
    n_packets = 0
    size = 0
    with open(out, "wb") as f:
        def write(packets) -> None:
            nonlocal n_packets, size
            for p in packets:
                data = bytes(p)
                if p.is_keyframe:
                    keyframes.append(n_packets)
                f.write(data)
                size += len(data)
                n_packets += 1

        for i in range(scene.frame_count):
            r0 = time.perf_counter()
            img = scene.render(i / scene.fps)
            render_s += time.perf_counter() - r0
            # OpenCV's I420 is limited-range BT.601, as swscale would produce, at a seventh of the cost.
            i420 = np.asarray(cv2.cvtColor(img, cv2.COLOR_BGR2YUV_I420), dtype=np.uint8)  # already uint8: no copy
            frame = av.VideoFrame.from_ndarray(i420, format="yuv420p")
            frame.pts = i
            write(ctx.encode(frame))
            if (i + 1) % (scene.fps * 30) == 0:
                print(f"demo media: {name} {i + 1}/{scene.frame_count} frames", file=sys.stderr, flush=True)
        write(ctx.encode(None))
    total = time.perf_counter() - t0
    if n_packets != scene.frame_count:
        raise RuntimeError(f"{name}: encoder produced {n_packets} packets for {scene.frame_count} frames")
    return {
        "version": MEDIA_VERSION, "scene": name, "seed": seed, "codec": "h264", "format": "annexb",
        "fps": scene.fps, "frames": n_packets, "width": scene.width, "height": scene.height,
        "gop": GOP, "keyframes": len(keyframes), "bytes": size, "bit_rate": round(size * 8 * scene.fps / n_packets),
        "ground_truth": [gt.__dict__ for gt in scene.ground_truth],
        "encode_s": round(total, 2), "render_ms_per_frame": round(render_s / n_packets * 1000, 2),
    }


def _build(args: tuple[str, int, str, int]) -> tuple[str, dict]:
    name, seed, media_dir, threads = args
    stream, side = media_paths(Path(media_dir), name, seed)
    tmp = stream.with_name(f".{stream.name}.{os.getpid()}.tmp")
    try:
        meta = encode_scene(name, seed, tmp, threads=threads)
        os.replace(tmp, stream)
        side_tmp = side.with_name(f".{side.name}.{os.getpid()}.tmp")
        side_tmp.write_text(json.dumps(meta, indent=1))
        os.replace(side_tmp, side)
    finally:
        tmp.unlink(missing_ok=True)
    print(f"demo media: {name} done in {meta['encode_s']} s, {meta['bytes'] / 1e6:.1f} MB, "
          f"render {meta['render_ms_per_frame']} ms/frame", file=sys.stderr, flush=True)
    return name, meta


def ensure_media(media_dir: Path, seed: int, names=SCENE_NAMES) -> dict[str, Path]:
    """Scene name → path of its H.264 file for ``seed``, generating (in up to two processes) whatever is not
    cached yet in ``media_dir``. Safe to call from several processes at once (a lock file serialises them)."""
    media_dir = Path(media_dir)
    unknown = [n for n in names if n not in SCENE_NAMES]
    if unknown:
        raise ValueError(f"unknown demo scene(s) {unknown}; known: {', '.join(SCENE_NAMES)}")
    media_dir.mkdir(parents=True, exist_ok=True)
    result = {n: media_paths(media_dir, n, seed)[0] for n in names}
    if all(_valid(*media_paths(media_dir, n, seed)) for n in names):
        return result
    with open(media_dir / ".generate.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be generating the same files: wait, then re-check
        todo = [n for n in names if not _valid(*media_paths(media_dir, n, seed))]
        if todo:
            t0 = time.perf_counter()
            print(f"demo media: generating {', '.join(todo)} (seed {seed}) in {media_dir}", file=sys.stderr,
                  flush=True)
            workers = max(1, min(2, os.cpu_count() or 1, len(todo)))
            jobs = [(n, seed, str(media_dir), 1) for n in todo]
            if workers == 1:
                for job in jobs:
                    _build(job)
            else:
                # spawn, not fork: the caller may have threads (asyncio.to_thread) that fork would copy mid-state.
                with multiprocessing.get_context("spawn").Pool(workers) as pool:
                    for _ in pool.imap_unordered(_build, jobs):
                        pass
            print(f"demo media: ready in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    missing = [n for n in names if not _valid(*media_paths(media_dir, n, seed))]
    if missing:
        raise RuntimeError(f"demo media for {missing} could not be generated in {media_dir}")
    return result


# -- numbered test media: real cameras' stream structures (B-frames, long GOPs, open GOP, intra refresh) ----------
NUMBER_BITS = 16
"""A numbered frame shows its index as 16 blocks (most significant first) in a band at the top of the picture."""
_NUMBER_TOP, _NUMBER_SIZE, _NUMBER_LEFT, _NUMBER_STEP = 8, 24, 8, 32


def draw_number(image, index: int) -> None:
    """Draw ``index`` (mod 2**16) into ``image`` (BGR, at least 520 px wide) as blocks: white 1, black 0."""
    for bit in range(NUMBER_BITS):
        on = (index >> (NUMBER_BITS - 1 - bit)) & 1
        x = _NUMBER_LEFT + bit * _NUMBER_STEP
        image[_NUMBER_TOP:_NUMBER_TOP + _NUMBER_SIZE, x:x + _NUMBER_SIZE] = 235 if on else 16


def read_number(image) -> int | None:
    """The index :func:`draw_number` drew, or None when a block is neither clearly white nor clearly black (a
    picture decoded from missing references)."""
    value = 0
    for bit in range(NUMBER_BITS):
        x = _NUMBER_LEFT + bit * _NUMBER_STEP
        level = float(image[_NUMBER_TOP + 4:_NUMBER_TOP + _NUMBER_SIZE - 4, x + 4:x + _NUMBER_SIZE - 4].mean())
        if 60 < level < 190:
            return None
        value = value << 1 | (level >= 190)
    return value


def encode_numbered(out: Path, *, frames: int, fps: int = 25, width: int = 640, height: int = 360,
                    gop: int = 50, bframes: int = 0, refs: int = 1, open_gop: bool = False,
                    intra_refresh: bool = False, profile: str = "main") -> dict:
    """Encode ``frames`` numbered pictures (frame ``i`` shows ``i``, over a moving texture) to the Annex-B file
    ``out`` with libx264, shaped like a real camera's stream: ``gop`` frames between keyframes, ``bframes``
    B-frames with ``refs`` reference frames, an open GOP (non-IDR I pictures with recovery point SEI and leading
    B-frames) or periodic intra refresh (one IDR, then no I picture at all). Writes ``out.pts`` (each access
    unit's presentation index, in file order, for ``demo/rtsp_server.py``) and returns a description."""
    import av
    import numpy as np

    params = [f"keyint={gop}", f"min-keyint={gop}", "scenecut=0", f"bframes={bframes}", f"ref={refs}",
              "repeat-headers=1", f"open-gop={int(open_gop)}", f"intra-refresh={int(intra_refresh)}", "threads=1"]
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base = Fraction(1, fps)
    ctx.framerate = Fraction(fps, 1)
    ctx.options = {"preset": "veryfast", "profile": profile, "crf": "26", "x264-params": ":".join(params)}
    yy, xx = np.mgrid[0:height, 0:width]
    order: list[int] = []
    keys: list[int] = []
    with open(out, "wb") as f:
        def write(packets) -> None:
            for p in packets:
                if p.is_keyframe:
                    keys.append(len(order))
                order.append(int(p.pts))
                f.write(bytes(p))

        for i in range(frames):
            shade = ((xx + yy + 4 * i) % 128 + 64).astype(np.uint8)
            image = np.dstack([shade, shade[::-1], shade[:, ::-1]])
            draw_number(image, i)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
            frame.pts = i
            write(ctx.encode(frame))
        write(ctx.encode(None))
    if sorted(order) != list(range(frames)):
        raise RuntimeError(f"{out}: the encoder gave {len(order)} packets for {frames} frames")
    Path(f"{out}.pts").write_text(json.dumps(order))
    return {"frames": frames, "fps": fps, "width": width, "height": height, "gop": gop, "bframes": bframes,
            "refs": refs, "open_gop": open_gop, "intra_refresh": intra_refresh, "keyframes": keys,
            "reordered": sum(1 for i, p in enumerate(order) if p != i)}
