"""Shared fixtures for the evaluation tests: masks from voxel lists and seeded random lesion masks."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pytest
from scipy import ndimage

Voxel = tuple[int, int, int]


def _mask(shape: tuple[int, int, int], voxels: Iterable[Voxel]) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    for v in voxels:
        m[v] = True
    return m


@pytest.fixture
def mask() -> Callable[..., np.ndarray]:
    """mask(shape, voxels) -> boolean array with exactly those voxels set."""
    return _mask


def _blob_pair(seed: int, shape: tuple[int, int, int] = (40, 40, 40)) -> tuple[np.ndarray, np.ndarray]:
    """(pred, ref) lesion-like masks: thresholded smoothed noise, pred a perturbed copy of ref."""
    rng = np.random.default_rng(seed)
    base = ndimage.gaussian_filter(rng.standard_normal(shape), 2.0)
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), 1.5)
    thr = np.quantile(base, 0.96 - 0.004 * (seed % 5))  # lesion load varies with the seed
    ref = base > thr
    pred = (0.8 * base + 0.35 * noise * base.std() / noise.std()) > thr * 0.85
    return pred, ref


@pytest.fixture
def blob_pair() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    """blob_pair(seed, shape=(40, 40, 40)) -> (pred, ref), several lesions each, partly overlapping."""
    return _blob_pair
