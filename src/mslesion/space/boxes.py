"""Boxes on a voxel grid, as tuples of slices: around a mask, around a point, and crops put back.

One family for every stage: the brain box that inference, training, preprocessing, the
phantoms and the report crop to, and the box of the union of two masks that surface
distances are computed in. Margins are in voxels, one number or one per axis, and every
box is clipped to the grid.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Box = tuple[slice, ...]


def bounding_box_or_none(mask: np.ndarray, margin: int | Sequence[int] = 0, shape: tuple[int, ...] | None = None) -> Box | None:
    """Slices of the smallest box holding `mask`, grown by `margin` voxels and clipped to the grid; None when empty.

    The grid is `shape`, or the mask's own shape.
    """
    shape = tuple(shape or mask.shape)
    idx = np.argwhere(mask)
    if idx.size == 0:
        return None
    lo = np.maximum(idx.min(axis=0) - margin, 0)
    hi = np.minimum(idx.max(axis=0) + 1 + margin, shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def bounding_box(mask: np.ndarray, margin: int | Sequence[int] = 0, shape: tuple[int, ...] | None = None) -> Box:
    """`bounding_box_or_none`, but the whole grid when the mask is empty."""
    shape = tuple(shape or mask.shape)
    box = bounding_box_or_none(mask, margin, shape)
    return box if box is not None else tuple(slice(0, n) for n in shape)


def widen_box(box: Box, size: Sequence[int], shape: tuple[int, ...]) -> Box:
    """`box` grown about its centre to at least `size` voxels per axis where the grid allows it."""
    slices = []
    for axis, n in enumerate(shape):
        lo, hi = box[axis].start, box[axis].stop
        short = size[axis] - (hi - lo)
        if short > 0:  # grow to one patch when the volume allows it
            lo = max(lo - (short + 1) // 2, 0)
            hi = min(lo + size[axis], n)
            lo = max(hi - size[axis], 0)
        slices.append(slice(lo, hi))
    return tuple(slices)


def brain_bbox(brain: np.ndarray, margin: int, patch_size: Sequence[int]) -> Box:
    """Bounding box of the brain plus `margin`, at least one patch wide, inside the volume."""
    return widen_box(bounding_box(brain > 0, margin), patch_size, brain.shape)


def box_around(center: np.ndarray, half: int, shape: tuple[int, ...]) -> Box | None:
    """Box of `half` voxels either side of `center`, clipped to `shape`; None when empty."""
    c = np.round(np.asarray(center)).astype(int)
    lo = np.maximum(c - half, 0)
    hi = np.minimum(c + half + 1, shape)
    if np.any(hi <= lo):
        return None
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def pad_to_grid(crop_array: np.ndarray, crop: tuple[slice, slice, slice], shape: tuple[int, int, int]) -> np.ndarray:
    """Place a cropped array back on the full grid (zeros outside the crop)."""
    out = np.zeros(shape, dtype=crop_array.dtype)
    out[crop] = crop_array
    return out
