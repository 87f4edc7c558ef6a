"""Lesion implant: other patients' lesions of the patch's region drawn in; test and own masks never."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mslesion.errors import InputError
from mslesion.space.grid import FSL_MNI_AFFINE, FSL_MNI_SHAPE
from mslesion.space.priors import mni_tissues_1mm
from mslesion.synth.implant import brain_stats
from mslesion.train.config import load_config
from mslesion.train.data import PreparedCase
from mslesion.train.lesion_implant import LesionImplant, paste_component

ORIGIN = (40, 60, 60)  # the case's brain box on the MNI grid: deep white matter of one hemisphere
SHAPE = (60, 60, 50)
PATCH = (slice(14, 46), slice(14, 46), slice(9, 41))


def _case(make: Callable[..., PreparedCase]) -> PreparedCase:
    rng = np.random.default_rng(0)
    image = np.stack([0.5 + 0.1 * rng.standard_normal(SHAPE), -0.2 + 0.1 * rng.standard_normal(SHAPE)]).astype(np.float32)
    image[:, 16:19] = -3.0  # a rim of CSF: dark, where no lesion may be drawn
    image[:, :16] = 0.0  # outside the brain (the patch starts at 14)
    label = np.zeros(SHAPE, np.uint8)
    label[30:34, 30:34, 20:24] = 1  # one real lesion of 64 voxels: FLAIR +2, T1 -1
    image[0][label > 0] += 2.0
    image[1][label > 0] -= 1.0
    return make("case", image, label, ORIGIN)


def _white_matter_spot(case: PreparedCase, which: int = 0) -> tuple[int, int, int]:
    """A voxel of the patch (case-box coordinates) deep in the MNI white matter, away from the case's lesion
    (`which`: 0 the first such voxel, -1 the last)."""
    box = tuple(slice(o, o + n) for o, n in zip(ORIGIN, SHAPE))
    wm = mni_tissues_1mm()["wm"][box]
    candidates = np.argwhere(wm > 0.95)
    inside = [c for c in candidates if all(s.start + 6 <= x < s.stop - 6 for s, x in zip(PATCH, c)) and np.abs(c - 32).max() > 8]
    assert inside, "the test box holds no deep white matter"
    return tuple(int(x) for x in inside[which])  # type: ignore[return-value]


def _mask(folder: Path, name: str, at: tuple[int, int, int]) -> None:
    mask = np.zeros(FSL_MNI_SHAPE, np.uint8)
    x, y, z = (a + o for a, o in zip(at, ORIGIN))
    mask[x - 1 : x + 2, y - 1 : y + 2, z - 1 : z + 2] = 1
    nib.save(nib.Nifti1Image(mask, FSL_MNI_AFFINE), folder / f"{name}_lesion.nii.gz")


def _items(case: PreparedCase) -> list[dict]:
    return [
        {
            "image": case.image[(slice(None), *PATCH)].copy(),
            "label": case.label[None, *PATCH].astype(np.float32),
            "case": case,
            "centre": np.array([30, 30, 25]),
        }
    ]


def test_a_donor_lesion_is_drawn_with_a_real_lesions_contrast_and_excluded_masks_never(
    tmp_path: Path, mni_prepared_case: Callable[..., PreparedCase]
) -> None:
    case = _case(mni_prepared_case)
    spot = _white_matter_spot(case)
    _mask(tmp_path, "donor", spot)
    other = _white_matter_spot(case, -1)
    assert np.abs(np.subtract(other, spot)).max() > 4
    _mask(tmp_path, "patient07", other)  # the test case's mask: left out
    implant = LesionImplant([case], tmp_path, exclude=["patient07"], flair_channel=0)
    assert [d for d, _ in implant.donors] == ["donor_lesion"]
    sd = [brain_stats(channel, case.brain).sd for channel in case.image]
    np.testing.assert_allclose(implant.offsets.mean(0) * sd, [2.0, -1.0], atol=0.3)  # the case's lesion, in its brain sd
    items = _items(case)
    before = items[0]["image"].copy()
    implant.apply(items, np.random.default_rng(1), probability=1.0)
    at = tuple(x - s.start for x, s in zip(spot, PATCH))
    drawn = items[0]["label"][0] > 0
    cube = tuple(slice(a - 1, a + 2) for a in at)
    assert drawn[cube].all() and drawn.sum() == 27 + 64  # the donor's 27 voxels plus the case's own lesion
    change = items[0]["image"] - before
    assert 0.7 * 2.0 * 0.5 < change[0][cube].mean() and change[1][cube].mean() < 0  # FLAIR brighter, T1 darker
    assert np.abs(change[:, before[0] == 0]).max() == 0.0  # nothing outside the brain


def test_own_masks_and_unlucky_draws_leave_the_patch_alone(tmp_path: Path, mni_prepared_case: Callable[..., PreparedCase]) -> None:
    case = _case(mni_prepared_case)
    _mask(tmp_path, "case", _white_matter_spot(case))  # the case's own mask: never drawn into itself
    implant = LesionImplant([case], tmp_path, exclude=[], flair_channel=0)
    for probability in (1.0, 0.0):
        items = _items(case)
        before = (items[0]["image"].copy(), items[0]["label"].copy())
        implant.apply(items, np.random.default_rng(0), probability=probability)
        np.testing.assert_array_equal(items[0]["image"], before[0])
        np.testing.assert_array_equal(items[0]["label"], before[1])


def test_paste_component_clips_at_the_canvas_edge() -> None:
    canvas = np.zeros((4, 4, 4), bool)
    paste_component(canvas, np.ones((3, 3, 3), bool), np.array([-1, 2, 0]))
    assert canvas.sum() == 2 * 2 * 3 and canvas[0:2, 2:4, 0:3].all()


def test_implant_without_a_mask_folder_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "train.yaml"
    config.write_text(f"data: {{datasets: [{tmp_path}], contrasts: [FLAIR]}}\naugment: {{implant: 0.4}}\n")
    with pytest.raises(InputError, match="augment.implant needs data.lesion_locations"):
        load_config(config)


def test_nothing_is_drawn_on_a_lesion_already_pasted_into_the_patch(tmp_path: Path, mni_prepared_case: Callable[..., PreparedCase]) -> None:
    case = _case(mni_prepared_case)
    spot = _white_matter_spot(case)
    _mask(tmp_path, "donor", spot)
    items = _items(case)
    at = tuple(x - s.start for x, s in zip(spot, PATCH))
    items[0]["label"][(0, *(slice(a - 1, a + 2) for a in at))] = 1.0  # a CarveMix paste, in the item's label only
    before = items[0]["image"].copy()
    LesionImplant([case], tmp_path, exclude=[], flair_channel=0).apply(items, np.random.default_rng(1), probability=1.0)
    np.testing.assert_array_equal(items[0]["image"], before)


def test_lesion_poor_scaling_spares_a_case_above_the_donors_median_load(
    tmp_path: Path, mni_prepared_case: Callable[..., PreparedCase]
) -> None:
    case = _case(mni_prepared_case)  # 64 voxels of lesion
    _mask(tmp_path, "donor", _white_matter_spot(case))  # 27 voxels: the case is above the donors' median load
    implant = LesionImplant([case], tmp_path, exclude=[], flair_channel=0, lesion_poor=True)
    assert implant.share == {"case": 0.0}
    items = _items(case)
    before = items[0]["image"].copy()
    implant.apply(items, np.random.default_rng(1), probability=1.0)
    np.testing.assert_array_equal(items[0]["image"], before)
    # A donor with 1000 more voxels elsewhere (a new folder: libraries are cached per folder): the case
    # now holds 64 / 1027 of the median load.
    bigger = tmp_path / "bigger"
    bigger.mkdir()
    mask = np.asarray(nib.load(tmp_path / "donor_lesion.nii.gz").dataobj).copy()
    mask[10:20, 10:20, 10:20] = 1
    nib.save(nib.Nifti1Image(mask, FSL_MNI_AFFINE), bigger / "donor_lesion.nii.gz")
    implant = LesionImplant([case], bigger, exclude=[], flair_channel=0, lesion_poor=True)
    assert implant.share["case"] == pytest.approx(1 - 64 / 1027)
    assert LesionImplant([case], bigger, exclude=[], flair_channel=0).share == {"case": 1.0}


def test_an_unknown_implant_scaling_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "train.yaml"
    config.write_text(
        f"data: {{datasets: [{tmp_path}], contrasts: [FLAIR], lesion_locations: {tmp_path}}}\naugment: {{implant: 0.4, implant_scaling: most}}\n"
    )
    with pytest.raises(InputError, match="augment.implant_scaling must be one of fixed, lesion_poor"):
        load_config(config)
    config.write_text(
        f"data: {{datasets: [{tmp_path}], contrasts: [FLAIR], lesion_locations: {tmp_path}}}\naugment: {{implant_scaling: [lesion_poor]}}\n"
    )
    with pytest.raises(InputError, match="augment.implant_scaling must be one of fixed, lesion_poor"):
        load_config(config)
    config.write_text(f"data: {{datasets: [{tmp_path}], contrasts: [FLAIR]}}\naugment: {{implant_scaling: lesion_poor}}\n")
    with pytest.raises(InputError, match="scales augment.implant, which is 0 here"):
        load_config(config)
