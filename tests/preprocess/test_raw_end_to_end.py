"""End to end on a synthetic head made from the MNI template (slow), and on a real raw Lesjak FLAIR (slow, shared data)."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from mslesion.cli import app
from mslesion.preprocess.raw import preprocess_raw
from mslesion.preprocess.resample import resample


def _synthetic_head(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """A 'raw' FLAIR-like head: MNI T1 template contrast-inverted, a skull and scalp added, rotated, 1x1x4 mm."""
    from scipy import ndimage as ndi
    from scipy.spatial.transform import Rotation

    from mslesion.space.templates import mni_arrays

    t1, brain, affine = mni_arrays()
    inside = brain > 0.5
    image = np.where(inside, 1.2 - t1, 0.0) * 300.0  # WM dark-ish, GM brighter: FLAIR-like order
    dist = ndi.distance_transform_edt(~inside)
    image[(dist > 3) & (dist <= 8)] = 30.0  # bone
    image[(dist > 8) & (dist <= 13)] = 450.0  # scalp
    motion = np.eye(4)
    motion[:3, :3] = Rotation.from_euler("xyz", (8.0, -5.0, 4.0), degrees=True).as_matrix()
    motion[:3, 3] = (5.0, -8.0, 10.0)
    raw_affine = motion @ np.diag([1.0, 1.0, 4.0, 1.0])
    raw_affine[:3, 3] = motion[:3, :3] @ np.array([-100.0, -130.0, -80.0]) + motion[:3, 3]
    shape = (200, 240, 45)
    raw = resample(image.astype(np.float32), affine, raw_affine, shape)
    truth = resample(inside.astype(np.float32), affine, raw_affine, shape) > 0.5
    raw += np.random.default_rng(0).normal(0, 5, shape).astype(np.float32)
    path = tmp_path / "raw_flair.nii.gz"
    nib.save(nib.Nifti1Image(np.clip(raw, 0, None).astype(np.float32), raw_affine), str(path))
    return path, truth, raw_affine


@pytest.mark.slow
def test_synthetic_head_end_to_end(tmp_path: Path, dice_fn) -> None:
    path, truth, _ = _synthetic_head(tmp_path)
    pre = preprocess_raw({"FLAIR": path})
    assert dice_fn(pre.native_brain, truth) > 0.9
    assert pre.images["FLAIR"].shape == (182, 218, 182) and pre.brain.shape == (182, 218, 182)
    back = pre.to_native(pre.brain.astype(np.uint8), is_label=True)
    assert back.shape == truth.shape and back.dtype == np.uint8
    assert dice_fn(back, pre.native_brain) > 0.95
    result = CliRunner().invoke(app, ["preprocess", "--flair", str(path), "--out", str(tmp_path / "out"), "--space", "native"])
    assert result.exit_code == 0, result.output
    qc = json.loads((tmp_path / "out" / "qc.json").read_text())
    assert {"FLAIR.nii.gz", "brain_mask.nii.gz", "qc.json", "transforms"} <= set(p.name for p in (tmp_path / "out").iterdir())
    assert qc["space"] == "native" and "mni_registration" in qc
    assert np.allclose(nib.load(str(tmp_path / "out" / "FLAIR.nii.gz")).affine, nib.load(str(path)).affine, atol=1e-4)


@pytest.mark.slow
@pytest.mark.shared_data
def test_real_raw_flair_brain_mask(shared_data: Path, dice_fn) -> None:
    import SimpleITK as sitk

    from mslesion.space.sitkio import from_sitk, to_sitk

    folder = shared_data / "lesjak-longitudinal" / "patient01"
    pre = preprocess_raw({"FLAIR": folder / "study1_FLAIR.nii.gz"})
    flair, ref = nib.load(str(folder / "study1_FLAIR.nii.gz")), nib.load(str(folder / "brainmask.nii.gz"))
    transform = sitk.ReadTransform(str(folder / "study1_FLAIR_to_common_space.txt"))
    reference = to_sitk(np.zeros(ref.shape, np.uint8), ref.affine, dtype=np.uint8)
    ours = (
        from_sitk(sitk.Resample(to_sitk(pre.native_brain.astype(np.float32), flair.affine), reference, transform, sitk.sitkLinear, 0.0))
        > 0.5
    )
    assert dice_fn(ours, np.asarray(ref.dataobj) > 0) > 0.9
