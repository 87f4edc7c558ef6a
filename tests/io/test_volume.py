"""Volume loading, validation errors and atomic, header-preserving writes."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mslesion.errors import InputError
from mslesion.io import load_volume, save_like, save_volume


def test_load_reports_geometry_lazily(tmp_path: Path, nifti_writer) -> None:
    affine = np.array([[-0.7, 0, 0, 10], [0, 0.7, 0, -5], [0, 0, 3.0, 2], [0, 0, 0, 1]])
    path = nifti_writer(tmp_path / "a.nii.gz", np.arange(36, dtype=np.int16).reshape(3, 3, 4), affine)
    vol = load_volume(path)
    assert vol._array is None  # nothing read yet
    assert vol.shape == (3, 3, 4)
    assert vol.spacing == pytest.approx((0.7, 0.7, 3.0))
    assert vol.voxel_volume == pytest.approx(0.7 * 0.7 * 3.0)
    assert vol.orientation == "LAS"
    assert vol.array[1, 2, 3] == 23


def test_trailing_singleton_axes_are_squeezed(tmp_path: Path, nifti_writer) -> None:
    path = nifti_writer(tmp_path / "a.nii.gz", np.ones((4, 5, 6, 1), np.float32))
    assert load_volume(path).array.shape == (4, 5, 6)


@pytest.mark.parametrize(("shape", "message"), [((4, 5), "2D image"), ((4, 5, 6, 2), "4D image")], ids=["2d", "4d"])
def test_wrong_dimensionality_is_refused(tmp_path: Path, nifti_writer, shape, message) -> None:
    path = nifti_writer(tmp_path / "a.nii.gz", np.zeros(shape, np.float32))
    with pytest.raises(InputError, match=message) as info:
        load_volume(path)
    assert str(path) in str(info.value)


def test_nan_voxels_are_refused_with_a_count(tmp_path: Path, nifti_writer) -> None:
    data = np.zeros((4, 4, 4), np.float32)
    data[0, 0, :2] = np.nan
    data[1, 1, 1] = np.inf
    with pytest.raises(InputError, match="3 NaN or infinite voxels"):
        load_volume(nifti_writer(tmp_path / "a.nii.gz", data)).validate()


def test_truncated_gzip_is_refused(tmp_path: Path, nifti_writer) -> None:
    path = nifti_writer(tmp_path / "a.nii.gz", np.random.default_rng(0).random((30, 30, 30)).astype(np.float32))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError, match="truncated or corrupt"):
        load_volume(path).validate()


def test_not_nifti_and_missing_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk.nii.gz"
    junk.write_bytes(gzip.compress(b"this is not an image"))
    with pytest.raises(InputError, match="not a readable NIfTI"):
        load_volume(junk)
    with pytest.raises(InputError, match="file not found"):
        load_volume(tmp_path / "missing.nii.gz")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(InputError, match="not a NIfTI file name"):
        load_volume(text)


def test_save_like_keeps_source_affine_and_form_codes(tmp_path: Path) -> None:
    affine = np.array([[-1.0, 0, 0, 90], [0, 1, 0, -126], [0, 0, 1, -72], [0, 0, 0, 1]])
    img = nib.Nifti1Image(np.zeros((5, 6, 7), np.float32), affine)
    img.set_qform(affine, code=1)
    img.set_sform(np.zeros((4, 4)), code=0)  # like the Lesjak MNI files: qform only
    src = tmp_path / "src.nii.gz"
    nib.save(img, str(src))
    like = load_volume(src)
    out = save_like(np.ones((5, 6, 7), bool), like, tmp_path / "out" / "mask.nii.gz")
    written = nib.load(str(out))
    assert written.get_data_dtype() == np.uint8
    assert int(written.header["qform_code"]) == 1 and int(written.header["sform_code"]) == 0
    np.testing.assert_allclose(written.affine, affine)
    assert [p.name for p in out.parent.iterdir()] == ["mask.nii.gz"]  # no temporary left behind


def test_save_refuses_wrong_shape_and_unwritable_folder(tmp_path: Path) -> None:
    like = load_volume(save_volume(np.zeros((3, 3, 3), np.float32), np.eye(4), tmp_path / "a.nii.gz"))
    with pytest.raises(InputError, match="differs from the reference grid"):
        save_like(np.zeros((3, 3, 4)), like, tmp_path / "b.nii.gz")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="cannot"):
        save_volume(np.zeros((3, 3, 3)), np.eye(4), blocker / "sub" / "c.nii.gz")


def test_qform_and_sform_that_disagree_give_a_warning(tmp_path: Path) -> None:
    data = np.zeros((10, 12, 8), np.float32)
    img = nib.Nifti1Image(data, np.eye(4))
    moved = np.eye(4)
    moved[:3, 3] = [5.0, 0.0, 0.0]
    img.set_qform(moved, code=1)
    img.set_sform(np.eye(4), code=2)
    nib.save(img, tmp_path / "apart.nii.gz")
    warnings = load_volume(tmp_path / "apart.nii.gz").warnings
    assert len(warnings) == 1 and "qform and sform disagree" in warnings[0] and "5.0 mm apart" in warnings[0]
    img.set_qform(np.eye(4), code=1)
    nib.save(img, tmp_path / "agree.nii.gz")
    assert load_volume(tmp_path / "agree.nii.gz").warnings == []
