"""DICOM series with a missing or duplicated slice: refused in one line naming the folder, exit 2, nothing written.

ITK stacks the files it is given as if they were evenly spaced, so a missing slice would shrink
every volume along the slice normal; the reader checks each header's position first.
"""

from __future__ import annotations

import locale
import shutil
from pathlib import Path

import numpy as np
import pytest

from mslesion.errors import InputError
from mslesion.io import load_volume

SERIES_UID = "1.2.826.0.1.3680043.2.1125.18"


def _oblique(degrees: float = 12.0) -> np.ndarray:
    a = np.deg2rad(degrees)
    return np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])


def _write_series(folder: Path, array: np.ndarray, spacing: tuple[float, float, float], direction: np.ndarray) -> list[Path]:
    """A (z, y, x) array as one int16 DICOM file per slice, each with its own ImagePositionPatient."""
    import SimpleITK as sitk

    saved = locale.setlocale(locale.LC_ALL)
    folder.mkdir(parents=True)
    image = sitk.GetImageFromArray(array.astype(np.int16))
    image.SetSpacing(spacing)
    image.SetOrigin((-12.0, 30.0, 5.0))
    image.SetDirection(direction.ravel().tolist())
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    orientation = "\\".join(f"{v:.6f}" for v in direction[:, 0].tolist() + direction[:, 1].tolist())
    files = []
    for k in range(image.GetDepth()):
        plane = image[:, :, k]
        for tag, value in {
            "0020|000d": SERIES_UID + ".1",
            "0020|000e": SERIES_UID,
            "0008|0060": "MR",
            "0020|0037": orientation,
            "0020|0032": "\\".join(f"{v:.4f}" for v in image.TransformIndexToPhysicalPoint((0, 0, k))),
            "0020|0013": str(k + 1),
            "0008|0018": f"{SERIES_UID}.2.{k + 1}",
        }.items():
            plane.SetMetaData(tag, value)
        files.append(folder / f"slice_{k:03d}.dcm")
        writer.SetFileName(str(files[-1]))
        writer.Execute(plane)
    locale.setlocale(locale.LC_ALL, saved)  # GDCM's writer switches the process to the "C" locale
    return files


@pytest.fixture
def series(tmp_path: Path) -> tuple[Path, list[Path]]:
    """A 24-slice oblique series of 24x20 slices, 0.9 x 0.8 mm pixels, 2.5 mm apart: (folder, its files in slice order)."""
    grid = np.indices((24, 20, 24)).transpose(1, 2, 3, 0)
    head = np.linalg.norm((grid - [11.5, 9.5, 11.5]) / [11, 9, 11], axis=-1) < 1
    array = np.random.default_rng(0).normal(400, 20, head.shape) * head
    folder = tmp_path / "dicom_flair"
    return folder, _write_series(folder, array, (0.9, 0.8, 2.5), _oblique())


def test_evenly_spaced_series_loads_with_its_spacing(series: tuple[Path, list[Path]]) -> None:
    folder, _ = series
    volume = load_volume(folder)
    assert volume.shape == (24, 20, 24) and volume.warnings == []
    np.testing.assert_allclose(volume.spacing, (0.9, 0.8, 2.5), atol=1e-3)


def test_missing_slice_is_refused(series: tuple[Path, list[Path]], tmp_path: Path, tiny_model: Path, refused) -> None:
    folder, files = series
    files[10].unlink()
    out = tmp_path / "out"
    refused(
        ["segment", "--flair", folder, "--out", out, "--model", tiny_model],
        folder,
        message="DICOM slices are not evenly spaced (gaps 2.50 to 5.00 mm along the slice normal: missing or duplicated slices?)",
    )
    assert not out.exists()


def test_duplicated_slice_is_refused(series: tuple[Path, list[Path]], tmp_path: Path, tiny_model: Path, refused) -> None:
    folder, files = series
    shutil.copyfile(files[7], folder / "slice_007_again.dcm")
    out = tmp_path / "out"
    refused(
        ["segment", "--flair", folder, "--out", out, "--model", tiny_model],
        folder,
        message="DICOM slices are not evenly spaced (gaps 0.00 to 2.50 mm",
    )
    assert not out.exists()


def test_slices_of_two_orientations_are_refused(series: tuple[Path, list[Path]], tmp_path: Path) -> None:
    folder, _ = series
    _write_series(tmp_path / "tilted", np.ones((3, 20, 24)), (0.9, 0.8, 2.5), _oblique(40.0))
    shutil.copyfile(tmp_path / "tilted" / "slice_001.dcm", folder / "tilted.dcm")  # same series UID, another plane
    with pytest.raises(InputError, match="different orientations") as err:
        load_volume(folder)
    assert str(folder) in str(err.value)
