"""space.boxes, the one bounding-box family, against the helpers it replaced (copied here verbatim as references)."""

from __future__ import annotations

import numpy as np
import pytest

from mslesion.space.boxes import bounding_box, bounding_box_or_none, box_around, brain_bbox, pad_to_grid, widen_box


def old_synth_bounding_box(mask, margin, shape=None):  # synth/grid.py
    shape = tuple(shape or mask.shape)
    idx = np.argwhere(mask)
    if idx.size == 0:
        return tuple(slice(0, n) for n in shape)
    lo = np.maximum(idx.min(axis=0) - margin, 0)
    hi = np.minimum(idx.max(axis=0) + 1 + margin, shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def old_sliding_brain_bbox(brain, margin, patch_size):  # infer/sliding.py
    idx = np.argwhere(brain > 0)
    if idx.size == 0:
        return tuple(slice(0, n) for n in brain.shape)
    slices = []
    for axis, n in enumerate(brain.shape):
        lo = max(int(idx[:, axis].min()) - margin, 0)
        hi = min(int(idx[:, axis].max()) + 1 + margin, n)
        short = patch_size[axis] - (hi - lo)
        if short > 0:
            lo = max(lo - (short + 1) // 2, 0)
            hi = min(lo + patch_size[axis], n)
            lo = max(hi - patch_size[axis], 0)
        slices.append(slice(lo, hi))
    return tuple(slices)


def old_subtraction_bounding_box(mask, margin):  # models/subtraction.py
    idx = np.argwhere(mask)
    if idx.size == 0:
        return None
    lo = np.maximum(idx.min(axis=0) - margin, 0)
    hi = np.minimum(idx.max(axis=0) + np.array(margin) + 1, mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def old_draw_erase_bbox(mask, margin):  # synth/draw_erase.py (non-empty masks only)
    out = []
    for axis in range(mask.ndim):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        out.append(slice(max(int(hit[0]) - margin, 0), min(int(hit[-1]) + margin + 1, mask.shape[axis])))
    return tuple(out)


def old_figures_brain_box(brain, margin=3):  # report/figures.py
    idx = np.argwhere(brain)
    if idx.size == 0:
        return tuple(slice(0, n) for n in brain.shape)
    lo = np.maximum(idx.min(axis=0) - margin, 0)
    hi = np.minimum(idx.max(axis=0) + margin + 1, brain.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def old_surface_union_box(p, r):  # evaluate/surface.py (non-empty union only)
    coords = np.nonzero(p | r)
    return tuple(slice(max(int(c.min()) - 1, 0), min(int(c.max()) + 2, n)) for c, n in zip(coords, p.shape))


def masks(seed: int, count: int = 40):
    """Random masks: empty, single voxels at the edges, blobs, and sparse noise, on small odd grids."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        shape = tuple(int(n) for n in rng.integers(1, 14, size=3))
        mask = np.zeros(shape, bool)
        if i % 5 == 1:
            mask[tuple(int(rng.integers(0, n)) for n in shape)] = True
        elif i % 5 == 2:
            mask[tuple(0 if rng.random() < 0.5 else n - 1 for n in shape)] = True
        elif i % 5 >= 3:
            mask = rng.random(shape) < rng.uniform(0.01, 0.3)
        yield mask


@pytest.mark.parametrize("margin", [0, 1, 3, 20])
def test_bounding_box_equals_every_helper_it_replaced(margin: int) -> None:
    rng = np.random.default_rng(margin)
    for mask in masks(margin):
        box = bounding_box(mask, margin)
        assert box == old_synth_bounding_box(mask, margin)
        assert bounding_box(mask, margin) == old_figures_brain_box(mask, margin)
        per_axis = [int(m) for m in rng.integers(0, 5, size=3)]
        assert bounding_box_or_none(mask, per_axis) == old_subtraction_bounding_box(mask, per_axis)
        patch = tuple(int(n) for n in rng.integers(0, 16, size=3))
        assert brain_bbox(mask.astype(np.uint8), margin, patch) == old_sliding_brain_bbox(mask.astype(np.uint8), margin, patch)
        if mask.any():
            assert box == old_draw_erase_bbox(mask, margin)
            other = np.roll(mask, 2, axis=0)
            assert bounding_box(mask | other, 1) == old_surface_union_box(mask, other)
        else:
            assert bounding_box_or_none(mask, margin) is None
            assert box == tuple(slice(0, n) for n in mask.shape)


def test_bounding_box_clips_to_a_given_grid() -> None:
    mask = np.zeros((10, 10, 10), bool)
    mask[8, 1, 5] = True
    assert bounding_box(mask, 2, (9, 12, 6)) == old_synth_bounding_box(mask, 2, (9, 12, 6)) == (slice(6, 9), slice(0, 4), slice(3, 6))


def test_widen_box_keeps_wide_boxes_and_centres_short_ones() -> None:
    assert widen_box((slice(2, 8),), (4,), (10,)) == (slice(2, 8),)
    assert widen_box((slice(4, 6),), (6,), (10,)) == (slice(2, 8),)
    assert widen_box((slice(0, 2),), (6,), (10,)) == (slice(0, 6),)
    assert widen_box((slice(0, 3),), (6,), (4,)) == (slice(0, 4),)


def test_box_around_and_pad_to_grid() -> None:
    assert box_around(np.array([0.4, 5.0, 9.6]), 2, (8, 8, 12)) == (slice(0, 3), slice(3, 8), slice(8, 12))
    assert box_around(np.array([-5, 0, 0]), 2, (8, 8, 8)) is None
    crop = (slice(1, 3), slice(0, 2), slice(2, 3))
    out = pad_to_grid(np.ones((2, 2, 1), np.uint8), crop, (4, 4, 4))
    assert out.dtype == np.uint8 and out.sum() == 4 and out[crop].all()
