"""Reorientation is exact and reversible; resampling round-trips; the SimpleITK bridge keeps world coordinates."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from mslesion.preprocess.orient import Reorientation, reorient_canonical
from mslesion.preprocess.resample import resample
from mslesion.space.sitkio import RAS_LPS, ras_to_transform, sitk_affine, to_sitk, transform_to_ras


def _rotation(angles: tuple[float, float, float]) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_euler("xyz", angles).as_matrix()


@pytest.mark.parametrize("perm, flips", [((0, 1, 2), (-1, -1, 1)), ((1, 2, 0), (1, -1, 1)), ((2, 0, 1), (-1, 1, -1))])
def test_reorient_round_trip_is_exact(rng: np.random.Generator, perm, flips) -> None:
    spacing = np.array([0.7, 0.8, 4.0])
    linear = np.zeros((3, 3))
    for axis, (world, sign) in enumerate(zip(perm, flips)):
        linear[world, axis] = sign * spacing[axis]
    affine = np.eye(4)
    affine[:3, :3] = _rotation((0.1, -0.05, 0.08)) @ linear  # oblique as well
    affine[:3, 3] = [10.0, -20.0, 5.0]
    array = rng.normal(size=(7, 9, 5)).astype(np.float32)
    canonical, canonical_affine, step = reorient_canonical(array, affine)
    assert "".join(nib.aff2axcodes(canonical_affine)) == "RAS"
    assert np.array_equal(step.to_native(canonical), array)
    # Same voxel, same world position.
    ijk = np.argwhere(canonical == array[2, 3, 4])[0]
    assert np.allclose(canonical_affine @ [*ijk, 1], affine @ [2, 3, 4, 1])
    again = Reorientation.from_json(step.to_json())
    assert again.canonical_shape == canonical.shape and np.allclose(again.canonical_affine, canonical_affine)


def test_sitk_bridge_keeps_world_coordinates(rng: np.random.Generator) -> None:
    affine = np.eye(4)
    affine[:3, :3] = _rotation((0.2, 0.1, -0.3)) @ np.diag([0.7, 0.7, 3.0])
    affine[:3, 3] = [100.0, -50.0, 20.0]
    image = to_sitk(rng.normal(size=(4, 5, 6)), affine)
    assert np.allclose(sitk_affine(image), affine)
    lps = image.TransformIndexToPhysicalPoint((1, 2, 3))
    assert np.allclose(lps, (RAS_LPS @ affine @ [1, 2, 3, 1])[:3])
    matrix = np.eye(4)
    matrix[:3, :3] = _rotation((0.1, 0.2, 0.3)) * 1.1
    matrix[:3, 3] = [3.0, -4.0, 5.0]
    assert np.allclose(transform_to_ras(ras_to_transform(matrix)), matrix)


def test_resample_round_trip_recovers_a_smooth_image() -> None:
    shape = (40, 44, 12)
    src_affine = np.diag([1.0, 1.0, 4.0, 1.0])
    ijk = np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij")
    smooth = (np.sin(ijk[0] / 6.0) + np.cos(ijk[1] / 7.0) + ijk[2] / 6.0).astype(np.float32)
    moved = np.eye(4)
    moved[:3, :3] = _rotation((0.0, 0.0, 0.15))
    moved[:3, 3] = [2.0, -1.5, 0.5]
    fine = np.diag([0.5, 0.5, 1.0, 1.0])
    fine[:3, 3] = [-3.0, -3.0, -2.0]
    fine_shape = (100, 104, 52)
    up = resample(smooth, src_affine, fine, fine_shape, dst_to_src=moved)
    back = resample(up, fine, src_affine, shape, dst_to_src=np.linalg.inv(moved))
    inner = (slice(8, -8), slice(8, -8), slice(3, -3))
    assert np.abs(back[inner] - smooth[inner]).max() < 0.05


def test_resample_labels_keep_values_and_dtype() -> None:
    labels = np.zeros((10, 10, 10), np.uint8)
    labels[2:5, 2:5, 2:5] = 3
    same = resample(labels, np.eye(4), np.eye(4), labels.shape, is_label=True)
    assert same.dtype == np.uint8 and np.array_equal(same, labels)
