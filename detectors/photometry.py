"""Illumination-invariant comparisons used by the stationary analysis: pure numpy/OpenCV functions, no state.

- ``illumination_field``: how much brighter or darker each part of the view is now than the background, as a
  smooth per-pixel factor estimated from coarse cells (median ratio over pixels that showed background). A
  global exposure change is a flat field; a cloud shadow or a building's shadow is a dip in it. Multiplying the
  background by the field explains lighting away before differencing.
- ``lighting_only``: per-pixel test that what differs from the (lit) background is only light: brightness ratio
  in a band, chromaticity kept (all channels scaled alike), local texture unchanged (normalised cross-
  correlation of small windows). Shadow edges the coarse field cannot follow are caught here.
- ``arrival_match`` / ``arrived_moving``: whether a newly stationary blob is a rigid thing that moved in and
  stopped (a car, a delivery tricycle) rather than something put down: its appearance now is found, displaced
  along the row, in a frame from before it stopped; the shift gives its speed.

All images are float32; ``grey`` is the channel sum (0..765) of a planar (3, h, w) BGR image.
"""

from __future__ import annotations

import cv2
import numpy as np


def grey(img: np.ndarray) -> np.ndarray:
    """float32 (h, w): channel sum of a planar (3, h, w) image."""
    return img.sum(axis=0, dtype=np.float32)


def illumination_field(cur_g: np.ndarray, bg_g: np.ndarray, valid: np.ndarray, *, cell: int = 20,
                       min_valid: float = 0.25, step: int = 2) -> tuple[np.ndarray, float]:
    """Per-pixel lighting factor now/background, and its global median.

    ``cur_g`` / ``bg_g``: float32 (h, w) grey images; ``valid``: bool (h, w), pixels believed to show
    background (not foreground last time, not near-black). Each ``cell`` x ``cell`` block takes the median ratio
    of its valid pixels (sampled every ``step`` px); blocks with fewer than ``min_valid`` valid samples take the
    mean of valid neighbours (repeatedly), then the global median; the block grid is resized bilinearly to
    (h, w). With no valid pixel at all the field is 1.
    """
    h, w = cur_g.shape
    ratio = np.where(valid, cur_g / np.maximum(bg_g, 1e-3), np.nan).astype(np.float32)
    sub = ratio[::step, ::step]
    cs = max(1, cell // step)
    gh, gw = -(-sub.shape[0] // cs), -(-sub.shape[1] // cs)
    padded = np.full((gh * cs, gw * cs), np.nan, np.float32)
    padded[:sub.shape[0], :sub.shape[1]] = sub
    blocks = padded.reshape(gh, cs, gw, cs).transpose(0, 2, 1, 3).reshape(gh, gw, cs * cs)
    counts = np.isfinite(blocks).sum(axis=2)
    finite = sub[np.isfinite(sub)]
    if finite.size == 0:
        return np.ones((h, w), np.float32), 1.0
    overall = float(np.median(finite))
    grid = block_nanmedian(blocks, counts)
    grid[counts < min_valid * cs * cs] = np.nan
    for _ in range(4):  # fill holes (cells under a big object) from their neighbours
        holes = ~np.isfinite(grid)
        if not holes.any():
            break
        g0 = np.where(holes, 0.0, grid)
        n0 = (~holes).astype(np.float32)
        k = np.ones((3, 3), np.float32)
        s = cv2.filter2D(g0.astype(np.float32), -1, k, borderType=cv2.BORDER_CONSTANT)
        n = cv2.filter2D(n0, -1, k, borderType=cv2.BORDER_CONSTANT)
        fill = np.where(n > 0, s / np.maximum(n, 1e-6), np.nan)
        grid = np.where(holes, fill, grid)
    grid = np.where(np.isfinite(grid), grid, overall).astype(np.float32)
    # Cell centres sit at (i + 0.5) * cell; INTER_LINEAR on the whole grid maps them there.
    field = cv2.resize(grid, (gw * cell, gh * cell), interpolation=cv2.INTER_LINEAR)[:h, :w]
    return np.ascontiguousarray(field), overall


def block_nanmedian(blocks: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``np.nanmedian(blocks, axis=-1)`` (NaN where a row has no finite value), exactly, ~15x faster for the
    illumination grid: numpy's nanmedian goes through masked arrays for short rows. ``counts``: the finite values
    per row. Sorting puts NaN last, so a row's median sits at ranks (k-1)//2 and k//2 of its k finite values."""
    ordered = np.sort(blocks, axis=-1)
    lo = np.take_along_axis(ordered, np.maximum((counts - 1) // 2, 0)[..., None], -1)[..., 0]
    hi = np.take_along_axis(ordered, np.maximum(counts // 2, 0)[..., None], -1)[..., 0]
    out = (lo + hi) / 2
    out[counts == 0] = np.nan
    return out


def local_ncc(a: np.ndarray, b: np.ndarray, ksize: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windowed normalised cross-correlation of two float32 (h, w) images: (ncc, std_a, std_b). ``ncc`` is 0
    where either window is flat (std below 1e-3)."""
    k = (ksize, ksize)
    ma = cv2.blur(a, k)
    mb = cv2.blur(b, k)
    va = np.maximum(cv2.blur(a * a, k) - ma * ma, 0.0)
    vb = np.maximum(cv2.blur(b * b, k) - mb * mb, 0.0)
    cov = cv2.blur(a * b, k) - ma * mb
    sa, sb = np.sqrt(va), np.sqrt(vb)
    den = sa * sb
    ncc = np.where(den > 1e-6, cov / np.maximum(den, 1e-6), 0.0).astype(np.float32)
    return ncc, sa, sb


def lighting_only(cur: np.ndarray, lit_bg: np.ndarray, *, ratio_band: tuple[float, float] = (0.45, 1.7),
                  chroma_tol: float = 0.12, ncc_min: float = 0.6, flat_std: float = 6.0,
                  ksize: int = 5) -> np.ndarray:
    """bool (h, w): pixels where ``cur`` differs from ``lit_bg`` (both planar float32 (3, h, w)) only by light.

    A pixel qualifies when its brightness ratio cur/lit_bg is inside ``ratio_band``, the per-channel ratios agree
    within ``chroma_tol`` (relative; shadows and glare keep the colour, a new object rarely does), and its
    neighbourhood keeps the background's texture: windowed NCC ≥ ``ncc_min`` where the background is textured
    (grey std ≥ ``flat_std``); where background and frame are both flat, texture cannot tell and the photometric
    tests decide.
    """
    eps = 6.0
    rc = (cur + eps) / (lit_bg + eps)  # (3, h, w) per-channel ratios
    r = rc.mean(axis=0)
    spread = (rc.max(axis=0) - rc.min(axis=0)) / np.maximum(r, 1e-3)
    photometric = (r >= ratio_band[0]) & (r <= ratio_band[1]) & (spread <= chroma_tol)
    ncc, s_cur, s_bg = local_ncc(grey(cur), grey(lit_bg), ksize)
    flat_std3 = flat_std * 3.0  # grey is the sum of three channels
    textured = s_bg >= flat_std3
    texture_kept = np.where(textured, ncc >= ncc_min, s_cur < flat_std3 * np.maximum(r, 1.0) * 1.5)
    return photometric & texture_kept


def arrival_match(now_g: np.ndarray, earlier_g: np.ndarray, box: tuple[int, int, int, int], *,
                  min_shift: float = 0.3, search: float = 3.0) -> tuple[float, int]:
    """(best normalised correlation, its sideways shift in px) of the ``box`` (x, y, w, h) crop of ``now_g``
    found in ``earlier_g`` shifted by at least ``min_shift`` box widths (up to ``search`` widths, ±12 % of the
    height vertically); (0.0, 0) when nothing correlates or the crop is too small or flat."""
    x, y, bw, bh = box
    h, w = now_g.shape
    if bw < 6 or bh < 6:
        return 0.0, 0
    tpl = now_g[y:y + bh, x:x + bw]
    if float(tpl.std()) < 3.0:
        return 0.0, 0
    dy = max(1, int(round(0.12 * bh)))
    sx0, sx1 = max(0, int(x - search * bw)), min(w, int(x + bw + search * bw))
    sy0, sy1 = max(0, y - dy), min(h, y + bh + dy)
    region = earlier_g[sy0:sy1, sx0:sx1]
    if region.shape[0] < bh or region.shape[1] < bw:
        return 0.0, 0
    res = cv2.matchTemplate(region, tpl, cv2.TM_CCOEFF_NORMED)
    shifts = np.arange(res.shape[1]) + sx0 - x  # where the crop's left edge was, relative to now
    far = np.abs(shifts) >= min_shift * bw
    if not far.any():
        return 0.0, 0
    masked = np.where(far[None, :], res, -1.0)
    iy, ix = np.unravel_index(int(np.argmax(masked)), masked.shape)
    return max(0.0, float(masked[iy, ix])), int(shifts[ix])


def arrived_moving(now_g: np.ndarray, earlier_g: np.ndarray, box: tuple[int, int, int, int], *,
                   min_shift: float = 0.3, search: float = 3.0, ncc_min: float = 0.6) -> float:
    """The correlation of ``arrival_match``. A value ≥ ``ncc_min`` means the blob's own appearance was
    elsewhere on its row before: it moved in as one rigid thing, it was not put down piece by piece."""
    return arrival_match(now_g, earlier_g, box, min_shift=min_shift, search=search)[0]
