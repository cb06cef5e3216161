"""fMP4 writer cost per frame: ``video_ingest.fmp4.media_segment`` vs PyAV's mp4 muxer (``remux.FragmentMuxer``).

Run: ``.venv/bin/python bench/bench_fmp4.py [--frames 250] [--reps 9]``.

Same input for both: the first ``--frames`` packets of the vending demo camera (720p25 H.264, Annex-B, one
packet per frame, demuxed once up front; their demux is not timed). Timed, per frame, single-threaded:

- ``pyav``: ``FragmentMuxer.feed(packet)`` — today's relay muxer: packet copy, libavformat mp4 muxer with
  ``frag_every_frame`` (Annex-B → length-prefixed inside), box splitting, keyframe flag read back from the moof.
- ``media_segment``: one single-sample ``moof+mdat`` from a prepared ``Sample`` (the writer alone).
- ``nals→segment``: ``length_prefixed(nals)`` + ``Sample`` + ``media_segment`` — the new relay's per-frame work
  when the RTP depacketiser hands over a NAL list.
- ``annexb→segment``: ``split_annexb`` first, i.e. from the same Annex-B bytes ``FragmentMuxer`` gets.

Each rep runs every variant over all frames; printed: median µs per frame over the reps, and PyAV / ours.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import av  # noqa: E402

from demo.media import ensure_media  # noqa: E402
from video_ingest.fanout import StreamInfo  # noqa: E402
from video_ingest.fmp4 import Sample, init_segment, media_segment  # noqa: E402
from video_ingest.h26x import (  # noqa: E402
    H264_NAL_IDR,
    H264_NAL_PPS,
    H264_NAL_SPS,
    avc_decoder_config,
    h264_nal_type,
    length_prefixed,
    split_annexb,
)
from video_ingest.remux import FragmentMuxer  # noqa: E402

TICKS = 3600  # 90 kHz per frame at 25 fps


def load(frames: int) -> tuple[av.container.InputContainer, list[av.Packet]]:
    path = ensure_media(ROOT / "var" / "demo-media", 7, ("vending",))["vending"]
    container = av.open(str(path))
    stream = container.streams.video[0]
    packets: list[av.Packet] = []
    for packet in container.demux(stream):
        if not packet.size:
            continue
        copy = av.Packet(bytes(packet))
        copy.dts = copy.pts = len(packets) * 48000  # the raw demuxer gives no timestamps; 1/1200000 time base
        copy.time_base = Fraction(1, 1_200_000)
        copy.is_keyframe = packet.is_keyframe
        packets.append(copy)
        if len(packets) == frames:
            break
    return container, packets


def run_pyav(info: StreamInfo, packets: list[av.Packet]) -> tuple[float, int]:
    muxer = FragmentMuxer(info)
    out = 0
    t0 = time.perf_counter()
    for packet in packets:
        for seg in muxer.feed(packet):
            out += len(seg.data)
    elapsed = time.perf_counter() - t0
    muxer.close()
    return elapsed, out


def run_segments(samples: list[Sample]) -> tuple[float, int]:
    out = 0
    t0 = time.perf_counter()
    for i, s in enumerate(samples):
        out += len(media_segment(i + 1, i * TICKS, (s,)))
    return time.perf_counter() - t0, out


def run_nals(aus: list[list[bytes]], keys: list[bool]) -> tuple[float, int]:
    out = 0
    t0 = time.perf_counter()
    for i, nals in enumerate(aus):
        out += len(media_segment(i + 1, i * TICKS, (Sample(length_prefixed(nals), TICKS, keys[i]),)))
    return time.perf_counter() - t0, out


def run_annexb(raw: list[bytes]) -> tuple[float, int]:
    out = 0
    t0 = time.perf_counter()
    for i, data in enumerate(raw):
        nals = split_annexb(data)
        key = any(n[0] & 0x1F == H264_NAL_IDR for n in nals)
        out += len(media_segment(i + 1, i * TICKS, (Sample(length_prefixed(nals), TICKS, key),)))
    return time.perf_counter() - t0, out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=250)
    p.add_argument("--reps", type=int, default=9)
    args = p.parse_args()

    container, packets = load(args.frames)
    template = container.streams.video[0]
    raw = [bytes(pk) for pk in packets]
    aus = [split_annexb(r) for r in raw]
    keys = [any(h264_nal_type(n) == H264_NAL_IDR for n in au) for au in aus]
    samples = [Sample(length_prefixed(au), TICKS, k) for au, k in zip(aus, keys, strict=False)]
    sps = next(n for au in aus for n in au if h264_nal_type(n) == H264_NAL_SPS)
    pps = next(n for au in aus for n in au if h264_nal_type(n) == H264_NAL_PPS)
    init = init_segment(codec="h264", width=template.codec_context.width, height=template.codec_context.height,
                        config=avc_decoder_config([sps], [pps]))
    info = StreamInfo(camera_id="bench", session=1, codec="h264", width=template.codec_context.width,
                      height=template.codec_context.height, time_base=Fraction(1, 1_200_000),
                      extradata=avc_decoder_config([sps], [pps]), started_at=time.time())
    n = len(packets)
    print(f"{n} frames of the vending demo camera ({template.codec_context.width}x{template.codec_context.height}, "
          f"{sum(map(len, raw)) / n / 1000:.1f} kB/frame, {sum(keys)} keyframes), {args.reps} reps; "
          f"init segment {len(init)} bytes")

    results: dict[str, list[float]] = {"pyav": [], "media_segment": [], "nals→segment": [], "annexb→segment": []}
    sizes: dict[str, int] = {}
    for _ in range(args.reps):
        for name, fn in (("pyav", lambda: run_pyav(info, packets)),
                         ("media_segment", lambda: run_segments(samples)),
                         ("nals→segment", lambda: run_nals(aus, keys)),
                         ("annexb→segment", lambda: run_annexb(raw))):
            elapsed, out = fn()
            results[name].append(elapsed / n * 1e6)
            sizes[name] = out
    container.close()

    pyav = statistics.median(results["pyav"])
    for name, runs in results.items():
        med = statistics.median(runs)
        ratio = "" if name == "pyav" else f"  PyAV/ours {pyav / med:6.1f}x"
        print(f"  {name:15s} {med:8.2f} µs/frame (min {min(runs):.2f}, max {max(runs):.2f}), "
              f"{sizes[name] / n:9.0f} bytes/frame out{ratio}")
    print("  (pyav emits each fragment one frame late, when the next packet gives its duration: it wrote "
          f"{n - 1} fragments)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
