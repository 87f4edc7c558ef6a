"""Fixtures for the phantom tests: small (2 mm) seeded phantoms built once per session, and measuring helpers."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from mslesion.synth import Phantom, make_sites, make_subject

SEED = 7


def _nawm(phantom: Phantom, margin_mm: float = 4.0) -> np.ndarray:
    """Normal-appearing white matter: WM probability > 0.9, more than `margin_mm` from any lesion."""
    spacing = float(np.sqrt((phantom.affine[:3, :3] ** 2).sum(axis=0))[0])
    lesion = phantom.lesion > 0
    if not lesion.any():
        return phantom.tissues["WM"] > 0.9
    far = ndi.distance_transform_edt(~lesion, sampling=spacing) > margin_mm
    return (phantom.tissues["WM"] > 0.9) & far


def _noise_level(image: np.ndarray, region: np.ndarray) -> float:
    """Robust noise SD in `region`, relative to its median: MAD of the residual after a 3-voxel mean."""
    img = image.astype(np.float64)
    core = ndi.binary_erosion(region, iterations=1)
    residual = (img - ndi.uniform_filter(img, 3))[core]
    mad = np.median(np.abs(residual - np.median(residual)))
    return float(1.4826 * mad / np.median(img[region]))


@pytest.fixture(scope="session")
def nawm() -> Callable[..., np.ndarray]:
    return _nawm


@pytest.fixture(scope="session")
def noise_level() -> Callable[[np.ndarray, np.ndarray], float]:
    return _noise_level


@pytest.fixture(scope="session")
def lesion_masks_dir(shared_data: Path) -> Path:
    """The real lesion masks (shared data); missing ones skip, or fail under CI=true."""
    folder = shared_data / "lesjak-mni-masks"
    if not folder.is_dir() or not any(folder.glob("*.nii*")):
        message = f"real lesion masks not found in {folder} (set MSLESION_SHARED_DATA)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return folder


@pytest.fixture(scope="session")
def sites():
    return make_sites(3, SEED)


@pytest.fixture(scope="session")
def phantom(sites) -> Phantom:
    """A 2 mm subject with a fixed, moderate lesion load."""
    return make_subject(SEED, sites[0], resolution_mm=2, n_lesions=40)
