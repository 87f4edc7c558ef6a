"""`lesion_labels` labels once what binarise, lesion_table and the locations used to label three times: same lesions, same ids."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from mslesion.postprocess.lesions import binarise, describe_lesions, lesion_labels, lesion_table, ranked_labels


@pytest.mark.parametrize("seed", range(5))
def test_one_labelling_gives_the_mask_the_ids_and_the_table_of_three(seed: int) -> None:
    rng = np.random.default_rng(seed)
    prob = ndimage.gaussian_filter(rng.random((40, 36, 30)), 1.5)
    prob = (prob - prob.min()) / np.ptp(prob)
    labels, n = lesion_labels(prob, 0.6, 3.0, 1.0, min_mean_probability=0.65)
    mask = binarise(prob, 0.6, 3.0, 1.0, min_mean_probability=0.65)
    assert n > 0 and np.array_equal(labels > 0, mask > 0)
    expected, m = ranked_labels(mask)
    assert n == m and np.array_equal(labels, expected)
    affine = np.diag([0.9, 1.0, 1.2, 1.0])
    assert describe_lesions(labels, n, affine) == lesion_table(mask, affine)


def test_nothing_above_threshold_is_no_lesion() -> None:
    labels, n = lesion_labels(np.zeros((8, 8, 8)), 0.5, 0.0, 1.0)
    assert n == 0 and not labels.any() and labels.shape == (8, 8, 8)
