"""CarveMix: real lesions with their rim pasted at drawn lesion positions, on the patch only."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mslesion.errors import InputError
from mslesion.train.carvemix import BLEND_VOXELS, MARGIN_VOXELS, CarveMix, carve_lesions, lesion_locations
from mslesion.train.data import PreparedCase
from mslesion.train.sampling import sample_batch


def _case(case_id: str, lesion_at: tuple[int, int, int] | None, value: float, shape=(40, 40, 40)) -> PreparedCase:
    """A flat brain of intensity 0 with one bright 3x3x3 lesion of `value` (FLAIR) at `lesion_at`."""
    image = np.zeros((2, *shape), np.float32)
    label = np.zeros(shape, np.uint8)
    voxels = []
    if lesion_at is not None:
        box = tuple(slice(c - 1, c + 2) for c in lesion_at)
        image[(0, *box)] = value
        image[(1, *box)] = -value
        label[box] = 1
        voxels = [np.argwhere(label)]
    return PreparedCase(
        case_id,
        image,
        label,
        np.ones(shape, bool),
        np.array([True, True]),
        voxels,
        np.argwhere(np.ones(shape, bool)),
        (1.0, 1.0, 1.0),
        grid_shape=shape,
    )


def test_carved_lesion_keeps_intensities_label_and_a_blended_rim() -> None:
    (lesion,) = carve_lesions([_case("a", (20, 20, 20), 5.0)], max_extent=32)
    assert lesion.label.sum() == 27 and lesion.source == "a"
    assert lesion.image.shape[1:] == (3 + 2 * (MARGIN_VOXELS + BLEND_VOXELS),) * 3
    assert lesion.image[0][tuple(lesion.centre)] == 5.0 and lesion.image[1][tuple(lesion.centre)] == -5.0
    assert lesion.alpha[tuple(lesion.centre)] == 1.0 and lesion.alpha[0, 0, 0] == 0.0  # full inside, none at the far corner


def test_lesions_larger_than_half_a_patch_are_not_carved() -> None:
    case = _case("a", None, 0.0)
    case.label[5:35, 10:12, 10:12] = 1
    case.lesion_voxels = [np.argwhere(case.label)]
    assert carve_lesions([case], max_extent=16) == []


def test_pasted_patch_holds_the_source_lesion_at_the_drawn_position() -> None:
    source, target = _case("source", (20, 20, 20), 5.0), _case("target", None, 0.0)
    carvemix = CarveMix([source], np.array([[16, 18, 20]]), [32, 32, 32])
    rng = np.random.default_rng(0)
    items = sample_batch(
        [target], rng, batch_size=4, patch_size=(32, 32, 32), lesion_fraction=0.0, carvemix=carvemix, carvemix_fraction=1.0
    )
    for item in items:
        assert item["label"].sum() == 27  # exactly the source lesion, in every patch
        inside = item["label"][0] > 0
        np.testing.assert_array_equal(item["image"][0][inside], 5.0)
        np.testing.assert_array_equal(item["image"][1][inside], -5.0)
    # Without CarveMix, the lesion-free target gives lesion-free patches.
    plain = sample_batch([target], rng, 4, (32, 32, 32), 0.0, carvemix=carvemix, carvemix_fraction=0.0)
    assert all(item["label"].sum() == 0 for item in plain)


def test_positions_never_land_on_an_existing_lesion() -> None:
    target = _case("target", (10, 12, 14), 5.0)
    carvemix = CarveMix([_case("s", (20, 20, 20), 5.0)], np.array([[11, 12, 14]]), [32, 32, 32])
    assert carvemix.position_in(target, np.random.default_rng(0)) is None


def test_lesion_locations_leave_out_the_excluded_case(tmp_path: Path) -> None:
    for name, at in (("patient01_lesion.nii.gz", (1, 1, 1)), ("patient07_lesion.nii.gz", (5, 5, 5))):
        mask = np.zeros((8, 8, 8), np.uint8)
        mask[at] = 1
        nib.save(nib.Nifti1Image(mask, np.eye(4)), tmp_path / name)
    np.testing.assert_array_equal(lesion_locations(tmp_path, ["patient07"], (8, 8, 8)), [[1, 1, 1]])
    with pytest.raises(InputError, match="grid is"):
        lesion_locations(tmp_path, [], (9, 8, 8))
    assert len(lesion_locations(tmp_path, ["patient0"], (8, 8, 8))) == 2  # a prefix of ids is not an id
    with pytest.raises(InputError, match=r"only masks of held-out cases \(patient01, patient07\)"):
        lesion_locations(tmp_path, ["patient01", "patient07"], (8, 8, 8))
    with pytest.raises(InputError, match="not a folder of lesion masks"):
        lesion_locations(tmp_path / "nowhere", [], (8, 8, 8))
