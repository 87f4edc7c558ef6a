"""Fixtures for the preprocessing tests: a small seeded head phantom (brain, CSF, skull, scalp)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest


def _ellipsoid(
    shape: tuple[int, int, int], spacing: tuple[float, ...], radii_mm: tuple[float, ...], centre_shift_mm=(0.0, 0.0, 0.0)
) -> np.ndarray:
    grids = np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing)], indexing="ij")
    r2 = sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre_shift_mm, radii_mm))
    return r2 <= 1.0


def make_head(
    rng: np.random.Generator, shape: tuple[int, int, int] = (48, 56, 48), spacing: tuple[float, float, float] = (2.0, 2.0, 2.0)
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(FLAIR-like image, brain mask, RAS affine): WM 100, GM 125, ventricles 30, CSF 25, bone 10, scalp 150."""
    brain_r = (30.0, 40.0, 30.0)
    brain = _ellipsoid(shape, spacing, brain_r)
    wm = _ellipsoid(shape, spacing, tuple(0.75 * r for r in brain_r))
    vent = _ellipsoid(shape, spacing, (4.0, 12.0, 5.0), (-6.0, 0.0, 2.0)) | _ellipsoid(shape, spacing, (4.0, 12.0, 5.0), (6.0, 0.0, 2.0))
    csf = _ellipsoid(shape, spacing, tuple(r + 4 for r in brain_r))
    bone = _ellipsoid(shape, spacing, tuple(r + 9 for r in brain_r))
    scalp = _ellipsoid(shape, spacing, tuple(r + 14 for r in brain_r))
    image = np.zeros(shape, np.float32)
    image[scalp] = 150.0
    image[bone] = 10.0
    image[csf] = 25.0
    image[brain] = 125.0
    image[wm] = 100.0
    image[vent] = 30.0
    image += rng.normal(0.0, 3.0, shape).astype(np.float32)
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = -(np.asarray(shape) - 1) / 2 * np.asarray(spacing)
    return np.clip(image, 0, None), brain, affine


@pytest.fixture
def head(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return make_head(rng)


@pytest.fixture
def head_maker() -> Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]]:
    return make_head


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    return 2.0 * float((a & b).sum()) / max(float(a.sum() + b.sum()), 1.0)


@pytest.fixture
def dice_fn() -> Callable[[np.ndarray, np.ndarray], float]:
    return dice
