"""Volume correlation, ISBI hybrid score, consistency index and the paired Wilcoxon test."""

from __future__ import annotations

import math

import numpy as np
import pytest
from lesion_metrics import metrics as lm
from scipy import stats

from mslesion.evaluate import (
    EmptyPolicy,
    consistency_index,
    isbi_hybrid_score,
    paired_wilcoxon,
    volume_correlation,
)


def test_volume_correlation_by_hand() -> None:
    # x = [1,2,3], y = [2,4,7]: dx = [-1,0,1], dy = [-7/3,-1/3,8/3];
    # sum dx*dy = 5, sum dx^2 = 2, sum dy^2 = 114/9 -> r = 5 / sqrt(228/9) = 15 / sqrt(228)
    assert volume_correlation([1, 2, 3], [2, 4, 7]) == pytest.approx(0.9933992677987828)
    assert volume_correlation([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_volume_correlation_undefined_cases() -> None:
    assert math.isnan(volume_correlation([1.0], [2.0]))
    assert math.isnan(volume_correlation([], []))
    assert math.isnan(volume_correlation([0.1, 0.1, 0.1], [1, 2, 3]))  # zero variance
    assert volume_correlation([1.0], [2.0], EmptyPolicy(corr_undefined=0.0)) == 0.0
    # a NaN pair is dropped: what is left is the hand case above
    assert volume_correlation([1, 2, 3, math.nan], [2, 4, 7, 1]) == pytest.approx(0.9933992677987828)
    with pytest.raises(ValueError):
        volume_correlation([1, 2], [1, 2, 3])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_volume_correlation_matches_pearsonr(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref = rng.gamma(2.0, 5.0, size=30)
    pred = ref * rng.normal(1.0, 0.3, size=30) + rng.normal(0, 1, size=30)
    assert volume_correlation(pred, ref) == pytest.approx(stats.pearsonr(pred, ref).statistic, rel=1e-12)


def test_isbi_hybrid_score_by_hand() -> None:
    # 0.6/8 + 0.7/8 + (1 - 0.2)/4 + 0.5/4 + 0.9/4 = 0.075 + 0.0875 + 0.2 + 0.125 + 0.225
    assert isbi_hybrid_score(0.6, 0.7, 0.2, 0.5, 0.9) == pytest.approx(0.7125)
    assert isbi_hybrid_score(1, 1, 0, 1, 1) == pytest.approx(1.0)
    assert math.isnan(isbi_hybrid_score(0.6, 0.7, 0.2, 0.5, math.nan))


def test_isbi_hybrid_score_vs_lesion_metrics() -> None:
    # lesion_metrics drops Corr and rescales the remaining 3/4 of the weight by 4/3.
    ours_without_corr = isbi_hybrid_score(0.6, 0.7, 0.2, 0.5, 0.0)
    assert lm.isbi15_score_from_metrics(0.6, 0.7, 0.2, 0.5, reweighted=True) == pytest.approx(ours_without_corr * 4 / 3)
    assert lm.isbi15_score_from_metrics(0.6, 0.7, 0.2, 0.5, reweighted=False) == pytest.approx(ours_without_corr)


def test_consistency_index_by_hand() -> None:
    a = np.zeros((4, 4, 4), dtype=bool)
    b = np.zeros((4, 4, 4), dtype=bool)
    a[0, 0, :3] = True  # 3 voxels
    b[0, 0, 1:] = True  # 3 voxels, 2 shared -> 2*2 / 6
    assert consistency_index(a, b) == pytest.approx(2 / 3)
    assert math.isnan(consistency_index(a & False, b & False))
    assert consistency_index(a & False, b & False, EmptyPolicy(dice_both_empty=1.0)) == 1.0


def test_wilcoxon_by_hand() -> None:
    # differences [1, -2, 3, 4, 5]: ranks 1..5, W- = 2, W+ = 13 -> statistic min = 2.
    # exact null: subsets of {1..5} with rank sum <= 2 are {}, {1}, {2}: 3 of 32,
    # two-sided p = 2 * 3/32 = 0.1875. Median difference = 3.
    res = paired_wilcoxon([1, -2, 3, 4, 5], [0, 0, 0, 0, 0])
    assert res.statistic == 2.0
    assert res.p_value == pytest.approx(0.1875)
    assert (res.n, res.n_dropped, res.median_difference, res.zero_method) == (5, 0, 3.0, "wilcox")
    assert res.as_dict()["p_value"] == res.p_value and set(res.as_dict()) >= {"statistic", "n", "n_dropped"}


def test_wilcoxon_drops_nan_pairs() -> None:
    a = [1, -2, math.nan, 3, 4, 5, 7]
    b = [0, 0, 1, 0, 0, 0, math.nan]
    res = paired_wilcoxon(a, b)
    assert (res.n, res.n_dropped) == (5, 2)
    assert (res.statistic, res.p_value) == pytest.approx((2.0, 0.1875))


def test_wilcoxon_undefined() -> None:
    res = paired_wilcoxon([0.5, 0.7], [0.5, 0.7])
    assert math.isnan(res.statistic) and math.isnan(res.p_value)
    assert (res.n, res.median_difference) == (2, 0.0)
    res = paired_wilcoxon([math.nan], [1.0])
    assert (res.n, res.n_dropped) == (0, 1) and math.isnan(res.p_value) and math.isnan(res.median_difference)
    with pytest.raises(ValueError):
        paired_wilcoxon([1, 2], [1])


@pytest.mark.parametrize("zero_method", ["wilcox", "pratt", "zsplit"])
@pytest.mark.parametrize("seed", [0, 1])
def test_wilcoxon_matches_scipy(seed: int, zero_method: str) -> None:
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.4, 0.9, size=25).round(2)
    b = (a + rng.normal(0.03, 0.05, size=25)).round(2)
    b[:3] = a[:3]  # zero differences
    a_nan = np.append(a, [math.nan, 0.5])
    b_nan = np.append(b, [0.4, math.nan])
    res = paired_wilcoxon(a_nan, b_nan, zero_method=zero_method)
    ref = stats.wilcoxon(a, b, zero_method=zero_method, alternative="two-sided")
    assert res.statistic == pytest.approx(ref.statistic)
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-12)
    assert (res.n, res.n_dropped) == (25, 2)
    assert res.median_difference == pytest.approx(np.median(a - b))
