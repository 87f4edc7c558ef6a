"""Bad images at the door: each kind is one `error:` line naming the file, exit 2, nothing written.

Every case goes through `mslesion segment` with a tiny model; the image check runs before
any output folder is touched. Hostile headers must fail from the header alone.
"""

from __future__ import annotations

import gzip
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mslesion.errors import InputError
from mslesion.io import load_volume


def _header_only(path: Path, shape: tuple[int, ...], dtype: type = np.float32) -> Path:
    """A NIfTI file of a few hundred bytes whose header claims `shape` (no voxel data behind it)."""
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(dtype)
    header.set_qform(np.eye(4), code=1)
    raw = header.binaryblock + b"\0" * 4
    path.write_bytes(gzip.compress(raw) if path.name.endswith(".gz") else raw)
    return path


def _image(path: Path, data: np.ndarray, affine: np.ndarray | None = None, slope: float | None = None) -> Path:
    img = nib.Nifti1Image(data, np.eye(4) if affine is None else affine)
    if slope is not None:
        img.header.set_slope_inter(slope, 0.0)
    nib.save(img, str(path))
    return path


def _rgb(path: Path) -> Path:
    return _image(path, np.zeros((8, 8, 8), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")]))


def _truncated(path: Path) -> Path:
    _image(path, np.random.default_rng(0).random((30, 30, 30)).astype(np.float32))
    path.write_bytes(path.read_bytes()[:2000])
    return path


def _nan(path: Path) -> Path:
    data = np.ones((8, 8, 8), np.float32)
    data[2, 2, 2] = np.nan
    return _image(path, data)


BAD_IMAGES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "header_1200_cubed": (lambda p: _header_only(p.with_suffix(""), (1200, 1200, 1200)), "too large"),
    "header_10000_cubed_gz": (lambda p: _header_only(p, (10000, 10000, 10000)), "too large"),
    "header_1024x1024x512": (lambda p: _header_only(p, (1024, 1024, 512)), "too large"),
    "float64_times_1e300": (lambda p: _image(p, np.full((8, 8, 8), 1e300)), "beyond the float32 range"),
    "int16_scl_slope_1e37": (lambda p: _image(p, np.full((8, 8, 8), 100, np.int16), slope=1e37), "beyond the float32 range"),
    "nan_voxel": (_nan, "NaN or infinite"),
    "rgb24": (_rgb, "RGB"),
    "complex64": (lambda p: _image(p, np.ones((8, 8, 8), np.complex64)), "complex"),
    "single_slice": (lambda p: _image(p, np.ones((16, 16, 1), np.float32)), "slice"),
    "two_slices": (lambda p: _image(p, np.ones((16, 2, 16), np.float32)), "slice"),
    "voxel_30mm": (lambda p: _image(p, np.ones((8, 8, 8), np.float32), np.diag([1.0, 1.0, 30.0, 1.0])), "voxel size"),
    "voxel_0.01mm": (lambda p: _image(p, np.ones((8, 8, 8), np.float32), np.diag([0.01, 1.0, 1.0, 1.0])), "voxel size"),
    "four_d": (lambda p: _image(p, np.ones((8, 8, 8, 3), np.float32)), "3D image is needed"),
    "truncated_gzip": (_truncated, "truncated or corrupt"),
    "five_cubed_raw": (
        lambda p: _image(p, np.random.default_rng(0).normal(100, 10, (5, 5, 5)).astype(np.float32)),
        "too small for a head scan",
    ),
}


@pytest.mark.parametrize("kind", list(BAD_IMAGES))
def test_bad_flair_is_one_line_exit_2_and_writes_nothing(kind: str, tmp_path: Path, tiny_model: Path, refused) -> None:
    make, message = BAD_IMAGES[kind]
    bad = make(tmp_path / f"{kind}.nii.gz")
    out = tmp_path / "out"
    refused(["segment", "--flair", bad, "--out", out, "--model", tiny_model], bad, message=message)
    assert not out.exists()


def test_hostile_header_fails_from_the_header_without_allocating(tmp_path: Path) -> None:
    bad = _header_only(tmp_path / "huge.nii", (1200, 1200, 1200))
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(InputError, match="too large"):
            load_volume(bad).validate()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20 and time.perf_counter() - started < 1.0


def test_unusual_voxel_size_is_a_warning_not_a_refusal(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _image(tmp_path / "thick.nii.gz", np.ones((8, 8, 8), np.float32), np.diag([1.0, 1.0, 12.0, 1.0]))
    volume = load_volume(path).validate()
    assert len(volume.warnings) == 1 and "voxel size" in volume.warnings[0] and str(path) in volume.warnings[0]
    assert "unusual" in caplog.text


def test_masks_keep_integers_and_large_float32_values_pass(tmp_path: Path) -> None:
    mask = load_volume(_image(tmp_path / "m.nii.gz", np.ones((4, 4, 4), np.uint8))).validate()
    assert mask.array.dtype == np.uint8
    big = load_volume(_image(tmp_path / "b.nii.gz", np.full((4, 4, 4), 1e38))).validate()  # float64, fits float32
    assert big.array.dtype == np.float32 and np.isfinite(big.array).all()


@pytest.mark.parametrize("name", ["short.nii", "short.nii.gz"])
def test_file_shorter_than_its_header_claims_fails_before_reading(name: str, tmp_path: Path) -> None:
    bad = _header_only(tmp_path / name, (640, 640, 640))  # 1 GiB claimed, under the size limits, a few bytes held
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match="the header claims 1048576000 bytes"):
            load_volume(bad).validate()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20


def test_multi_member_gzip_is_read(tmp_path: Path) -> None:
    plain = _image(tmp_path / "a.nii", np.arange(512, dtype=np.float32).reshape(8, 8, 8))
    raw = plain.read_bytes()
    two = tmp_path / "two.nii.gz"
    two.write_bytes(gzip.compress(raw[:1000]) + gzip.compress(raw[1000:]))  # trailer: the last member's size only
    assert load_volume(two).array[7, 7, 7] == 511


@pytest.mark.parametrize(("field", "value"), [("quatern_b", 2.0), ("qoffset_x", np.inf)], ids=["quaternion_beyond_unit", "infinite_offset"])
def test_invalid_qform_beside_a_valid_sform_is_a_warning(field: str, value: object, tmp_path: Path) -> None:
    """Found by test_fuzz_readers.py: nibabel raised ValueError/HeaderDataError computing the qform the sform overrides."""
    img = nib.Nifti1Image(np.ones((8, 8, 8), np.float32), np.eye(4))
    img.set_qform(np.eye(4), code=1)
    img.set_sform(np.eye(4), code=2)
    img.header[field], img.header["vox_offset"] = value, 352
    path = tmp_path / "qform.nii.gz"
    path.write_bytes(gzip.compress(img.header.binaryblock + b"\0" * 4 + np.ones((8, 8, 8), np.float32).tobytes()))
    volume = load_volume(path).validate()
    np.testing.assert_array_equal(volume.affine, np.eye(4))
    assert len(volume.warnings) == 1 and "qform is invalid" in volume.warnings[0] and str(path) in volume.warnings[0]


def test_negated_contrast_is_a_qc_warning_in_the_summary(
    tmp_path: Path, tiny_model: Path, ready_scan: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A negated export (or a negative scl_slope) makes the brain darker than the background: exit 0, but said."""
    import json

    from typer.testing import CliRunner

    from mslesion.cli import app

    negated = _image(tmp_path / "negated.nii.gz", -nib.load(ready_scan).get_fdata(dtype=np.float32))
    result = CliRunner().invoke(
        app, ["segment", "--flair", str(negated), "--out", str(tmp_path / "out"), "--model", str(tiny_model), "--flips", "1"]
    )
    assert result.exit_code == 0, result.output
    warnings = json.loads((tmp_path / "out" / "summary.json").read_text())["warnings"]
    assert any("looks negated" in w and str(negated) in w for w in warnings), warnings
    assert "looks negated" in caplog.text  # the CLI's log goes to stderr


def test_plain_scans_and_masks_are_not_taken_for_negated(tmp_path: Path, ready_scan: Path) -> None:
    assert load_volume(ready_scan).validate().warnings == []
    some_negative = nib.load(ready_scan).get_fdata(dtype=np.float32) - 20  # N4 leaves a few negative voxels in real scans
    assert load_volume(_image(tmp_path / "n4.nii.gz", some_negative)).validate().warnings == []
    assert load_volume(_image(tmp_path / "mask.nii.gz", np.zeros((8, 8, 8), np.uint8))).validate().warnings == []
    slope = load_volume(_image(tmp_path / "slope.nii.gz", np.abs(nib.load(ready_scan).get_fdata()).astype(np.int16), slope=-1.0)).validate()
    assert len(slope.warnings) == 1 and "looks negated" in slope.warnings[0]


def test_ready_image_too_small_for_a_brain_is_a_qc_warning(tmp_path: Path, tiny_model: Path, ready_scan: Path) -> None:
    """A skull-stripped 24^3 image at 1 mm holds 4 mL of 'brain': segmented (exit 0), but the summary says so."""
    import json

    from typer.testing import CliRunner

    from mslesion.cli import app

    result = CliRunner().invoke(
        app, ["segment", "--flair", str(ready_scan), "--out", str(tmp_path / "out"), "--model", str(tiny_model), "--flips", "1"]
    )
    assert result.exit_code == 0, result.output
    warnings = json.loads((tmp_path / "out" / "summary.json").read_text())["warnings"]
    assert any("the brain (non-zero FLAIR) volume 4 mL is outside the usual 900-1900 mL" in w for w in warnings), warnings


@pytest.mark.parametrize(("half_edge", "warned"), [(68, False), (73, True)])
def test_a_brain_normalised_to_mni_is_not_flagged_for_its_size(tmp_path: Path, nifti_writer, half_edge: int, warned: bool) -> None:
    """On the MNI grid a ready brain may be scaled to the template (patient01's study 1 through `mslesion preprocess`:
    2517 mL), so up to 3000 mL passes there; a 136^3 box (2515 mL) passes, a 146^3 one (3112 mL) is flagged."""
    from mslesion.predict.inputs import brain_of_ready_input
    from mslesion.space.grid import FSL_MNI_AFFINE, FSL_MNI_SHAPE

    image = np.zeros(FSL_MNI_SHAPE, np.float32)
    centre = [s // 2 for s in FSL_MNI_SHAPE]
    image[tuple(slice(c - half_edge, c + half_edge) for c in centre)] = 1.0
    flair = load_volume(nifti_writer(tmp_path / "FLAIR.nii.gz", image, FSL_MNI_AFFINE))
    brain_of_ready_input(flair, None)
    assert any("outside the usual 900-3000 mL" in w for w in flair.warnings) == warned, flair.warnings
