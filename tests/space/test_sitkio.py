"""The SimpleITK bridge is the only place axes flip: io.dicom and preprocess.skullstrip, which used to flip by hand,
give bit-identical results through it (the old hand-written code is copied here as the reference)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from mslesion.io.dicom import sitk_to_arrays
from mslesion.preprocess.skullstrip import _morph, _radius
from mslesion.space.sitkio import array_to_sitk, from_sitk, sitk_affine, to_sitk


def old_dicom_affine_and_array(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:  # io/dicom.py before the move
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = direction * np.asarray(image.GetSpacing(), dtype=float)
    lps[:3, 3] = image.GetOrigin()
    array = sitk.GetArrayFromImage(image).transpose(2, 1, 0)
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps, array


def old_morph(mask: np.ndarray, radius_mm: float, spacing: tuple[float, ...], dilate: bool) -> np.ndarray:  # skullstrip.py
    radius = _radius(radius_mm, spacing)
    if radius_mm <= 0 or not any(radius):
        return mask.astype(bool).copy()
    image = sitk.GetImageFromArray(np.ascontiguousarray(mask.astype(np.uint8).transpose(2, 1, 0)))
    op = sitk.BinaryDilate if dilate else sitk.BinaryErode
    out = op(image, radius, sitk.sitkBall, 0, 1)
    return sitk.GetArrayFromImage(out).transpose(2, 1, 0).astype(bool)


def _oblique_image(rng: np.random.Generator, dtype: type) -> sitk.Image:
    image = sitk.GetImageFromArray(rng.integers(0, 1000, (7, 11, 13)).astype(dtype))  # (z, y, x)
    a, b = np.deg2rad(12.5), np.deg2rad(-7.0)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    rz = np.array([[np.cos(b), -np.sin(b), 0], [np.sin(b), np.cos(b), 0], [0, 0, 1]])
    image.SetDirection(tuple(float(v) for v in (rz @ rx).ravel()))
    image.SetSpacing((0.86, 0.93, 3.3))
    image.SetOrigin((12.25, -101.5, 40.125))
    return image


@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.float32])
def test_dicom_volume_through_the_bridge_is_bit_identical(dtype: type) -> None:
    image = _oblique_image(np.random.default_rng(3), dtype)
    affine, array = old_dicom_affine_and_array(image)
    new_array, new_affine, _ = sitk_to_arrays(image)
    assert np.array_equal(new_affine, affine)  # exact, not allclose
    np.testing.assert_array_equal(new_array, array.astype(new_array.dtype))
    assert np.array_equal(sitk_affine(image), affine)
    assert from_sitk(image).dtype == array.dtype and np.array_equal(from_sitk(image), array)


@pytest.mark.parametrize("dilate", [True, False])
@pytest.mark.parametrize(
    ("radius_mm", "spacing"), [(2.0, (1.0, 1.0, 1.0)), (3.0, (0.9, 1.2, 4.0)), (1.0, (3.0, 3.0, 3.0)), (0.0, (1.0, 1.0, 1.0))]
)
def test_skullstrip_morphology_through_the_bridge_is_bit_identical(dilate: bool, radius_mm: float, spacing: tuple[float, ...]) -> None:
    rng = np.random.default_rng(7)
    mask = rng.random((13, 17, 9)) < 0.2
    mask[4:9, 5:12, 2:6] = True
    new, old = _morph(mask, radius_mm, spacing, dilate), old_morph(mask, radius_mm, spacing, dilate)
    assert new.dtype == old.dtype and np.array_equal(new, old)


def test_array_to_sitk_is_to_sitk_without_geometry() -> None:
    array = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    plain = array_to_sitk(array)
    assert plain.GetSize() == (2, 3, 4) and plain.GetSpacing() == (1.0, 1.0, 1.0) and plain.GetOrigin() == (0.0, 0.0, 0.0)
    placed = to_sitk(array, np.diag([2.0, 3.0, 4.0, 1.0]))
    assert np.array_equal(from_sitk(plain), from_sitk(placed)) and np.array_equal(from_sitk(plain), array)
