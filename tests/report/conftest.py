"""Fixtures for report, location and cohort tests: a tiny random-weight model and small scans."""

from __future__ import annotations

import locale
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    """A random-weight 2-contrast U-Net (as tests/test_segment.py): fast, outputs on any grid."""
    import torch

    from mslesion.models.registry import build_network
    from mslesion.models.store import ModelCard, save_model

    torch.manual_seed(0)
    params = {"features": [4, 4, 8, 8, 16, 4]}
    net = build_network("unet", 2, params)
    card = ModelCard(
        architecture="unet", contrasts=["FLAIR", "T1"], params=params, patch_size=(32, 32, 32), threshold=0.5, min_lesion_mm3=3.0
    )
    return save_model(net.state_dict(), card, tmp_path / "model")


@pytest.fixture
def small_scan() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A skull-stripped 40x44x36 FLAIR-like ellipsoid with two bright blobs: (image, lesion mask, affine)."""
    rng = np.random.default_rng(5)
    affine = np.array([[-1.0, 0.05, 0, 80], [0, 1.0, 0, -100], [0, 0, 1.2, -60], [0, 0, 0, 1]])
    grid = np.indices((40, 44, 36)).transpose(1, 2, 3, 0)
    brain = np.linalg.norm((grid - [20, 22, 18]) / [17, 19, 15], axis=-1) < 1
    lesion = (np.linalg.norm(grid - [14, 20, 18], axis=-1) < 3) | (np.linalg.norm(grid - [26, 26, 20], axis=-1) < 2)
    flair = ((rng.normal(100, 5, brain.shape) + 80 * lesion) * brain).astype(np.float32)
    return flair, lesion.astype(np.uint8), affine


def _write_series(
    folder: Path,
    array: np.ndarray,
    spacing: tuple[float, float, float],
    origin: tuple[float, float, float],
    direction: np.ndarray,
    uid: str,
    description: str,
) -> None:
    """Write a (z, y, x) int16 array as a DICOM series, one file per slice (SimpleITK's documented recipe)."""
    import SimpleITK as sitk

    saved = locale.setlocale(locale.LC_ALL)
    folder.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(array.astype(np.int16))
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction.ravel().tolist())
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    common = {
        "0010|0010": "DOE^JANE",
        "0010|0020": "PID-12345",
        "0010|0030": "19700101",
        "0020|000d": uid + ".1",
        "0020|000e": uid,
        "0008|103e": description,
        "0008|0060": "MR",
        "0020|0037": "\\".join(map(str, direction[:, 0].tolist() + direction[:, 1].tolist())),
    }
    for k in range(image.GetDepth()):
        plane = image[:, :, k]
        for tag, value in common.items():
            plane.SetMetaData(tag, value)
        plane.SetMetaData("0020|0032", "\\".join(map(str, image.TransformIndexToPhysicalPoint((0, 0, k)))))
        plane.SetMetaData("0020|0013", str(k + 1))
        plane.SetMetaData("0018|0050", str(spacing[2]))
        writer.SetFileName(str(folder / f"{uid[-4:]}_{k:03d}.dcm"))
        writer.Execute(plane)
    locale.setlocale(locale.LC_ALL, saved)  # GDCM's writer switches the process to the "C" locale


@pytest.fixture
def write_series():
    """`_write_series`: a (z, y, x) array as a one-file-per-slice DICOM series with identifiers in its headers."""
    return _write_series
