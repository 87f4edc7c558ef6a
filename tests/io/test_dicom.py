"""DICOM series folders: geometry survives the round trip, several series are refused, no identifiers leak."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mslesion.errors import InputError
from mslesion.io.volume import load_volume


def _oblique() -> np.ndarray:
    a = np.deg2rad(10)
    return np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])


def test_series_round_trip_keeps_geometry_and_no_identifiers(tmp_path: Path, rng: np.random.Generator, write_series) -> None:
    import SimpleITK as sitk

    array = rng.integers(0, 1000, (6, 12, 10))
    write_series(tmp_path / "flair", array, (0.8, 0.9, 3.0), (10.0, -20.0, 30.0), _oblique(), "1.2.826.0.1.3680043.2.1125.1", "AX FLAIR")
    vol = load_volume(tmp_path / "flair")
    assert vol.shape == (10, 12, 6)
    np.testing.assert_array_equal(vol.array, array.transpose(2, 1, 0))
    # Expected geometry straight from SimpleITK's reader, converted to RAS by hand.
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path / "flair")))
    ref = reader.Execute()
    lps = np.eye(4)
    lps[:3, :3] = np.asarray(ref.GetDirection()).reshape(3, 3) * ref.GetSpacing()
    lps[:3, 3] = ref.GetOrigin()
    np.testing.assert_allclose(vol.affine, np.diag([-1, -1, 1, 1]) @ lps, atol=1e-3)
    np.testing.assert_allclose(vol.spacing, (0.8, 0.9, 3.0), atol=1e-3)
    np.testing.assert_allclose(vol.affine[:3, 3], [-10.0, 20.0, 30.0], atol=1e-3)
    header_text = bytes(vol.header.binaryblock)
    assert b"DOE" not in header_text and b"PID-12345" not in header_text


def test_folder_with_two_series_is_refused(tmp_path: Path, rng: np.random.Generator, write_series) -> None:
    folder = tmp_path / "study"
    write_series(folder, rng.integers(0, 9, (3, 4, 5)), (1, 1, 1), (0, 0, 0), np.eye(3), "1.2.826.0.1.3680043.2.1125.7", "AX FLAIR")
    write_series(folder, rng.integers(0, 9, (3, 4, 5)), (1, 1, 1), (0, 0, 0), np.eye(3), "1.2.826.0.1.3680043.2.1125.8", "SAG T1")
    with pytest.raises(InputError) as err:
        load_volume(folder)
    message = str(err.value)
    assert "2 DICOM series" in message and "AX FLAIR" in message and "SAG T1" in message and "\n" not in message
    assert "DOE" not in message


def test_folder_without_dicom_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="without a DICOM series"):
        load_volume(tmp_path / "empty")


def test_series_is_checked_at_the_door_like_nifti(tmp_path: Path, rng: np.random.Generator, write_series) -> None:
    write_series(tmp_path / "thick", rng.integers(0, 9, (4, 5, 6)), (1, 1, 30), (0, 0, 0), np.eye(3), "1.2.826.0.1.3680043.2.1125.9", "AX")
    with pytest.raises(InputError, match="voxel size .* is outside") as err:
        load_volume(tmp_path / "thick")
    assert str(tmp_path / "thick") in str(err.value)
    write_series(tmp_path / "ok", rng.integers(0, 9, (4, 5, 6)), (1, 1, 12), (0, 0, 0), np.eye(3), "1.2.826.0.1.3680043.2.1125.10", "AX")
    assert "unusual" in load_volume(tmp_path / "ok").warnings[0]
