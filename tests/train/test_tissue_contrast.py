"""Tissue-contrast augmentation: grey matter shifted by its MNI prior, lesions and background untouched."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mslesion.space.grid import FSL_MNI_AFFINE
from mslesion.space.priors import mni_tissues_1mm
from mslesion.train.data import PreparedCase
from mslesion.train.tissue_contrast import SHIFT_RANGE, TissueContrast

ORIGIN = (40, 60, 70)  # a brain box starting here on the MNI grid, over cortex and white matter
SHAPE = (60, 60, 50)


def _case(make: Callable[..., PreparedCase], case_id: str, affine: np.ndarray) -> PreparedCase:
    image = np.ones((2, *SHAPE), np.float32)
    image[:, :18] = 0.0  # outside the brain (the patch below starts at 14)
    label = np.zeros(SHAPE, np.uint8)
    label[30:34, 30:34, 20:24] = 1
    return make(case_id, image, label, ORIGIN, affine)


def _items(case: PreparedCase) -> list[dict]:
    centre = np.array([30, 30, 25])
    return [
        {
            "image": case.image[:, 14:46, 14:46, 9:41].copy(),
            "label": case.label[None, 14:46, 14:46, 9:41].astype(np.float32),
            "case": case,
            "centre": centre,
        }
    ]


def test_grey_matter_is_shifted_by_its_prior_and_nothing_else(mni_prepared_case: Callable[..., PreparedCase]) -> None:
    case = _case(mni_prepared_case, "mni", FSL_MNI_AFFINE)
    items = _items(case)
    before = items[0]["image"].copy()
    TissueContrast([case]).apply(items, np.random.default_rng(3), probability=1.0)
    change = items[0]["image"] - before
    start = np.array(ORIGIN) + [14, 14, 9]
    grey = mni_tissues_1mm()["gm"][tuple(slice(a, a + 32) for a in start)]
    label = items[0]["label"][0] > 0
    assert np.abs(change[:, label]).max() == 0.0  # lesions untouched
    assert np.abs(change[:, before[0] == 0]).max() == 0.0  # background stays 0
    for c in range(2):  # one shift per channel, times the grey-matter probability
        where = (grey > 0.5) & ~label & (before[c] != 0)
        ratio = change[c][where] / grey[where]
        assert np.ptp(ratio) < 1e-4 and SHIFT_RANGE[0] <= ratio.mean() <= SHIFT_RANGE[1]
    assert (grey > 0.5).sum() > 100  # the box does hold cortex


def test_cases_off_the_mni_grid_and_unlucky_draws_are_left_alone(mni_prepared_case: Callable[..., PreparedCase]) -> None:
    shifted = FSL_MNI_AFFINE.copy()
    shifted[0, 3] += 5.0
    case = _case(mni_prepared_case, "other", shifted)
    items = _items(case)
    before = items[0]["image"].copy()
    augment = TissueContrast([case])
    assert augment.priors == {}
    augment.apply(items, np.random.default_rng(0), probability=1.0)
    np.testing.assert_array_equal(items[0]["image"], before)
    mni = _case(mni_prepared_case, "mni", FSL_MNI_AFFINE)
    items = _items(mni)
    TissueContrast([mni]).apply(items, np.random.default_rng(0), probability=0.0)
    np.testing.assert_array_equal(items[0]["image"], before)
