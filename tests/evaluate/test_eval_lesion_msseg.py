"""MSSEG-2 lesion detection (Anima animaSegPerfAnalyzer rule): one hand-built case per branch.

All cases use 1 mm isotropic voxels unless stated (minimum kept lesion = floor(3/1) + 1 = 4
voxels), face connectivity, alpha = 0.10, beta = 0.70, gamma = 0.65. Expected counts are
worked out in the comments. "outside" = voxels of a lesion outside every lesion of the
other mask; a lesion's "weight" = its overlap / the tested lesion's total overlap.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from mslesion.evaluate import (
    EmptyPolicy,
    anima_detected,
    anima_label_lesions,
    anima_min_lesion_voxels,
    msseg_lesion_detection,
    overlap_table,
)

ISO = (1.0, 1.0, 1.0)


def zline(x: int, y: int, z0: int, z1: int) -> list[tuple[int, int, int]]:
    """Voxels (x, y, z) for z0 <= z <= z1."""
    return [(x, y, z) for z in range(z0, z1 + 1)]


def block(xs: range, ys: range, zs: range) -> list[tuple[int, int, int]]:
    return [(x, y, z) for x in xs for y in ys for z in zs]


def counts(res) -> tuple[int, int, int, int]:
    return (res.n_ref, res.n_pred, res.detected_ref, res.detected_pred)


# ----------------------------------------------------------------- (a) minimum lesion size


def test_min_lesion_voxels_by_hand() -> None:
    assert anima_min_lesion_voxels(ISO) == 4  # floor(3 / 1) + 1
    assert anima_min_lesion_voxels((0.5, 0.5, 0.5)) == 25  # floor(3 / 0.125) + 1 = 24 + 1
    assert anima_min_lesion_voxels((1.0, 1.0, 3.0)) == 2  # floor(3 / 3) + 1
    assert anima_min_lesion_voxels((0.9, 0.9, 3.0)) == 2  # floor(3 / 2.43) = floor(1.23) = 1, + 1
    assert anima_min_lesion_voxels(ISO, min_volume_mm3=0.0) == 1
    with pytest.raises(ValueError):
        anima_min_lesion_voxels(ISO, min_volume_mm3=-1.0)


def test_min_size_at_1mm(mask) -> None:
    # ref: a 4-voxel line (kept) and a separate 3-voxel line (removed); pred = the same.
    voxels = zline(2, 2, 0, 3) + zline(6, 6, 0, 2)
    m = mask((10, 10, 10), voxels)
    labels, n = anima_label_lesions(m, ISO)
    assert n == 1 and (labels > 0).sum() == 4
    res = msseg_lesion_detection(m, m, ISO)
    assert counts(res) == (1, 1, 1, 1)
    assert (res.sensitivity, res.ppv, res.f1) == (1.0, 1.0, 1.0)
    assert res.pred_volume_mm3 == 4.0  # the removed 3-voxel lesion is not counted
    assert res.min_lesion_voxels == 4


def test_min_size_at_half_mm(mask) -> None:
    # 5x5x1 = 25 voxels (kept, exactly the minimum) and 4x6x1 = 24 voxels (removed).
    voxels = block(range(0, 5), range(0, 5), range(0, 1)) + block(range(0, 4), range(7, 13), range(0, 1))
    m = mask((16, 16, 4), voxels)
    spacing = (0.5, 0.5, 0.5)
    labels, n = anima_label_lesions(m, spacing)
    assert n == 1 and (labels > 0).sum() == 25
    res = msseg_lesion_detection(m, m, spacing)
    assert counts(res) == (1, 1, 1, 1)
    assert res.pred_volume_mm3 == pytest.approx(3.125)  # 25 * 0.125
    assert res.pred_volume_ml == pytest.approx(0.003125)


def test_removed_small_prediction_is_background(mask) -> None:
    # ref: 10-voxel line; pred: 3 voxels on it (removed) -> no predicted lesion, ref missed.
    ref = mask((12, 12, 12), zline(5, 5, 0, 9))
    pred = mask((12, 12, 12), zline(5, 5, 0, 2))
    res = msseg_lesion_detection(pred, ref, ISO)
    assert counts(res) == (1, 0, 0, 0)
    assert res.sensitivity == 0.0 and math.isnan(res.ppv) and math.isnan(res.f1)
    assert res.pred_volume_mm3 == 0.0


# -------------------------------------------------------------- (b) face connectivity


def test_edge_or_corner_touching_lesions_are_separate(mask) -> None:
    # L1 = (2,2,0..3), L2 = (3,3,0..3): edge-adjacent along their length;
    # L3 = (6,6,0..3), L4 = (7,7,4..7): (6,6,3) and (7,7,4) share only a corner.
    voxels = zline(2, 2, 0, 3) + zline(3, 3, 0, 3) + zline(6, 6, 0, 3) + zline(7, 7, 4, 7)
    m = mask((10, 10, 10), voxels)
    assert anima_label_lesions(m, ISO)[1] == 4
    assert anima_label_lesions(m, ISO, connectivity=26)[1] == 2
    res = msseg_lesion_detection(m, m, ISO)
    assert counts(res) == (4, 4, 4, 4)
    assert counts(msseg_lesion_detection(m, m, ISO, connectivity=26)) == (2, 2, 2, 2)


# ------------------------------------------------------------ (c) alpha: strict ">" 0.10

# A = (5,5,z) line; B = (5,7,0..3) (4 voxels, 2 voxels away from A in y: separate).
# P = {(5,5,0),(5,5,1)} (2 voxels of A) + bridge (5,6,0) (outside) + all of B: 7 voxels.
B = zline(5, 7, 0, 3)
P = zline(5, 5, 0, 1) + [(5, 6, 0)] + B


def test_overlap_exactly_alpha_is_not_detected(mask) -> None:
    # A = 20 voxels: TP_A / |A| = 2 / 20 = 0.10, not > 0.10 -> A not detected.
    # B: 4/4 > 0.1; P outside ratio 1/7 <= 0.7 -> weight 1 -> detected.
    # P (pred side): 6/7 > 0.1; refs by overlap: B (4), A (2). B uncovered 0/4 -> weight
    #   4/6 = 0.667 >= 0.65 -> stop -> detected.
    ref = mask((12, 12, 22), zline(5, 5, 0, 19) + B)
    pred = mask((12, 12, 22), P)
    res = msseg_lesion_detection(pred, ref, ISO)
    assert counts(res) == (2, 1, 1, 1)
    assert res.sensitivity == 0.5 and res.ppv == 1.0
    assert res.f1 == pytest.approx(2 / 3)  # 2 * 1 * 0.5 / 1.5
    # A smaller alpha detects A as well (P outside ratio 1/7, weight 2/2 = 1).
    assert msseg_lesion_detection(pred, ref, ISO, alpha=0.05).detected_ref == 2


def test_overlap_just_above_alpha_is_detected(mask) -> None:
    # A = 19 voxels: 2 / 19 = 0.105 > 0.10 -> FP test: P outside ratio 1/7 -> detected.
    ref = mask((12, 12, 22), zline(5, 5, 0, 18) + B)
    pred = mask((12, 12, 22), P)
    res = msseg_lesion_detection(pred, ref, ISO)
    assert counts(res) == (2, 1, 2, 1)
    assert (res.sensitivity, res.ppv, res.f1) == (1.0, 1.0, 1.0)


# --------------------------------------------- (d) beta: prediction mostly outside the lesion

R4 = [(8, 8, 8), (8, 9, 8), (9, 8, 8), (9, 9, 8)]  # 2x2x1 reference lesion


def test_huge_prediction_does_not_detect_small_lesion(mask) -> None:
    # pred = 5x5x2 = 50 voxels containing R4: outside ratio 46/50 = 0.92 > 0.7 -> R not detected.
    # pred side: 4/50 = 0.08, not > 0.1 -> not detected. P = R = 0 -> F1 = f1_both_zero = 0.
    ref = mask((20, 20, 20), R4)
    pred = mask((20, 20, 20), block(range(6, 11), range(6, 11), range(8, 10)))
    res = msseg_lesion_detection(pred, ref, ISO)
    assert counts(res) == (1, 1, 0, 0)
    assert (res.sensitivity, res.ppv, res.f1) == (0.0, 0.0, 0.0)
    assert math.isnan(msseg_lesion_detection(pred, ref, ISO, policy=EmptyPolicy(f1_both_zero=math.nan)).f1)


def test_outside_ratio_exactly_beta_is_allowed(mask) -> None:
    # pred = 3 voxels of R4 + 7 outside (stacked above): ratio 7/10 = 0.70, not > 0.70.
    # R: 3/4 > 0.1, weight 1 -> detected. Pred: 3/10 > 0.1; R uncovered 1/4 <= 0.7 -> detected.
    inside = R4[:3]
    outside = [(8, 8, 9), (8, 9, 9), (9, 8, 9), (9, 9, 9), (8, 8, 10), (8, 9, 10), (9, 8, 10)]
    ref = mask((20, 20, 20), R4)
    res = msseg_lesion_detection(mask((20, 20, 20), inside + outside), ref, ISO)
    assert counts(res) == (1, 1, 1, 1)
    # one more outside voxel: 8/11 = 0.727 > 0.7 -> R not detected; pred still detected.
    res = msseg_lesion_detection(mask((20, 20, 20), inside + outside + [(9, 9, 10)]), ref, ISO)
    assert counts(res) == (1, 1, 0, 1)
    assert (res.sensitivity, res.ppv, res.f1) == (0.0, 1.0, 0.0)


# ----------------------------------------- (e), (f) gamma: several predictions on one lesion

R10 = zline(10, 10, 0, 9)  # 10-voxel reference lesion


def test_big_good_prediction_reaches_gamma_first(mask) -> None:
    # P1 = (10,10,0..6): 7 voxels inside R. P2 = (10,10,9) + (11..14,10,9): 5 voxels, 4 outside
    # (0.8 > 0.7). R: TP = 8 of 10 (z = 7, 8 uncovered), 0.8 > 0.1. Sorted: P1 (7), P2 (1).
    # P1 outside 0 -> weight 7/8 = 0.875 >= 0.65 -> stop before P2 -> detected.
    # Pred side: P1 7/7 and P2 1/5 = 0.2 > 0.1; R uncovered 2/10 = 0.2 <= 0.7 -> both detected.
    p2 = [(10, 10, 9)] + [(x, 10, 9) for x in range(11, 15)]
    res = msseg_lesion_detection(mask((20, 20, 12), zline(10, 10, 0, 6) + p2), mask((20, 20, 12), R10), ISO)
    assert counts(res) == (1, 2, 1, 2)
    assert (res.sensitivity, res.ppv, res.f1) == (1.0, 1.0, 1.0)


def test_big_prediction_below_gamma_then_bad_one_fails(mask) -> None:
    # P1 = (10,10,0..4): 5 inside. P2 = (10,10,6..9) (4 inside) + (11,10,6..9) + (12,10,6..9)
    # + (13,10,6..7): 14 voxels, 10 outside (0.714 > 0.7). R: TP = 9 (z = 5 uncovered).
    # Sorted: P1 (5), P2 (4). P1 -> weight 5/9 = 0.556 < 0.65; k = 1 < 2 -> P2 ratio 0.714
    # > 0.7 -> exit -> R NOT detected.
    # Pred side: P2 4/14 = 0.29 > 0.1 and P1 5/5; R uncovered 1/10 -> both detected.
    p2 = zline(10, 10, 6, 9) + zline(11, 10, 6, 9) + zline(12, 10, 6, 9) + zline(13, 10, 6, 7)
    res = msseg_lesion_detection(mask((20, 20, 12), zline(10, 10, 0, 4) + p2), mask((20, 20, 12), R10), ISO)
    assert counts(res) == (1, 2, 0, 2)
    assert (res.sensitivity, res.ppv, res.f1) == (0.0, 1.0, 0.0)


# ------------------------------------------------------------- (g) the loop-bound quirk

R22 = zline(10, 10, 0, 21)  # 22 voxels
# a = z 0..5 (6 in), b = z 7..11 (5 in), c = z 13..16 (4 in) + 10 outside (10/14 = 0.714 > 0.7),
# d = z 18..20 (3 in) + 2 outside (0.4). Uncovered: z = 6, 12, 17, 21.
QUIRK_PRED = (
    zline(10, 10, 0, 5)
    + zline(10, 10, 7, 11)
    + zline(10, 10, 13, 16) + zline(11, 10, 13, 16) + zline(12, 10, 13, 16) + zline(13, 10, 13, 14)
    + zline(10, 10, 18, 20) + zline(11, 10, 18, 19)
)  # fmt: skip
Q = zline(2, 2, 0, 3)  # a far-away reference lesion that no prediction touches


def test_loop_bound_quirk_one_reference_lesion(mask) -> None:
    # R: TP = 18 of 22. Sorted a (6), b (5), c (4), d (3). a -> 6/18 = 0.333, b -> 11/18 = 0.611
    # < 0.65, but k = 2 is not < 2 (reference labels incl. background) -> loop ends, no exit
    # -> detected, although c (next) is mostly outside.
    # Pred side: every lesion overlaps R by > 10 %, R uncovered 4/22 = 0.18 -> 4 detected.
    res = msseg_lesion_detection(mask((24, 24, 24), QUIRK_PRED), mask((24, 24, 24), R22), ISO)
    assert counts(res) == (1, 4, 1, 4)
    assert (res.sensitivity, res.ppv) == (1.0, 1.0)


def test_loop_bound_quirk_depends_on_number_of_reference_lesions(mask) -> None:
    # Same, plus Q: 3 reference labels incl. background, so k = 2 is examined: c's outside
    # ratio 0.714 > 0.7 -> R NOT detected. Q has no overlap -> not detected. Pred side
    # unchanged (R first by overlap, uncovered 0.18, weight 1): 4 detected.
    res = msseg_lesion_detection(mask((24, 24, 24), QUIRK_PRED), mask((24, 24, 24), R22 + Q), ISO)
    assert counts(res) == (2, 4, 0, 4)
    assert (res.sensitivity, res.ppv, res.f1) == (0.0, 1.0, 0.0)


def test_anima_detected_on_hand_tables() -> None:
    # Row 1 = one reference lesion; columns = background + pred lesions a, b, c, d.
    # T[0, j] = outside voxels of pred j: c has 10 outside of 14.
    t = np.array([[1000, 0, 0, 10, 2], [4, 6, 5, 4, 3]])
    assert anima_detected(t, 0.10, 0.70, 0.65).tolist() == [True]  # quirk: stops at k = 2
    t3 = np.vstack([t, [4, 0, 0, 0, 0]])  # a second reference lesion with no overlap
    assert anima_detected(t3, 0.10, 0.70, 0.65).tolist() == [False, False]
    # Transposed (pred side): each pred lesion's only overlapping ref has 4/22 uncovered.
    assert anima_detected(t.T, 0.10, 0.70, 0.65).tolist() == [True, True, True, True]


def test_loop_stops_after_last_prediction() -> None:
    # One ref lesion (row 1, 10 voxels) covered by 10 one-voxel predictions, plus 10 one-voxel
    # unmatched ref lesions (rows 2..11), so the loop bound (12 labels) exceeds the 10
    # predictions. gamma = 1.0: ten weights of 1/10 add up to 0.9999999999999999 < 1, so
    # Anima's loop would read past its vector; here it stops there -> detected.
    n = 10
    t = np.zeros((2 + n, 1 + n), dtype=np.int64)
    t[1, 1:] = 1
    t[2:, 0] = 1
    assert anima_detected(t, 0.10, 0.70, 1.0).tolist() == [True] + [False] * n


# ----------------------------------------------------- (h) the PPV side is not symmetric


def test_prediction_inside_a_large_lesion_is_not_a_detection(mask) -> None:
    # R = 20-voxel line; P = 4 voxels inside it. Ref side: 4/20 = 0.2 > 0.1, P outside 0
    # -> detected. Pred side: 4/4 > 0.1 but R is 16/20 = 0.8 > 0.7 uncovered -> exit
    # -> P not detected: sensitivity 1, PPV 0, F1 0.
    res = msseg_lesion_detection(mask((12, 12, 22), zline(10, 10, 0, 3)), mask((12, 12, 22), zline(10, 10, 0, 19)), ISO)
    assert counts(res) == (1, 1, 1, 0)
    assert (res.sensitivity, res.ppv, res.f1) == (1.0, 0.0, 0.0)


# ------------------------------------------------------------------------ empty masks


def test_reference_without_lesions(mask) -> None:
    # Spacing 1x1x2 (2 mm^3 voxels): minimum floor(1.5) + 1 = 2 voxels; two 4-voxel lines kept.
    pred = mask((10, 10, 10), zline(1, 1, 0, 3) + zline(5, 5, 0, 3))
    ref = mask((10, 10, 10), [])
    spacing = (1.0, 1.0, 2.0)
    res = msseg_lesion_detection(pred, ref, spacing)
    assert counts(res) == (0, 2, 0, 0)
    assert math.isnan(res.sensitivity) and res.ppv == 0.0 and math.isnan(res.f1)
    assert res.pred_volume_mm3 == 16.0 and res.pred_volume_ml == pytest.approx(0.016)  # 8 x 2 mm^3
    res1 = msseg_lesion_detection(pred, ref, spacing, policy=EmptyPolicy(lesion_sensitivity_no_ref=1.0))
    assert (res1.sensitivity, res1.f1) == (1.0, 0.0)


def test_prediction_without_lesions(mask) -> None:
    res = msseg_lesion_detection(mask((12, 12, 12), []), mask((12, 12, 12), R10), ISO)
    assert counts(res) == (1, 0, 0, 0)
    assert res.sensitivity == 0.0 and math.isnan(res.ppv) and math.isnan(res.f1)
    res0 = msseg_lesion_detection(mask((12, 12, 12), []), mask((12, 12, 12), R10), ISO, policy=EmptyPolicy(lesion_ppv_no_pred=0.0))
    assert (res0.ppv, res0.f1) == (0.0, 0.0)


def test_both_without_lesions(mask) -> None:
    e = mask((8, 8, 8), [])
    res = msseg_lesion_detection(e, e, ISO)
    assert counts(res) == (0, 0, 0, 0)
    assert math.isnan(res.sensitivity) and math.isnan(res.ppv) and math.isnan(res.f1)
    assert res.pred_volume_mm3 == 0.0
    policy = EmptyPolicy(lesion_sensitivity_no_ref=1.0, lesion_ppv_no_pred=1.0)
    assert msseg_lesion_detection(e, e, ISO, policy=policy).f1 == 1.0


# --------------------------------------------------------------------- misc / checks


@pytest.mark.parametrize("kwargs", [{"alpha": 0.0}, {"beta": 1.5}, {"gamma": -0.1}])
def test_parameters_checked_like_anima(kwargs) -> None:
    e = np.zeros((4, 4, 4), dtype=bool)
    with pytest.raises(ValueError):
        msseg_lesion_detection(e, e, ISO, **kwargs)


def test_spacing_must_match_dimensions() -> None:
    e = np.zeros((4, 4, 4), dtype=bool)
    with pytest.raises(ValueError, match="spacing"):
        msseg_lesion_detection(e, e, (1.0, 1.0))


def test_overlap_table_by_hand(mask) -> None:
    ref_labels = np.array([[[0, 1, 1, 2]]])
    pred_labels = np.array([[[1, 1, 0, 2]]])
    t = overlap_table(ref_labels, 2, pred_labels, 2)
    # voxel (ref, pred): (0,1), (1,1), (1,0), (2,2)
    assert t.tolist() == [[0, 1, 0], [1, 1, 0], [0, 0, 1]]


@pytest.mark.parametrize(("seed", "spacing"), [(0, (1.0, 1.0, 1.0)), (1, (0.9, 1.1, 1.3)), (2, (0.5, 0.5, 0.5))])
def test_labels_match_itk(blob_pair, seed: int, spacing) -> None:
    """Same labels, same numbering as itk ConnectedComponent + RelabelComponent (Anima's filters)."""
    sitk = pytest.importorskip("SimpleITK")
    pred, _ = blob_pair(seed)
    ours, n = anima_label_lesions(pred, spacing)
    # numpy (x, y, z) -> ITK index (x, y, z): GetImageFromArray expects (z, y, x).
    img = sitk.GetImageFromArray(pred.astype(np.uint8).transpose(2, 1, 0))
    img.SetSpacing(spacing)
    relabelled = sitk.RelabelComponent(sitk.ConnectedComponent(img, False), anima_min_lesion_voxels(spacing))
    theirs = sitk.GetArrayFromImage(relabelled).transpose(2, 1, 0)
    assert n > 5
    np.testing.assert_array_equal(ours, theirs)
