"""Voxel grids of the phantoms: coarser grids with the field of view of the FSL MNI152 1 mm grid (`mslesion.space.grid`).

A coarse grid at `r` mm keeps the field of view's outer edges: coarse voxel `i` covers the
fine voxels `[r*i, r*i + r)` (centre at fine coordinate `r*i + (r-1)/2`), so downsampling
a probability map by averaging gives the partial volume a real `r` mm voxel would see.
"""

from __future__ import annotations

import math

import numpy as np

from mslesion.errors import InputError

MIN_RESOLUTION_MM = 1.0
MAX_RESOLUTION_MM = 8.0


def check_resolution(resolution_mm: float) -> float:
    """Return the voxel size as float, or raise InputError when it is outside [1, 8] mm."""
    r = float(resolution_mm)
    if not (MIN_RESOLUTION_MM <= r <= MAX_RESOLUTION_MM) or not math.isfinite(r):
        raise InputError(None, f"resolution {resolution_mm} mm is outside [{MIN_RESOLUTION_MM:g}, {MAX_RESOLUTION_MM:g}] mm")
    return r


def is_integer_factor(r: float) -> bool:
    """True when `r` is a whole number of fine voxels (block averaging is then exact)."""
    return abs(r - round(r)) < 1e-6


def coarse_shape(shape: tuple[int, ...], r: float) -> tuple[int, int, int]:
    """Shape of the `r` mm grid covering the same field of view as a 1 mm grid of `shape`."""
    return tuple(int(math.ceil(n / r - 1e-9)) for n in shape)  # type: ignore[return-value]  # 3 axes; mypy cannot count a generator's items


def coarse_affine(affine: np.ndarray, r: float) -> np.ndarray:
    """Affine of the `r` mm grid: voxel size scaled, first voxel centre moved by (r-1)/2 fine voxels."""
    scale = np.diag([r, r, r, 1.0])
    scale[:3, 3] = (r - 1.0) / 2.0
    return np.asarray(affine, dtype=float) @ scale


def downsample_box(box: np.ndarray, start: tuple[int, int, int], r: float) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Average a 1 mm box (first voxel at fine index `start`) onto the `r` mm grid.

    Returns the coarse box and the coarse index of its first voxel. Integer `r` averages
    whole blocks (exact partial volume); other factors prefilter with a Gaussian of the
    block's width and interpolate linearly at the coarse voxel centres.
    """
    box = np.asarray(box, dtype=np.float32)
    if r == 1.0:
        return box, tuple(int(s) for s in start)  # type: ignore[return-value]  # 3 axes; mypy cannot count a generator's items
    lo = [int(math.floor(s / r)) for s in start]
    hi = [int(math.ceil((s + n) / r - 1e-9)) for s, n in zip(start, box.shape)]
    if is_integer_factor(r):
        k = int(round(r))
        pad = [(s - c * k, c2 * k - (s + n)) for s, n, c, c2 in zip(start, box.shape, lo, hi)]
        padded = np.pad(box, pad)
        out_shape = tuple(h - c for h, c in zip(hi, lo))
        blocks = padded.reshape(out_shape[0], k, out_shape[1], k, out_shape[2], k)
        return blocks.mean(axis=(1, 3, 5), dtype=np.float32), tuple(lo)  # type: ignore[return-value]  # 3 axes; mypy types a list's tuple as tuple[int, ...]
    from scipy import ndimage as ndi

    sigma = math.sqrt(r * r - 1.0) / math.sqrt(12.0)
    smooth = ndi.gaussian_filter(box, sigma, mode="constant", output=np.float32)
    axes = [np.arange(c, h, dtype=np.float64) * r + (r - 1.0) / 2.0 - s for c, h, s in zip(lo, hi, start)]
    coords = np.meshgrid(*axes, indexing="ij")
    out = ndi.map_coordinates(smooth, coords, order=1, mode="constant", cval=0.0, output=np.float32)
    return out, tuple(lo)  # type: ignore[return-value]  # 3 axes; mypy types a list's tuple as tuple[int, ...]


def downsample(array: np.ndarray, r: float) -> np.ndarray:
    """Average a whole 1 mm volume onto the `r` mm grid of the same field of view."""
    out, _ = downsample_box(array, (0, 0, 0), r)
    want = coarse_shape(array.shape, r)
    return out[: want[0], : want[1], : want[2]]
