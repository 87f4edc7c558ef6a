"""Resampling between grids through a world-space mapping, in one interpolation.

The model's working grid is the FSL MNI152 1 mm grid (182x218x182) of the training data
(`mslesion.space.grid`). Arrays move between grids with SimpleITK's multi-threaded
resampler: linear for images and probabilities, nearest neighbour for labels.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from mslesion.space.grid import WORKING_AFFINE, WORKING_SHAPE
from mslesion.space.sitkio import from_sitk, ras_to_transform, to_sitk


def resample(
    array: np.ndarray,
    src_affine: np.ndarray,
    dst_affine: np.ndarray,
    dst_shape: tuple[int, int, int],
    dst_to_src: np.ndarray | None = None,
    is_label: bool = False,
) -> np.ndarray:
    """`array` (on the grid `src_affine`) resampled onto the grid (`dst_affine`, `dst_shape`).

    `dst_to_src` is a 4x4 RAS matrix taking a world point of the destination space to the
    matching world point of the source space (identity when both share a world space).
    Labels use nearest neighbour and keep their dtype; images come back float32, 0 outside.
    """
    src = to_sitk(array, src_affine, dtype=np.float32)
    reference = to_sitk(np.zeros(dst_shape, np.uint8), dst_affine, dtype=np.uint8)
    transform = ras_to_transform(np.eye(4) if dst_to_src is None else dst_to_src)
    interpolator = sitk.sitkNearestNeighbor if is_label else sitk.sitkLinear
    out = from_sitk(sitk.Resample(src, reference, transform, interpolator, 0.0, sitk.sitkFloat32))
    if is_label:
        return np.rint(out).astype(np.asarray(array).dtype)
    return out.astype(np.float32)


def to_working(array: np.ndarray, affine: np.ndarray, mni_to_native: np.ndarray, is_label: bool = False) -> np.ndarray:
    """Native array (its RAS `affine`) onto the working MNI grid, `mni_to_native` being MNI point -> native point."""
    return resample(array, affine, WORKING_AFFINE, WORKING_SHAPE, mni_to_native, is_label)


def from_working(
    array: np.ndarray, affine: np.ndarray, shape: tuple[int, int, int], mni_to_native: np.ndarray, is_label: bool = False
) -> np.ndarray:
    """Working-grid array back onto a native grid (`affine`, `shape`): the inverse of `to_working`."""
    return resample(array, WORKING_AFFINE, affine, shape, np.linalg.inv(mni_to_native), is_label)
