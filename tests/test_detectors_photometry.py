"""Illumination-invariant comparisons (detectors.photometry): tables of synthetic cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.photometry import (
    arrival_match,
    arrived_moving,
    block_nanmedian,
    grey,
    illumination_field,
    lighting_only,
    local_ncc,
)

H, W = 90, 160


def _texture(seed: int = 0, lo: float = 60, hi: float = 200, h: int = H, w: int = W) -> np.ndarray:
    """Planar (3, h, w) float32: blocky grey texture (paving), same in all channels."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(lo, hi, size=(h // 6 + 1, w // 6 + 1)).astype(np.float32)
    img = np.kron(small, np.ones((6, 6), np.float32))[:h, :w]
    return np.stack([img, img * 0.95, img * 0.9]).astype(np.float32)


# --- illumination_field -----------------------------------------------------------------------------------


@pytest.mark.parametrize("factor", [0.4, 0.7, 1.0, 1.3])
def test_a_global_change_is_a_flat_field(factor):
    bg = _texture()
    field, overall = illumination_field(grey(bg * factor), grey(bg), np.ones((H, W), bool))
    assert overall == pytest.approx(factor, rel=1e-3)
    assert np.allclose(field, factor, rtol=1e-3)


def test_a_shadow_half_is_a_dip_in_the_field():
    bg = _texture()
    cur = bg.copy()
    cur[:, :, : W // 2] *= 0.6
    field, _ = illumination_field(grey(cur), grey(bg), np.ones((H, W), bool), cell=20)
    assert np.allclose(field[:, :60], 0.6, atol=0.02)
    assert np.allclose(field[:, 100:], 1.0, atol=0.02)


def test_cells_without_background_take_their_neighbours_light():
    bg = _texture()
    cur = bg * 0.8
    cur[:, 30:60, 40:100] = 250.0  # a bright object, excluded from the estimate
    valid = np.ones((H, W), bool)
    valid[30:60, 40:100] = False
    field, overall = illumination_field(grey(cur), grey(bg), valid, cell=20)
    assert overall == pytest.approx(0.8, rel=1e-3)
    assert np.allclose(field, 0.8, atol=0.01)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_block_nanmedian_is_numpys_nanmedian(seed):
    rng = np.random.default_rng(seed)
    blocks = rng.random((9, 16, 100)).astype(np.float32) * 3
    blocks[rng.random(blocks.shape) < 0.4] = np.nan
    blocks[0, 0, :] = np.nan          # a cell all under an object
    blocks[1, 1, 1:] = np.nan         # one value left
    blocks[2, 2, 2:] = np.nan         # two: the mean of both
    counts = np.isfinite(blocks).sum(axis=2)
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        expected = np.nanmedian(blocks, axis=2)
    got = block_nanmedian(blocks, counts)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got[np.isfinite(got)], expected[np.isfinite(expected)], rtol=1e-6)


def test_no_valid_pixel_gives_unit_light():
    bg = _texture()
    field, overall = illumination_field(grey(bg * 0.5), grey(bg), np.zeros((H, W), bool))
    assert overall == 1.0 and np.all(field == 1.0)


# --- lighting_only ----------------------------------------------------------------------------------------


def _patch(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(cur, lit background): the centre 30x40 patch of cur changed as ``kind`` says."""
    bg = _texture(1)
    cur = bg.copy()
    sl = (slice(None), slice(30, 60), slice(60, 100))
    if kind == "shadow":
        cur[sl] *= 0.6
    elif kind == "deep shadow":
        cur[sl] *= 0.25
    elif kind == "glare":
        cur[sl] *= 1.3
    elif kind == "red object":
        cur[sl] = np.array([40, 40, 200], np.float32)[:, None, None]
    elif kind == "flat grey object":
        cur[sl] = 0.6 * float(grey(bg[sl]).mean() / 3)
    elif kind == "textured object":
        cur[sl] = _texture(9, 20, 240, 30, 40)[::-1]
    return cur, bg


@pytest.mark.parametrize("kind, expected", [
    ("shadow", True),
    ("glare", True),
    ("deep shadow", False),       # darker than any shadow the band allows
    ("red object", False),        # chromaticity changed
    ("flat grey object", False),  # same colour, darker — but the paving's texture is gone
    ("textured object", False),   # texture of its own
])
def test_lighting_only_tells_light_from_things(kind, expected):
    cur, bg = _patch(kind)
    verdict = lighting_only(cur, bg)
    inner = verdict[34:56, 64:96]  # away from the patch border (windows straddle it)
    share = float(inner.mean())
    assert (share > 0.8) if expected else (share < 0.2), f"{kind}: {share:.2f} of the patch judged light-only"


def test_local_ncc_is_one_for_a_scaled_copy_and_zero_on_flat():
    a = grey(_texture(2))
    ncc, sa, sb = local_ncc(a, a * 0.5 + 10)
    assert float(ncc[sa > 5.0].min()) > 0.98  # every textured window (inside one paving block it is flat)
    flat = np.full((H, W), 100.0, np.float32)
    ncc, _, _ = local_ncc(flat, flat)
    assert np.all(ncc == 0.0)


# --- arrived_moving ---------------------------------------------------------------------------------------


def _scene_with_block(x: int) -> np.ndarray:
    img = grey(_texture(3, 90, 110)).copy()  # a dull road
    if x is not None:
        img[40:64, x:x + 30] = grey(_texture(7, 0, 255, 24, 30))  # a vivid rigid thing
    return img


@pytest.mark.parametrize("earlier_x, expect_vehicle", [
    (10, True),     # was 2.3 widths to the left one sample before: drove in
    (125, True),    # came from the right
    (None, False),  # was not anywhere before: put down
    (80, False),    # was already here (no shift): says nothing about how it came
])
def test_arrived_moving(earlier_x, expect_vehicle):
    now = _scene_with_block(80)
    earlier = _scene_with_block(earlier_x)
    score = arrived_moving(now, earlier, (80, 40, 30, 24))
    assert (score >= 0.6) == expect_vehicle, score


def test_arrived_moving_ignores_tiny_or_flat_crops():
    now = _scene_with_block(80)
    assert arrived_moving(now, now, (80, 40, 4, 4)) == 0.0
    flat = np.full((H, W), 100.0, np.float32)
    assert arrived_moving(flat, flat, (80, 40, 30, 24)) == 0.0


@pytest.mark.parametrize("earlier_x, shift", [(10, -70), (125, 45)])
def test_arrival_match_says_how_far_it_moved(earlier_x, shift):
    score, got = arrival_match(_scene_with_block(80), _scene_with_block(earlier_x), (80, 40, 30, 24))
    assert score > 0.9 and got == shift
