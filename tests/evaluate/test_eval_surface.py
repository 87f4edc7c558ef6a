"""Surface distances: hand-computed anisotropic cases, empty masks, medpy cross-checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from medpy.metric import binary as mb

from mslesion.evaluate import (
    EmptyPolicy,
    assd,
    assd_mean_of_means,
    directed_surface_distances,
    hausdorff_distance,
    hd95,
    surface_metrics,
    surface_voxels,
)

# Thin sets (no voxel has all 6 face neighbours inside) are all surface, so distances
# are plain point-to-point distances that can be computed by hand.
SHAPE = (10, 10, 10)
PRED = [(2, 2, 2), (2, 2, 3), (2, 2, 4)]  # a, b, e
REF = [(2, 2, 6), (4, 2, 2)]  # c, d
SPACING = (2.0, 1.0, 0.5)
# pred -> ref (mm):
#   a(2,2,2): to c dz=4*0.5=2.0; to d dx=2*2=4.0                    -> 2.0
#   b(2,2,3): to c dz=1.5;       to d sqrt(4^2+0.5^2)=4.031         -> 1.5
#   e(2,2,4): to c dz=1.0;       to d sqrt(4^2+1^2)=4.123           -> 1.0
# ref -> pred:
#   c(2,2,6): to a 2.0, b 1.5, e 1.0                                -> 1.0
#   d(4,2,2): to a 4.0, b 4.031, e 4.123                            -> 4.0
# pooled = [2, 1.5, 1, 1, 4]: HD = 4, ASSD(pooled) = 9.5 / 5 = 1.9,
# mean of directed means (medpy) = (4.5/3 + 5/2) / 2 = (1.5 + 2.5) / 2 = 2.0,
# HD95 = numpy percentile of sorted [1, 1, 1.5, 2, 4] at 0.95 * 4 = 3.8 -> 2 + 0.8 * (4 - 2) = 3.6


@pytest.fixture
def thin(mask):
    return mask(SHAPE, PRED), mask(SHAPE, REF)


def test_directed_distances_by_hand(thin) -> None:
    d = directed_surface_distances(*thin, SPACING)
    assert d is not None
    assert sorted(d.pred_to_ref) == pytest.approx([1.0, 1.5, 2.0])
    assert sorted(d.ref_to_pred) == pytest.approx([1.0, 4.0])


def test_hd_hd95_assd_by_hand(thin) -> None:
    p, r = thin
    assert hausdorff_distance(p, r, SPACING) == pytest.approx(4.0)
    assert hd95(p, r, SPACING) == pytest.approx(3.6)
    assert assd(p, r, SPACING) == pytest.approx(1.9)
    assert assd_mean_of_means(p, r, SPACING) == pytest.approx(2.0)
    assert surface_metrics(p, r, SPACING) == pytest.approx({"hd_mm": 4.0, "hd95_mm": 3.6, "assd_mm": 1.9})


def test_spacing_is_respected(thin) -> None:
    # Isotropic 1 mm: b(2,2,3) -> nearest ref is d(4,2,2) at sqrt(2^2 + 1^2) = sqrt(5), the largest.
    p, r = thin
    assert hausdorff_distance(p, r, (1.0, 1.0, 1.0)) == pytest.approx(math.sqrt(5))


def test_pooled_assd_vs_medpy_definitions(thin) -> None:
    p, r = thin
    # medpy >= 0.5 assd pools both directions (loli/medpy#108): 1.9 as by hand above.
    assert mb.assd(p, r, voxelspacing=SPACING, connectivity=1) == pytest.approx(1.9)
    # medpy <= 0.4 averaged the two directed means: (asd(P,R) + asd(R,P)) / 2 = (1.5 + 2.5) / 2 = 2.0.
    old = (mb.asd(p, r, SPACING, 1) + mb.asd(r, p, SPACING, 1)) / 2
    assert old == pytest.approx(2.0)
    assert assd(p, r, SPACING) == pytest.approx(1.9)
    assert assd_mean_of_means(p, r, SPACING) == pytest.approx(2.0)


def test_surface_of_a_cube_excludes_its_centre() -> None:
    inside = np.zeros((7, 7, 7), dtype=bool)
    inside[2:5, 2:5, 2:5] = True
    surf = surface_voxels(inside)
    assert surf.sum() == 26 and not surf[3, 3, 3]
    # Voxels outside the image count as background: a full 3x3x3 image has the same surface.
    assert surface_voxels(np.ones((3, 3, 3), dtype=bool)).sum() == 26


def test_shifted_cubes_by_hand(mask) -> None:
    # pred = 3x3x3 cube x,y,z in 1..3; ref = the same cube shifted +1 along x; spacing x = 2 mm.
    p = np.zeros((8, 8, 8), dtype=bool)
    r = np.zeros((8, 8, 8), dtype=bool)
    p[1:4, 1:4, 1:4] = True
    r[2:5, 1:4, 1:4] = True
    # pred surface = 26 voxels (all but (2,2,2)). To the ref surface (all ref but (3,2,2)):
    #   x=1 layer: 9 voxels, nearest is (2,y,z) at 2 mm        -> 9 x 2.0
    #   x=2 layer: 8 surface voxels, all on the ref surface   -> 8 x 0
    #   x=3 layer: 8 on the ref surface -> 0; (3,2,2) is the ref centre, nearest (3,1,2) at 1 mm
    # pred->ref sum = 18 + 1 = 19 over 26; by symmetry ref->pred also 19 over 26.
    # ASSD = 38 / 52 = 0.7307692307692307; HD = 2; pooled has 32 zeros, 2 ones, 18 twos:
    # HD95 at position 0.95 * 51 = 48.45 lies among the twos -> 2.0
    spacing = (2.0, 1.0, 1.0)
    assert assd(p, r, spacing) == pytest.approx(0.7307692307692307)
    assert hausdorff_distance(p, r, spacing) == pytest.approx(2.0)
    assert hd95(p, r, spacing) == pytest.approx(2.0)


def test_mask_touching_the_image_border_matches_medpy() -> None:
    p = np.zeros((6, 6, 6), dtype=bool)
    r = np.zeros((6, 6, 6), dtype=bool)
    p[0:3, 0:4, 2:6] = True
    r[1:4, 0:3, 3:6] = True
    spacing = (0.7, 1.3, 2.1)
    assert hd95(p, r, spacing) == pytest.approx(mb.hd95(p, r, voxelspacing=spacing, connectivity=1))
    assert hausdorff_distance(p, r, spacing) == pytest.approx(mb.hd(p, r, voxelspacing=spacing, connectivity=1))


def test_bad_spacing_raises(thin) -> None:
    with pytest.raises(ValueError, match="spacing"):
        hd95(*thin, (1.0, 1.0))
    with pytest.raises(ValueError, match="spacing"):
        hd95(*thin, (1.0, -1.0, 1.0))


# ----------------------------------------------------------------------------- empty masks


@pytest.mark.parametrize("which", ["pred", "ref"])
def test_one_mask_empty(mask, which: str) -> None:
    full, empty = mask(SHAPE, PRED), mask(SHAPE, [])
    p, r = (empty, full) if which == "pred" else (full, empty)
    assert directed_surface_distances(p, r, SPACING) is None
    for fn in (hausdorff_distance, hd95, assd, assd_mean_of_means):
        assert math.isnan(fn(p, r, SPACING)), fn.__name__
        assert fn(p, r, SPACING, EmptyPolicy(surface_one_empty=math.inf)) == math.inf
        assert math.isnan(fn(p, r, SPACING, EmptyPolicy(surface_both_empty=0.0)))
    values = surface_metrics(p, r, SPACING, EmptyPolicy(surface_one_empty=math.inf)).values()
    assert list(values) == [math.inf] * 3


def test_both_masks_empty(mask) -> None:
    p = r = mask(SHAPE, [])
    for fn in (hausdorff_distance, hd95, assd, assd_mean_of_means):
        assert math.isnan(fn(p, r, SPACING)), fn.__name__
        assert fn(p, r, SPACING, EmptyPolicy(surface_both_empty=0.0)) == 0.0
        assert math.isnan(fn(p, r, SPACING, EmptyPolicy(surface_one_empty=math.inf)))
    assert surface_metrics(p, r, SPACING, EmptyPolicy.perfect_when_both_empty()) == {
        "hd_mm": 0.0,
        "hd95_mm": 0.0,
        "assd_mm": 0.0,
    }


# ------------------------------------------------------------------------- medpy cross-check


@pytest.mark.parametrize(("seed", "spacing"), [(0, (1.0, 1.0, 1.0)), (1, (0.5, 0.5, 3.0)), (2, (1.2, 0.9, 2.5)), (3, (3.0, 1.0, 1.0))])
def test_matches_medpy(blob_pair, seed: int, spacing: tuple[float, float, float]) -> None:
    p, r = blob_pair(seed)
    assert hd95(p, r, spacing) == pytest.approx(mb.hd95(p, r, voxelspacing=spacing, connectivity=1), rel=1e-12)
    assert hausdorff_distance(p, r, spacing) == pytest.approx(mb.hd(p, r, voxelspacing=spacing, connectivity=1), rel=1e-12)
    d = directed_surface_distances(p, r, spacing)
    assert d is not None
    pooled = (d.pred_to_ref.sum() + d.ref_to_pred.sum()) / (d.pred_to_ref.size + d.ref_to_pred.size)
    assert assd(p, r, spacing) == pytest.approx(pooled, rel=1e-12)
    assert assd(p, r, spacing) == pytest.approx(mb.assd(p, r, voxelspacing=spacing, connectivity=1), rel=1e-12)
    # The old medpy definition (mean of the two directed means) is a different number here:
    old = (mb.asd(p, r, spacing, 1) + mb.asd(r, p, spacing, 1)) / 2
    assert old == pytest.approx((d.pred_to_ref.mean() + d.ref_to_pred.mean()) / 2, rel=1e-12)
    assert assd_mean_of_means(p, r, spacing) == pytest.approx(old, rel=1e-12)
    assert d.pred_to_ref.size != d.ref_to_pred.size
    assert assd(p, r, spacing) != pytest.approx(old, rel=1e-9)
