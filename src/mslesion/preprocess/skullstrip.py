"""Brain extraction without learned weights: the MNI152 brain mask carried onto the scan, refined by intensity.

1. The template's brain mask is resampled through the MNI registration onto the scan's
   grid (a prior with the right shape and position, even on 4 mm slices).
2. Near the prior's edge, voxels darker than a fraction of the brain's median intensity
   (CSF outside the brain, skull, air) are dropped; an opening in mm cuts thin bridges to
   the scalp; the largest component is kept; the deep core of the prior (ventricles,
   which are dark in FLAIR and T1) is always kept; holes are filled in 3D and per slice.

Morphology radii are given in mm and turned into per-axis voxel radii, so a 2 mm opening
does not reach across a 4 mm slice.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from mslesion.errors import InputError
from mslesion.space.boxes import bounding_box

DARK_FRACTION = 0.7
EDGE_MM = 3.0
OPEN_MM = 2.0
CORE_MM = 8.0


def _radius(radius_mm: float, spacing: tuple[float, ...]) -> list[int]:
    """Kernel radius in voxels per axis for a ball of `radius_mm` (0 along axes thicker than it)."""
    return [int(round(radius_mm / s)) for s in spacing]


def _morph(mask: np.ndarray, radius_mm: float, spacing: tuple[float, ...], dilate: bool) -> np.ndarray:
    """Binary dilation/erosion by an ellipsoid of `radius_mm` (SimpleITK, multi-threaded)."""
    import SimpleITK as sitk

    from mslesion.space.sitkio import array_to_sitk, from_sitk

    radius = _radius(radius_mm, spacing)
    if radius_mm <= 0 or not any(radius):
        return mask.astype(bool).copy()
    image = array_to_sitk(mask.astype(np.uint8), np.uint8)
    op = sitk.BinaryDilate if dilate else sitk.BinaryErode
    # SimpleITK's (x, y, z) index order is the array's (i, j, k) (array_to_sitk transposes).
    out = op(image, radius, sitk.sitkBall, 0, 1)
    return from_sitk(out).astype(bool)


def dilate_mm(mask: np.ndarray, radius_mm: float, spacing: tuple[float, ...]) -> np.ndarray:
    """Voxels within about `radius_mm` of the mask (ellipsoidal kernel in voxels, from mm)."""
    return _morph(mask, radius_mm, spacing, dilate=True)


def erode_mm(mask: np.ndarray, radius_mm: float, spacing: tuple[float, ...]) -> np.ndarray:
    """Mask voxels farther than about `radius_mm` from the background."""
    return _morph(mask, radius_mm, spacing, dilate=False)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 6-connected component (empty stays empty)."""
    labels, n = ndi.label(mask)
    if n <= 1:
        return mask.astype(bool)
    sizes = np.bincount(labels.ravel())[1:]
    return labels == (1 + int(np.argmax(sizes)))


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Holes filled in 3D and then in every axial slice (thick-slice ventricles open to one side)."""
    out = ndi.binary_fill_holes(mask)
    for k in range(out.shape[2]):
        out[:, :, k] = ndi.binary_fill_holes(out[:, :, k])
    return out


def refine_brain_mask(
    image: np.ndarray,
    prior: np.ndarray,
    spacing: tuple[float, ...],
    dark_fraction: float = DARK_FRACTION,
    edge_mm: float = EDGE_MM,
    open_mm: float = OPEN_MM,
    core_mm: float = CORE_MM,
) -> np.ndarray:
    """Brain mask from a template prior (bool, scan grid) and the bias-corrected image."""
    prior = np.asarray(prior, bool)
    out = np.zeros(prior.shape, bool)
    if not prior.any():
        return out
    margin = int(np.ceil((edge_mm + open_mm) / min(spacing))) + 2
    box = bounding_box(prior, margin)
    img, pri = image[box], prior[box]
    core = erode_mm(pri, core_mm, spacing)
    reference = img[core] if core.sum() > 100 else img[pri]
    threshold = dark_fraction * float(np.median(reference))
    candidate = dilate_mm(pri, edge_mm, spacing) & (img > threshold)
    candidate &= dilate_mm(erode_mm(candidate, open_mm, spacing), open_mm, spacing)
    candidate = largest_component(candidate) | core
    candidate = erode_mm(dilate_mm(candidate, open_mm, spacing), open_mm, spacing)  # closing
    out[box] = fill_holes(candidate)
    return out


def brain_mask_or_fail(mask: np.ndarray, voxel_volume_mm3: float, path: str | Path | None = None, min_ml: float = 100.0) -> np.ndarray:
    """Return `mask`, or raise a one-line InputError when it is empty or implausibly small."""
    volume_ml = float(mask.sum()) * voxel_volume_mm3 / 1000.0
    if volume_ml < min_ml:
        raise InputError(
            path,
            f"brain extraction found {volume_ml:.0f} mL of brain (less than {min_ml:.0f} mL): is this a brain MRI with the head in view?",
        )
    return mask
