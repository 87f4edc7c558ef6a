"""Linear registration with SimpleITK: rigid between contrasts and visits, affine to MNI152.

Both use Mattes mutual information (works across contrasts: FLAIR vs T1 vs template),
multi-resolution, random sampling of a fraction of the voxels (fast on 2 cores), and
return the transform as a 4x4 RAS matrix that maps a point of the FIXED image's space
to the matching point of the MOVING image (ITK's resampling convention). A registration
ITK cannot run (no overlap, empty images) raises InputError; a poor one is reported by
the normalised mutual information `nmi` so callers can warn.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import SimpleITK as sitk

from mslesion.errors import InputError
from mslesion.space.sitkio import from_sitk, ras_to_transform, transform_to_ras
from mslesion.space.templates import mni_brain_mask, mni_template

logger = logging.getLogger(__name__)

HISTOGRAM_BINS = 32
SAMPLING = 0.1
SEED = 42


class Init(StrEnum):
    """How the transform starts: scanner coordinates (same session) or image centres of mass."""

    IDENTITY = "identity"
    MOMENTS = "moments"


@dataclass(frozen=True)
class Registration:
    """A linear registration result: `matrix` maps fixed-space points to moving-space points (RAS mm)."""

    matrix: np.ndarray
    kind: str
    metric: float
    iterations: int
    stop: str

    def transform(self) -> sitk.AffineTransform:
        """The same mapping as an ITK transform (LPS), e.g. for sitk.Resample or WriteTransform."""
        return ras_to_transform(self.matrix)

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON record."""
        return {
            "kind": self.kind,
            "matrix_fixed_to_moving_ras": np.round(self.matrix, 8).tolist(),
            "mattes_mi": round(float(self.metric), 5),
            "iterations": self.iterations,
            "stop": self.stop,
            "converged": self.converged,
        }

    @property
    def converged(self) -> bool:
        """False when the optimiser stopped at its iteration limit rather than by a tolerance."""
        return "Maximum number of iterations" not in self.stop


def _initial(fixed: sitk.Image, moving: sitk.Image, kind: str, init: Init | np.ndarray) -> sitk.Transform:
    """The starting transform, of the class the optimiser will adjust."""
    base: sitk.Euler3DTransform | sitk.AffineTransform = sitk.Euler3DTransform() if kind == "rigid" else sitk.AffineTransform(3)
    if isinstance(init, np.ndarray):
        start = ras_to_transform(init)
        if kind != "rigid":
            return start
        base = _centred_identity(fixed, base)
        matrix, centre = np.asarray(start.GetMatrix()).reshape(3, 3), np.asarray(base.GetCenter())
        base.SetMatrix(start.GetMatrix())  # raises when the start is not a rotation
        # Same mapping about the new centre: M p + t0 = M (p - c) + c + t.
        base.SetTranslation(tuple(np.asarray(start.GetTranslation()) + matrix @ centre - centre))
        return base
    if Init(init) is Init.MOMENTS:
        return sitk.CenteredTransformInitializer(fixed, moving, base, sitk.CenteredTransformInitializerFilter.MOMENTS)
    return _centred_identity(fixed, base)


def _centred_identity(
    fixed: sitk.Image, base: sitk.Euler3DTransform | sitk.AffineTransform
) -> sitk.Euler3DTransform | sitk.AffineTransform:
    """Identity in scanner coordinates, rotating about the fixed image's centre (better-scaled steps)."""
    centre = fixed.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2.0 for n in fixed.GetSize()])
    base.SetCenter(centre)
    return base


def isotropic(image: sitk.Image, spacing_mm: float, is_label: bool = False) -> sitk.Image:
    """`image` on an isotropic grid of `spacing_mm` over the same field of view (smoothed first).

    ITK's registration pyramid shrinks every axis by the same factor, which ruins thick-slice
    scans (4 mm slices shrunk 4x are 16 mm); registering on an isotropic copy avoids that
    and makes the fixed image small, so each iteration is cheap.
    """
    old_spacing = np.asarray(image.GetSpacing(), dtype=float)
    size = [max(1, int(np.ceil(n * s / spacing_mm))) for n, s in zip(image.GetSize(), old_spacing)]
    if not is_label:
        sigma = [max(0.0, (spacing_mm**2 - s**2)) ** 0.5 / 2.355 for s in old_spacing]
        if max(sigma) > 0.1:
            image = sitk.SmoothingRecursiveGaussian(sitk.Cast(image, sitk.sitkFloat32), [max(s, 1e-3) for s in sigma])
    origin = image.TransformContinuousIndexToPhysicalPoint([(spacing_mm / s - 1) / 2 for s in old_spacing])
    interpolator = sitk.sitkNearestNeighbor if is_label else sitk.sitkLinear
    return sitk.Resample(
        image, size, sitk.Transform(), interpolator, origin, (spacing_mm,) * 3, image.GetDirection(), 0, image.GetPixelID()
    )


def register(
    fixed: sitk.Image,
    moving: sitk.Image,
    kind: str = "rigid",
    init: Init | np.ndarray = Init.IDENTITY,
    fixed_mask: sitk.Image | None = None,
    shrink: tuple[int, ...] = (2, 1),
    smooth_mm: tuple[float, ...] = (2.0, 0.0),
    max_iterations: int = 200,
    fixed_spacing_mm: float | None = 2.0,
    name: str = "image",
) -> Registration:
    """Register `moving` onto `fixed` (kind 'rigid' or 'affine') by Mattes mutual information.

    The fixed image (and mask) are first put on an isotropic `fixed_spacing_mm` grid (None:
    as given); the pyramid then shrinks that grid by `shrink` per level.
    """
    fixed = sitk.Cast(fixed, sitk.sitkFloat32)
    moving = sitk.Cast(moving, sitk.sitkFloat32)
    if fixed_spacing_mm is not None:
        fixed = isotropic(fixed, fixed_spacing_mm)
        if fixed_mask is not None:
            fixed_mask = isotropic(sitk.Cast(fixed_mask, sitk.sitkUInt8), fixed_spacing_mm, is_label=True)
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(HISTOGRAM_BINS)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(SAMPLING, SEED)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=2.0, minStep=1e-3, numberOfIterations=max_iterations, relaxationFactor=0.5, gradientMagnitudeTolerance=1e-4
    )
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel(list(shrink))
    method.SetSmoothingSigmasPerLevel(list(smooth_mm))
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    if fixed_mask is not None:
        method.SetMetricFixedMask(sitk.Cast(fixed_mask, sitk.sitkUInt8))
    try:
        transform = _initial(fixed, moving, kind, init)
        method.SetInitialTransform(transform, inPlace=True)
        method.Execute(fixed, moving)
    except RuntimeError as exc:
        reason = "the images do not overlap" if "outside" in str(exc) or "samples" in str(exc) else "ITK could not register them"
        raise InputError(None, f"{kind} registration of {name} failed: {reason}") from None
    matrix = transform_to_ras(transform)
    if not np.all(np.isfinite(matrix)):
        raise InputError(None, f"{kind} registration of {name} failed: it diverged")
    result = Registration(
        matrix, kind, float(method.GetMetricValue()), int(method.GetOptimizerIteration()), method.GetOptimizerStopConditionDescription()
    )
    logger.debug("%s registration of %s: MI %.3f after %d iterations", kind, name, result.metric, result.iterations)
    return result


def resample_onto(fixed: sitk.Image, moving: sitk.Image, matrix: np.ndarray, linear: bool = True) -> sitk.Image:
    """`moving` resampled onto the grid of `fixed` through a fixed->moving RAS matrix."""
    interpolator = sitk.sitkLinear if linear else sitk.sitkNearestNeighbor
    return sitk.Resample(sitk.Cast(moving, sitk.sitkFloat32), fixed, ras_to_transform(matrix), interpolator, 0.0, sitk.sitkFloat32)


def nmi(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None, bins: int = HISTOGRAM_BINS) -> float:
    """Studholme's normalised mutual information (H(A) + H(B)) / H(A, B) inside `mask`.

    1 means the intensities are unrelated, 2 identical; aligned brain scans of different
    contrasts score about 1.1-1.3 and misaligned ones fall towards 1. Returns NaN for an
    empty mask. Written by hand because SimpleITK exposes only the (unnormalised) Mattes
    metric value, whose scale depends on the images.
    """
    inside = np.ones(a.shape, bool) if mask is None else np.asarray(mask, bool)
    x, y = a[inside].astype(np.float64), b[inside].astype(np.float64)
    if x.size < 100:
        return float("nan")
    ranges = [np.percentile(x, [0.5, 99.5]), np.percentile(y, [0.5, 99.5])]
    joint, _, _ = np.histogram2d(x, y, bins=bins, range=ranges)
    p = joint / max(joint.sum(), 1.0)

    def entropy(q: np.ndarray) -> float:
        q = q[q > 0]
        return float(-(q * np.log(q)).sum())

    h_xy = entropy(p)
    return (entropy(p.sum(axis=1)) + entropy(p.sum(axis=0))) / h_xy if h_xy > 0 else float("nan")


def registration_nmi(fixed: sitk.Image, moving: sitk.Image, matrix: np.ndarray, fixed_mask: np.ndarray) -> float:
    """NMI between `fixed` and `moving` resampled through `matrix`, inside `fixed_mask` (fixed grid, i,j,k)."""
    warped = from_sitk(resample_onto(fixed, moving, matrix))
    return nmi(from_sitk(fixed), warped, fixed_mask)


@functools.lru_cache(maxsize=2)
def registration_target(spacing_mm: float = 2.0, mask_margin_mm: float = 8.0) -> tuple[sitk.Image, sitk.Image]:
    """(template, dilated brain mask) on an isotropic `spacing_mm` grid: the fixed pair of the MNI registration.

    Cached, because smoothing and resampling the 1 mm template costs more than the
    registration's first level.
    """
    template = isotropic(mni_template(), spacing_mm)
    brain = sitk.Cast(mni_brain_mask() > 0.5, sitk.sitkUInt8)
    radius = max(1, int(round(mask_margin_mm / spacing_mm)))
    mask = sitk.BinaryDilate(isotropic(brain, spacing_mm, is_label=True), [radius] * 3)
    return template, mask


def registration_brain(spacing_mm: float = 2.0) -> np.ndarray:
    """The template brain mask (bool, i/j/k order) on the `registration_target` grid, for QC."""
    return from_sitk(isotropic(sitk.Cast(mni_brain_mask() > 0.5, sitk.sitkUInt8), spacing_mm, is_label=True)) > 0
