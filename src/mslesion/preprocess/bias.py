"""N4 bias-field correction (SimpleITK's N4BiasFieldCorrectionImageFilter), fast enough for 2 cores.

The field is smooth, so it is fitted on a copy shrunk to about `shrink_mm` voxels (thick
slices are not shrunk through-plane) and then evaluated at full resolution; this is the
speed-up N4's authors recommend and costs nothing in accuracy for a field this smooth.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from mslesion.space.sitkio import from_sitk, to_sitk

DEFAULT_SHRINK_MM = 4.0
DEFAULT_ITERATIONS = (20, 20, 10)


def shrink_factors(spacing: tuple[float, ...], target_mm: float) -> list[int]:
    """Integer shrink per axis bringing the voxel size near `target_mm` (never below 1)."""
    return [max(1, int(round(target_mm / s))) for s in spacing]


def head_mask(image: sitk.Image) -> sitk.Image:
    """Foreground (head) of a raw scan by Otsu's threshold: where N4 fits the field."""
    return sitk.OtsuThreshold(sitk.Cast(image, sitk.sitkFloat32), 0, 1, 128)


def n4_correct(
    image: sitk.Image,
    mask: sitk.Image | None = None,
    shrink_mm: float = DEFAULT_SHRINK_MM,
    iterations: tuple[int, ...] = DEFAULT_ITERATIONS,
) -> tuple[sitk.Image, sitk.Image]:
    """(corrected image, multiplicative bias field), both float32 on the input grid."""
    image = sitk.Cast(image, sitk.sitkFloat32)
    # N4 works in log space: clamp at a small positive floor (raw scans have exact zeros).
    image = sitk.Clamp(image, sitk.sitkFloat32, 1e-3, 1e30)
    mask = head_mask(image) if mask is None else sitk.Cast(mask, sitk.sitkUInt8)
    factors = shrink_factors(image.GetSpacing(), shrink_mm)
    small, small_mask = sitk.Shrink(image, factors), sitk.Shrink(mask, factors)
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations([int(i) for i in iterations])
    n4.SetConvergenceThreshold(1e-4)
    n4.Execute(small, small_mask)
    bias = sitk.Cast(sitk.Exp(n4.GetLogBiasFieldAsImage(image)), sitk.sitkFloat32)
    return sitk.Cast(image / bias, sitk.sitkFloat32), bias


def n4_array(array: np.ndarray, affine: np.ndarray, mask: np.ndarray | None = None, shrink_mm: float = DEFAULT_SHRINK_MM) -> np.ndarray:
    """NumPy form of `n4_correct`: the corrected image (float32) for an array with a RAS affine."""
    image = to_sitk(array, affine)
    sitk_mask = None if mask is None else to_sitk(np.asarray(mask, np.uint8), affine, dtype=np.uint8)
    corrected, _ = n4_correct(image, sitk_mask, shrink_mm=shrink_mm)
    return from_sitk(corrected).astype(np.float32)
