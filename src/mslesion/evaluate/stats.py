"""Across-case statistics: volume correlation, ISBI 2015 hybrid score, consistency, Wilcoxon test."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as sstats

from mslesion.evaluate.conventions import DEFAULT_POLICY, EmptyPolicy
from mslesion.evaluate.voxel import dice

logger = logging.getLogger(__name__)


def volume_correlation(pred_volumes: Sequence[float], ref_volumes: Sequence[float], policy: EmptyPolicy = DEFAULT_POLICY) -> float:
    """Pearson correlation of predicted vs reference lesion volumes across cases (ISBI 2015 "Corr").

    Pairs with a NaN are dropped. Fewer than 2 pairs or a zero variance ->
    `policy.corr_undefined` (NaN by default).
    """
    x, y = np.asarray(pred_volumes, dtype=float), np.asarray(ref_volumes, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"volume lists differ in shape: {x.shape} vs {y.shape}")
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        logger.debug("volume correlation undefined (%d cases or zero variance)", x.size)
        return policy.corr_undefined
    x, y = x - x.mean(), y - y.mean()
    r = float(np.dot(x, y)) / math.sqrt(float(np.dot(x, x)) * float(np.dot(y, y)))
    return min(max(r, -1.0), 1.0)


def isbi_hybrid_score(dice_: float, ppv: float, lfpr: float, ltpr: float, corr: float) -> float:
    """ISBI 2015 raw score: Dice/8 + PPV/8 + (1 - LFPR)/4 + LTPR/4 + Corr/4 (Carass et al. 2017).

    Inputs are the mean per-case Dice, PPV, LFPR and LTPR and the across-case volume
    correlation (as reported by DeepLesionBrain, Kamraoui et al. 2022). This is the raw
    score in [-0.25, 1], not the challenge's rater-normalised score (90 = inter-rater).
    lesion_metrics' `isbi15_score` omits Corr and multiplies the rest by 4/3.
    """
    return dice_ / 8 + ppv / 8 + (1 - lfpr) / 4 + ltpr / 4 + corr / 4


def consistency_index(pred_a: np.ndarray, pred_b: np.ndarray, policy: EmptyPolicy = DEFAULT_POLICY) -> float:
    """Dice between two predictions of the same case (e.g. scan-rescan or two runs); reproducibility."""
    return dice(pred_a, pred_b, policy)


@dataclass(frozen=True)
class WilcoxonResult:
    """Paired two-sided Wilcoxon signed-rank test of scores_a vs scores_b.

    n: pairs used; n_dropped: pairs dropped because either score is NaN;
    median_difference: median of (a - b) over the used pairs.
    """

    statistic: float
    p_value: float
    n: int
    n_dropped: int
    median_difference: float
    zero_method: str

    def as_dict(self) -> dict[str, float | int | str]:
        """Plain dict of the fields (for JSON reports)."""
        return asdict(self)


def paired_wilcoxon(scores_a: Sequence[float], scores_b: Sequence[float], zero_method: str = "wilcox") -> WilcoxonResult:
    """Paired two-sided Wilcoxon signed-rank test between two methods' per-case scores.

    Uses scipy.stats.wilcoxon (method "auto": exact null distribution for small samples
    without ties or zeros, normal approximation otherwise). zero_method: "wilcox" (scipy's
    default, Wilcoxon 1945) discards zero differences before ranking, "pratt" ranks them
    and then drops their ranks (Pratt 1959), "zsplit" splits their ranks between signs.
    No usable pair, or all differences zero, -> statistic and p-value NaN.
    """
    a, b = np.asarray(scores_a, dtype=float), np.asarray(scores_b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"score lists differ in shape: {a.shape} vs {b.shape}")
    keep = ~(np.isnan(a) | np.isnan(b))
    n_dropped = int(a.size - keep.sum())
    if n_dropped:
        logger.warning("Wilcoxon test: dropped %d of %d pairs with a NaN score", n_dropped, a.size)
    diff = a[keep] - b[keep]
    median = float(np.median(diff)) if diff.size else float("nan")
    if not np.any(diff != 0):
        logger.warning("Wilcoxon test undefined: %d pairs, no non-zero difference", diff.size)
        stat = p = float("nan")
    else:
        res = sstats.wilcoxon(a[keep], b[keep], zero_method=zero_method, alternative="two-sided")
        stat, p = float(res.statistic), float(res.pvalue)
    return WilcoxonResult(stat, p, int(diff.size), n_dropped, median, zero_method)
