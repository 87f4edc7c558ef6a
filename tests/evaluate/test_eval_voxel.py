"""Voxel-wise metrics: hand-computed values, every empty case, and medpy cross-checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from medpy.metric import binary as mb

from mslesion.evaluate import (
    EmptyPolicy,
    absolute_volume_difference_ml,
    avd_isbi,
    confusion,
    dice,
    jaccard,
    ppv,
    relative_volume_difference,
    specificity,
    tpr,
    volume_ml,
    voxel_metrics,
    voxel_volume_mm3,
)

SHAPE = (5, 5, 5)  # 125 voxels
PRED = [(1, 1, 1), (1, 1, 2), (1, 1, 3)]  # 3 voxels
REF = [(1, 1, 2), (1, 1, 3), (1, 1, 4), (2, 2, 2)]  # 4 voxels
# TP = 2 ((1,1,2), (1,1,3)), FP = 1, FN = 2, TN = 125 - (2 + 1 + 2) = 120
SPACING = (1.0, 2.0, 3.0)  # voxel volume 6 mm^3


@pytest.fixture
def pair(mask):
    return mask(SHAPE, PRED), mask(SHAPE, REF)


def test_confusion_by_hand(pair) -> None:
    c = confusion(*pair)
    assert (c.tp, c.fp, c.fn, c.tn) == (2, 1, 2, 120)


def test_overlap_metrics_by_hand(pair) -> None:
    p, r = pair
    assert dice(p, r) == pytest.approx(0.5714285714285714)  # 2*2 / (3+4) = 4/7
    assert jaccard(p, r) == pytest.approx(0.4)  # 2 / 5
    assert ppv(p, r) == pytest.approx(0.6666666666666666)  # 2 / 3
    assert tpr(p, r) == pytest.approx(0.5)  # 2 / 4
    assert specificity(p, r) == pytest.approx(0.9917355371900827)  # 120 / 121


def test_volumes_by_hand_anisotropic(pair) -> None:
    p, r = pair
    vv = voxel_volume_mm3(SPACING)
    assert vv == 6.0  # 1 * 2 * 3
    assert volume_ml(p, vv) == pytest.approx(0.018)  # 3 * 6 mm^3 = 18 mm^3
    assert volume_ml(r, vv) == pytest.approx(0.024)  # 4 * 6 = 24 mm^3
    assert absolute_volume_difference_ml(p, r, vv) == pytest.approx(0.006)  # |18 - 24| mm^3
    assert relative_volume_difference(p, r) == pytest.approx(-0.25)  # (18 - 24) / 24
    assert avd_isbi(p, r) == pytest.approx(0.25)  # |18 - 24| / 24


def test_voxel_metrics_row_matches_single_functions(pair) -> None:
    p, r = pair
    row = voxel_metrics(p, r, 6.0)
    assert row["dice"] == pytest.approx(4 / 7)
    assert row["jaccard"] == pytest.approx(0.4)
    assert row["ppv"] == pytest.approx(2 / 3)
    assert row["tpr"] == pytest.approx(0.5)
    assert row["specificity"] == pytest.approx(120 / 121)
    assert (row["vol_pred_ml"], row["vol_ref_ml"]) == pytest.approx((0.018, 0.024))
    assert row["avd_ml"] == pytest.approx(0.006)
    assert (row["rvd"], row["avd_isbi"]) == pytest.approx((-0.25, 0.25))


def test_non_boolean_inputs_mean_non_zero(mask) -> None:
    labels = np.zeros(SHAPE, dtype=np.int16)
    labels[1, 1, 2] = 3
    probs = np.zeros(SHAPE)
    probs[1, 1, 2] = 0.2
    assert dice(labels, probs) == 1.0


def test_shape_mismatch_names_both_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(5, 5, 5\).*\(5, 5, 4\)"):
        dice(np.zeros((5, 5, 5)), np.zeros((5, 5, 4)))


def test_bad_voxel_volume_and_spacing() -> None:
    with pytest.raises(ValueError):
        voxel_volume_mm3((1.0, 0.0, 1.0))
    with pytest.raises(ValueError):
        volume_ml(np.ones((2, 2, 2)), -1.0)


# ----------------------------------------------------------------------------- empty masks


def test_pred_empty(mask) -> None:
    p, r = mask(SHAPE, []), mask(SHAPE, REF)
    assert dice(p, r) == 0.0
    assert jaccard(p, r) == 0.0
    assert math.isnan(ppv(p, r))
    assert ppv(p, r, EmptyPolicy(ppv_pred_empty=0.0)) == 0.0
    assert ppv(p, r, EmptyPolicy(ppv_pred_empty=1.0)) == 1.0
    assert tpr(p, r) == 0.0
    assert specificity(p, r) == 1.0  # 121 / 121
    assert relative_volume_difference(p, r) == -1.0  # (0 - 4) / 4
    assert avd_isbi(p, r) == 1.0
    assert absolute_volume_difference_ml(p, r, 6.0) == pytest.approx(0.024)


def test_ref_empty(mask) -> None:
    p, r = mask(SHAPE, PRED), mask(SHAPE, [])
    assert dice(p, r) == 0.0
    assert jaccard(p, r) == 0.0
    assert ppv(p, r) == 0.0
    assert math.isnan(tpr(p, r))
    assert tpr(p, r, EmptyPolicy(tpr_ref_empty=1.0)) == 1.0
    assert specificity(p, r) == pytest.approx(0.976)  # 122 / 125
    assert math.isnan(relative_volume_difference(p, r))
    assert math.isnan(avd_isbi(p, r))
    assert relative_volume_difference(p, r, EmptyPolicy(rvd_ref_empty=math.inf)) == math.inf
    assert avd_isbi(p, r, EmptyPolicy(rvd_ref_empty=math.inf)) == math.inf
    assert absolute_volume_difference_ml(p, r, 6.0) == pytest.approx(0.018)


def test_both_empty(mask) -> None:
    p, r = mask(SHAPE, []), mask(SHAPE, [])
    for fn in (dice, jaccard, ppv, tpr, relative_volume_difference, avd_isbi):
        assert math.isnan(fn(p, r)), fn.__name__
    assert dice(p, r, EmptyPolicy(dice_both_empty=1.0)) == 1.0
    assert jaccard(p, r, EmptyPolicy(jaccard_both_empty=1.0)) == 1.0
    assert ppv(p, r, EmptyPolicy(ppv_pred_empty=1.0)) == 1.0
    assert tpr(p, r, EmptyPolicy(tpr_ref_empty=1.0)) == 1.0
    assert relative_volume_difference(p, r, EmptyPolicy(rvd_ref_empty=0.0)) == 0.0
    assert specificity(p, r) == 1.0  # 125 / 125
    assert absolute_volume_difference_ml(p, r, 6.0) == 0.0
    row = voxel_metrics(p, r, 6.0, EmptyPolicy(dice_both_empty=1.0))
    assert row["dice"] == 1.0 and math.isnan(row["jaccard"])


def test_no_negatives_specificity() -> None:
    full = np.ones(SHAPE, dtype=bool)
    assert math.isnan(specificity(full, full))
    assert specificity(full, full, EmptyPolicy(specificity_no_negatives=1.0)) == 1.0


# ------------------------------------------------------------------------- medpy cross-check


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_matches_medpy(blob_pair, seed: int) -> None:
    p, r = blob_pair(seed)
    assert dice(p, r) == pytest.approx(mb.dc(p, r), rel=1e-12)
    assert jaccard(p, r) == pytest.approx(mb.jc(p, r), rel=1e-12)
    assert ppv(p, r) == pytest.approx(mb.precision(p, r), rel=1e-12)
    assert tpr(p, r) == pytest.approx(mb.recall(p, r), rel=1e-12)
    assert specificity(p, r) == pytest.approx(mb.specificity(p, r), rel=1e-12)
    assert relative_volume_difference(p, r) == pytest.approx(mb.ravd(p, r), rel=1e-12)
