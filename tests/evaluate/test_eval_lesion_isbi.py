"""Connected components and the ISBI 2015 lesion-wise rates (hand cases, empties, lesion_metrics)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from lesion_metrics import metrics as lm

from mslesion.evaluate import EmptyPolicy, isbi_lesion_metrics, label_components

SHAPE = (10, 10, 10)


@pytest.mark.parametrize(
    ("voxels", "expected"),
    [
        ([(1, 1, 1), (1, 1, 2)], {6: 1, 18: 1, 26: 1}),  # share a face
        ([(1, 1, 1), (2, 2, 1)], {6: 2, 18: 1, 26: 1}),  # share an edge only
        ([(1, 1, 1), (2, 2, 2)], {6: 2, 18: 2, 26: 1}),  # share a corner only
        ([(1, 1, 1), (3, 1, 1)], {6: 2, 18: 2, 26: 2}),  # one voxel apart
    ],
)
def test_label_components_connectivity(mask, voxels, expected) -> None:
    m = mask(SHAPE, voxels)
    for connectivity, n in expected.items():
        labels, count = label_components(m, connectivity)
        assert count == n
        assert labels.max() == n and (labels > 0).sum() == len(voxels)
    assert label_components(m)[1] == expected[26]  # 26 is the default


def test_label_components_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="connectivity"):
        label_components(np.zeros(SHAPE), 8)
    with pytest.raises(ValueError, match="3D"):
        label_components(np.zeros((4, 4)))


# ref lesions: A = {(1,1,1),(1,1,2)}, B = {(5,5,5)}, C = {(8,8,7),(8,8,8)}
# pred lesions: P1 = {(1,1,2),(1,1,3)} overlaps A; P2 = {(7,7,6)} touches nothing
#   ((7,7,6) is only corner-adjacent to C's (8,8,7): different masks, no overlap);
#   P3 = {(5,5,5)} overlaps B.
REF = [(1, 1, 1), (1, 1, 2), (5, 5, 5), (8, 8, 7), (8, 8, 8)]
PRED = [(1, 1, 2), (1, 1, 3), (7, 7, 6), (5, 5, 5)]


def test_isbi_by_hand(mask) -> None:
    res = isbi_lesion_metrics(mask(SHAPE, PRED), mask(SHAPE, REF))
    assert (res.n_ref, res.n_pred, res.tp_ref, res.fp_pred) == (3, 3, 2, 1)
    assert res.ltpr == pytest.approx(2 / 3)  # A and B hit, C missed
    assert res.lfpr == pytest.approx(1 / 3)  # P2
    assert res.lppv == pytest.approx(2 / 3)  # 1 - 1/3
    assert res.f1 == pytest.approx(2 / 3)  # 2 * (2/3) * (2/3) / (4/3)


def test_isbi_connectivity_changes_counts(mask) -> None:
    ref = mask(SHAPE, [(1, 1, 1), (2, 2, 2)])  # corner-touching: 1 lesion (26), 2 lesions (6)
    pred = mask(SHAPE, [(1, 1, 1)])
    r26 = isbi_lesion_metrics(pred, ref, connectivity=26)
    r6 = isbi_lesion_metrics(pred, ref, connectivity=6)
    assert (r26.n_ref, r26.tp_ref, r26.ltpr) == (1, 1, 1.0)
    assert (r6.n_ref, r6.tp_ref, r6.ltpr) == (2, 1, 0.5)


def test_isbi_ref_empty(mask) -> None:
    pred, ref = mask(SHAPE, PRED), mask(SHAPE, [])
    res = isbi_lesion_metrics(pred, ref)
    assert (res.n_ref, res.n_pred, res.tp_ref, res.fp_pred) == (0, 3, 0, 3)
    assert math.isnan(res.ltpr)
    assert res.lfpr == 1.0 and res.lppv == 0.0
    assert math.isnan(res.f1)  # LTPR undefined
    res1 = isbi_lesion_metrics(pred, ref, policy=EmptyPolicy(ltpr_no_ref=1.0))
    assert res1.ltpr == 1.0 and res1.f1 == 0.0  # 2 * 0 * 1 / (0 + 1)


def test_isbi_pred_empty(mask) -> None:
    pred, ref = mask(SHAPE, []), mask(SHAPE, REF)
    res = isbi_lesion_metrics(pred, ref)
    assert (res.n_ref, res.n_pred, res.tp_ref, res.fp_pred) == (3, 0, 0, 0)
    assert res.ltpr == 0.0
    assert math.isnan(res.lfpr) and math.isnan(res.lppv) and math.isnan(res.f1)
    res0 = isbi_lesion_metrics(pred, ref, policy=EmptyPolicy(lfpr_no_pred=0.0))
    assert res0.lfpr == 0.0 and res0.lppv == 1.0
    assert res0.f1 == 0.0  # 2 * 1 * 0 / (1 + 0)


def test_isbi_both_empty(mask) -> None:
    e = mask(SHAPE, [])
    res = isbi_lesion_metrics(e, e)
    assert (res.n_ref, res.n_pred) == (0, 0)
    assert math.isnan(res.ltpr) and math.isnan(res.lfpr) and math.isnan(res.f1)
    res1 = isbi_lesion_metrics(e, e, policy=EmptyPolicy.perfect_when_both_empty())
    assert (res1.ltpr, res1.lfpr, res1.f1) == (1.0, 0.0, 1.0)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_matches_lesion_metrics(blob_pair, seed: int) -> None:
    # lesion_metrics labels with skimage.measure.label (full = 26-connectivity) and counts
    # a lesion as hit when its IoU with the other mask (inside its bounding box) is > 0.
    p, r = blob_pair(seed)
    res = isbi_lesion_metrics(p, r, connectivity=26)
    ltpr, n_truth = lm.ltpr(p, r, return_truth_count=True)
    lfdr, n_pred = lm.lfdr(p, r, return_pred_count=True)
    assert (res.n_ref, res.n_pred) == (n_truth, n_pred)
    assert res.ltpr == pytest.approx(ltpr, rel=1e-12)
    assert res.lfpr == pytest.approx(lfdr, rel=1e-12)
    assert 0 < res.ltpr < 1 and 0 < res.lfpr < 1  # the random cases exercise both outcomes
