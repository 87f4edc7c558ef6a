"""The bridge between nibabel (arrays + RAS affines) and SimpleITK (images + LPS geometry).

The toolkit keeps geometry as NumPy arrays with 4x4 voxel-to-world affines in RAS mm
(nibabel's convention). SimpleITK registers and filters in LPS mm with (z, y, x) arrays.
Every conversion between the two lives here, so the sign flips are written once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import SimpleITK as sitk
from nibabel.affines import voxel_sizes

# RAS <-> LPS: negate x and y (the same matrix both ways).
RAS_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
DEFAULT_THREADS = 2


@contextlib.contextmanager
def itk_threads(n: int = DEFAULT_THREADS) -> Iterator[None]:
    """Run SimpleITK filters on `n` threads, restoring the global setting afterwards."""
    before = sitk.ProcessObject_GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject_SetGlobalDefaultNumberOfThreads(int(n))
    try:
        yield
    finally:
        sitk.ProcessObject_SetGlobalDefaultNumberOfThreads(before)


def array_to_sitk(array: np.ndarray, dtype: type = np.float32) -> sitk.Image:
    """A SimpleITK image of `array` (i, j, k order) on SimpleITK's default grid (1 mm voxels, origin 0, no rotation).

    For filters that work in voxels (morphology with a radius in voxels); `to_sitk` adds the geometry.
    """
    return sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(array, dtype=dtype).transpose(2, 1, 0)))


def to_sitk(array: np.ndarray, affine: np.ndarray, dtype: type = np.float32) -> sitk.Image:
    """A SimpleITK image of `array` (i, j, k order) on the grid of the RAS `affine`.

    SimpleITK cannot hold shear; affines from scanners have none (orthogonal columns).
    """
    affine = np.asarray(affine, dtype=float)
    image = array_to_sitk(array, dtype)
    lps = RAS_LPS @ affine
    spacing = voxel_sizes(lps)
    direction = lps[:3, :3] / spacing
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetDirection(tuple(float(d) for d in direction.ravel()))
    image.SetOrigin(tuple(float(o) for o in lps[:3, 3]))
    return image


def from_sitk(image: sitk.Image) -> np.ndarray:
    """The voxels of a SimpleITK image in (i, j, k) order."""
    return sitk.GetArrayFromImage(image).transpose(2, 1, 0)


def sitk_affine(image: sitk.Image) -> np.ndarray:
    """The RAS voxel-to-world affine of a SimpleITK image."""
    lps = np.eye(4)
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    lps[:3, :3] = direction * np.asarray(image.GetSpacing(), dtype=float)
    lps[:3, 3] = image.GetOrigin()
    return RAS_LPS @ lps


def transform_to_ras(transform: sitk.Transform) -> np.ndarray:
    """4x4 RAS matrix of a linear ITK transform (it maps fixed-space points to moving-space points)."""
    if transform.GetName() == "CompositeTransform":
        composite = sitk.CompositeTransform(transform)
        out = np.eye(4)
        # ITK applies the last-added transform first: T(p) = T_0(T_1(...T_n(p))).
        for i in range(composite.GetNumberOfTransforms()):
            out = out @ transform_to_ras(composite.GetNthTransform(i))
        return out
    if transform.GetName() == "TranslationTransform":
        lps = np.eye(4)
        lps[:3, 3] = transform.GetParameters()
        return RAS_LPS @ lps @ RAS_LPS
    tx = _cast(transform)
    matrix = np.asarray(tx.GetMatrix(), dtype=float).reshape(3, 3)
    center = np.asarray(tx.GetCenter(), dtype=float)
    translation = np.asarray(tx.GetTranslation(), dtype=float)
    lps = np.eye(4)
    lps[:3, :3] = matrix
    lps[:3, 3] = center + translation - matrix @ center
    return RAS_LPS @ lps @ RAS_LPS


def ras_to_transform(matrix: np.ndarray) -> sitk.AffineTransform:
    """An ITK AffineTransform (LPS) equal to the 4x4 RAS matrix (fixed point -> moving point)."""
    lps = RAS_LPS @ np.asarray(matrix, dtype=float) @ RAS_LPS
    tx = sitk.AffineTransform(3)
    tx.SetMatrix(tuple(float(v) for v in lps[:3, :3].ravel()))
    tx.SetTranslation(tuple(float(v) for v in lps[:3, 3]))
    return tx


_CLASSES = {
    "Euler3DTransform": sitk.Euler3DTransform,
    "VersorRigid3DTransform": sitk.VersorRigid3DTransform,
    "Similarity3DTransform": sitk.Similarity3DTransform,
    "ScaleSkewVersor3DTransform": sitk.ScaleSkewVersor3DTransform,
    "AffineTransform": sitk.AffineTransform,
}


def _cast(transform: sitk.Transform) -> Any:  # one of _CLASSES, all with GetMatrix/GetCenter/GetTranslation
    """The concrete SimpleITK class of a generic transform handle (so its matrix can be read)."""
    cls = _CLASSES.get(transform.GetName())
    if cls is None:
        raise ValueError(f"unsupported transform type {transform.GetName()}")
    return cls(transform)
