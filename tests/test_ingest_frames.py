"""video_ingest.frames.to_bgr: a decoded picture as BGR, the same as PyAV's conversion, without swscale's threads."""

from __future__ import annotations

import os

import av
import numpy as np
import pytest

from video_ingest.frames import to_bgr


def _picture(width: int, height: int, fmt: str) -> av.VideoFrame:
    rng = np.random.default_rng(width * height)
    # A smooth picture with some colour (noise would be smoothed differently by the two chroma upsamplers).
    y, x = np.mgrid[0:height, 0:width]
    bgr = np.stack([(x * 255 // max(1, width - 1)), (y * 255 // max(1, height - 1)),
                    np.full_like(x, 128)], axis=2).astype(np.uint8)
    bgr[: height // 2, : width // 2] = rng.integers(60, 200, 3, dtype=np.uint8)
    return av.VideoFrame.from_ndarray(bgr, format="bgr24").reformat(format=fmt)


@pytest.mark.parametrize("fmt, size", [("yuv420p", (64, 48)), ("yuvj420p", (64, 48)), ("nv12", (64, 48)),
                                       ("yuv420p", (63, 47)), ("yuv422p", (64, 48))])
def test_to_bgr_matches_pyav_within_rounding(fmt, size):
    picture = _picture(*size, fmt)
    got = to_bgr(picture)
    want = picture.to_ndarray(format="bgr24")
    assert got.shape == want.shape == (size[1], size[0], 3) and got.dtype == np.uint8
    diff = np.abs(got.astype(int) - want.astype(int))
    assert diff.mean() < 2.5 and np.percentile(diff, 99) <= 8


def test_to_bgr_starts_no_threads():
    pictures = [_picture(128, 72, "yuv420p") for _ in range(5)]
    before = set(os.listdir(f"/proc/{os.getpid()}/task"))
    born: set[str] = set()
    for picture in pictures:
        to_bgr(picture)
        born |= set(os.listdir(f"/proc/{os.getpid()}/task")) - before
    assert not born  # PyAV's to_ndarray(format="bgr24") starts two swscale threads per picture here
