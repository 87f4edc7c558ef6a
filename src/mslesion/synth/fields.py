"""Smooth random fields and spatial transforms: bias fields, tissue texture, deformations, misregistration.

Smooth fields are sums of low-frequency cosines with random weights, evaluated as three
small matrix products (separable), so a field over a whole 1 mm brain costs tens of
milliseconds: no large Gaussian filter, no spline zoom.
"""

from __future__ import annotations

import math

import numpy as np


def _cosine_basis(n: int, spacing_mm: float, wavelength_mm: float) -> np.ndarray:
    """(n, K) cosines along one axis with wavelengths down to `wavelength_mm`; K >= 2."""
    length = n * spacing_mm
    k_max = max(2, int(math.ceil(2.0 * length / wavelength_mm)) + 1)
    x = (np.arange(n) + 0.5) / n
    freqs = np.arange(k_max)
    return np.cos(np.pi * np.outer(x, freqs)).astype(np.float32)


def smooth_field(shape: tuple[int, int, int], spacing_mm: float, wavelength_mm: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-SD random field whose shortest wavelength is about `wavelength_mm`.

    Coefficients fall off as a Gaussian of frequency, so the field looks like smoothed
    noise, without ever filtering a full volume.
    """
    bases = [_cosine_basis(n, spacing_mm, wavelength_mm) for n in shape]
    ks = [b.shape[1] for b in bases]
    kx, ky, kz = np.meshgrid(*(np.arange(k, dtype=np.float32) / max(k - 1, 1) for k in ks), indexing="ij")
    weight = np.exp(-2.0 * (kx**2 + ky**2 + kz**2))
    weight[0, 0, 0] = 0.0  # zero mean
    coef = (rng.standard_normal(ks) * weight).astype(np.float32)
    bx, by, bz = bases
    partial = np.matmul(np.matmul(by[None, :, :], coef), bz.T)  # (Kx, Ny, Nz)
    field = (bx @ partial.reshape(ks[0], -1)).reshape(shape)
    sd = float(field[:: max(1, shape[0] // 32), :: max(1, shape[1] // 32), :: max(1, shape[2] // 32)].std())
    return field / np.float32(sd if sd > 0 else 1.0)


def random_displacement(
    shape: tuple[int, int, int],
    spacing_mm: float,
    rng: np.random.Generator,
    amplitude_mm: float = 2.0,
    wavelength_mm: float = 60.0,
    scale_sd: float = 0.03,
) -> np.ndarray:
    """A smooth displacement field (3, *shape) in voxels: low-frequency warp plus a random per-axis scaling.

    `amplitude_mm` is the SD of each component of the warp; the scaling (SD `scale_sd`)
    about the grid centre mimics head-size differences.
    """
    disp = np.empty((3, *shape), dtype=np.float32)
    scales = 1.0 + np.clip(rng.normal(0.0, scale_sd, 3), -2 * scale_sd, 2 * scale_sd)
    for a in range(3):
        field = smooth_field(shape, spacing_mm, wavelength_mm, rng) * np.float32(amplitude_mm / spacing_mm)
        centre = (shape[a] - 1) / 2.0
        ramp = ((np.arange(shape[a], dtype=np.float32) - centre) * np.float32(1.0 / scales[a] - 1.0)).reshape(
            [-1 if b == a else 1 for b in range(3)]
        )
        disp[a] = field + ramp
    return disp


def warp(array: np.ndarray, displacement: np.ndarray | None, order: int = 1) -> np.ndarray:
    """Sample `array` at (voxel + displacement): pull-back warp; zeros outside; float32 for order 1."""
    if displacement is None:
        return array
    from scipy import ndimage as ndi

    coords = displacement + np.indices(array.shape, dtype=np.float32)
    out_dtype = np.float32 if order > 0 else array.dtype
    return ndi.map_coordinates(array, coords, order=order, mode="constant", cval=0.0, output=out_dtype)


def warp_labels(labels: np.ndarray, weight: np.ndarray, displacement: np.ndarray, points: tuple[np.ndarray, ...]) -> np.ndarray:
    """Labels pulled back to the given voxels: of the 8 source voxels around each point, the one with most `weight`."""
    coords = np.stack([displacement[a][points] + points[a] for a in range(3)])
    base = np.floor(coords).astype(np.int64)
    hi = np.asarray(labels.shape)[:, None] - 1
    best_w = np.full(coords.shape[1], -1.0, dtype=np.float32)
    best = np.zeros(coords.shape[1], dtype=labels.dtype)
    for corner in np.ndindex(2, 2, 2):
        idx = base + np.asarray(corner)[:, None]
        inside = np.all((idx >= 0) & (idx <= hi), axis=0)
        idx = tuple(np.clip(idx, 0, hi))
        w = np.where(inside, weight[idx], -1.0)
        better = w > best_w
        best_w[better] = w[better]
        best[better] = labels[idx][better]
    return best


def rotation_matrix(angles_rad: np.ndarray) -> np.ndarray:
    """Rotation about x, then y, then z by the given angles (radians)."""
    ax, ay, az = angles_rad
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def random_rigid(rng: np.random.Generator, max_rotation_deg: float, max_translation_mm: float) -> dict[str, list[float]]:
    """A small random rigid motion: rotations (degrees) and translations (mm), each uniform in +-max."""
    return {
        "rotation_deg": [float(v) for v in rng.uniform(-max_rotation_deg, max_rotation_deg, 3)],
        "translation_mm": [float(v) for v in rng.uniform(-max_translation_mm, max_translation_mm, 3)],
    }


def apply_rigid(array: np.ndarray, rigid: dict[str, list[float]], spacing_mm: float, order: int = 1) -> np.ndarray:
    """Move an image by a rigid motion about the grid centre (linear interpolation, zeros outside)."""
    from scipy import ndimage as ndi

    rot = rotation_matrix(np.radians(rigid["rotation_deg"]))
    shift = np.asarray(rigid["translation_mm"], dtype=float) / spacing_mm
    centre = (np.asarray(array.shape, dtype=float) - 1.0) / 2.0
    # output voxel o samples input at R^T (o - c - t) + c
    inv = rot.T
    offset = centre - inv @ (centre + shift)
    out_dtype = np.float32 if order > 0 else array.dtype
    return ndi.affine_transform(array, inv, offset, order=order, mode="constant", cval=0.0, output=out_dtype)
