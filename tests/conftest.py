"""Shared fixtures: tiny seeded volumes on disk, and the real data location."""

from __future__ import annotations

import locale
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage


def write_nifti(path: Path, array: np.ndarray, affine: np.ndarray | None = None) -> Path:
    """Write a test image with nibabel directly (independent of the code under test)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, np.eye(4) if affine is None else affine), str(path))
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def tiny_case_dir(tmp_path: Path, rng: np.random.Generator) -> Path:
    """A 10x20x30 two-contrast case with a lesion and a brain mask, 1 x 1.5 x 2 mm voxels."""
    affine = np.diag([1.0, 1.5, 2.0, 1.0])
    flair = rng.normal(100, 10, (10, 20, 30)).astype(np.float32)
    lesion = np.zeros((10, 20, 30), np.uint8)
    lesion[3:6, 5:9, 10:14] = 1
    for name, arr in {"FLAIR": flair, "T1": flair[::-1].copy(), "lesion": lesion, "brain": np.ones_like(lesion)}.items():
        write_nifti(tmp_path / "case01" / f"{name}.nii.gz", arr, affine)
    return tmp_path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data folder; missing data fails under CI=true (it must be there) and skips elsewhere."""
    root = Path(os.environ.get("MSLESION_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    if not (root / "lesjak-mni").is_dir():
        message = f"real data not found at {root} (set MSLESION_SHARED_DATA)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return root


@pytest.fixture
def nifti_writer():
    """The `write_nifti` helper, as a fixture (test modules do not import conftest)."""
    return write_nifti


@pytest.fixture
def tiny_dataset(tmp_path: Path, nifti_writer) -> Path:
    """Six 40^3 cases on two sites (A: c0-c2, B: c3-c5) with a manifest: bright FLAIR blobs are the lesions."""
    rng = np.random.default_rng(0)
    rows = ["case_id,site,FLAIR,T1,lesion"]
    grid = np.indices((40, 40, 40)).transpose(1, 2, 3, 0)
    for i in range(6):
        lesion = np.zeros((40, 40, 40), np.uint8)
        for _ in range(3):
            c = rng.integers(10, 30, 3)
            lesion[np.linalg.norm(grid - c, axis=-1) < rng.uniform(2, 4)] = 1
        brain = np.linalg.norm(grid - 20, axis=-1) < 18
        flair = (rng.normal(100, 5, lesion.shape) + 60 * lesion) * brain
        t1 = (rng.normal(100, 5, lesion.shape) - 30 * lesion) * brain
        for name, arr in (("FLAIR", flair), ("T1", t1), ("lesion", lesion)):
            nifti_writer(tmp_path / "data" / f"c{i}" / f"{name}.nii.gz", arr.astype(np.float32 if name != "lesion" else np.uint8))
        rows.append(f"c{i},{'A' if i < 3 else 'B'},c{i}/FLAIR.nii.gz,c{i}/T1.nii.gz,c{i}/lesion.nii.gz")
    (tmp_path / "data" / "manifest.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "data"


@pytest.fixture
def tiny_pairs(tmp_path: Path, nifti_writer) -> Path:
    """Four 40^3 baseline/follow-up pairs with a manifest: shared blobs at both visits, new blobs at follow-up only.

    Pair p3 has no new lesion. Columns as `mslesion synth --longitudinal` writes them.
    """
    rng = np.random.default_rng(1)
    rows = ["case_id,site,baseline_FLAIR,followup_FLAIR,lesion"]
    grid = np.indices((40, 40, 40)).transpose(1, 2, 3, 0)
    brain = np.linalg.norm(grid - 20, axis=-1) < 18

    def blobs(n: int) -> np.ndarray:
        out = np.zeros((40, 40, 40), np.uint8)
        for _ in range(n):
            out[np.linalg.norm(grid - rng.integers(10, 30, 3), axis=-1) < rng.uniform(2, 3.5)] = 1
        return out

    for i in range(4):
        old = blobs(2)
        new = blobs(0 if i == 3 else 2)
        while (new & ndimage.binary_dilation(old, iterations=3)).any():  # new, not the growth of an old one
            new = blobs(2)
        base = (rng.normal(100, 5, old.shape) + 60 * old) * brain
        follow = (rng.normal(100, 5, old.shape) + 60 * (old | new)) * brain * 1.3 + 20 * brain  # another scale
        for name, arr in (("baseline_FLAIR", base), ("followup_FLAIR", follow), ("lesion", new)):
            nifti_writer(tmp_path / "pairs" / f"p{i}" / f"{name}.nii.gz", arr.astype(np.float32 if name != "lesion" else np.uint8))
        rows.append(f"p{i},S,p{i}/baseline_FLAIR.nii.gz,p{i}/followup_FLAIR.nii.gz,p{i}/lesion.nii.gz")
    (tmp_path / "pairs" / "manifest.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "pairs"


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
