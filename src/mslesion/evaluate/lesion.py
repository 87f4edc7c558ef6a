"""Lesion-wise (connected-component) detection metrics: ISBI 2015 and MSSEG-2 (Anima) rules.

Two published rules decide whether a lesion is "detected"; they give different numbers
on the same masks, so both are implemented and named after their source:

* ISBI 2015 (Carass et al., NeuroImage 148, 2017): a reference lesion is a true positive
  when at least one predicted voxel overlaps it; a predicted lesion is a false positive
  when it touches no reference voxel. 26-connectivity by default, no size filter (as
  lesion_metrics' `ltpr`/`lfdr`, which label with skimage's full connectivity).
* MSSEG 2016 / MSSEG-2 (Commowick et al., Sci. Rep. 8, 2018; MSSEG-2 2021): the rule of
  Anima's `animaSegPerfAnalyzer` with its command-line defaults, replicated from its C++
  source (Inria-Empenn/Anima-Public, animaSegPerfCAnalyzer.cxx): face connectivity,
  lesions below 3 mm^3 removed, a minimum overlap (alpha) and a false-positive-ratio test
  (beta, gamma). See `msseg_lesion_detection`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mslesion.components import label_components, min_voxels_above
from mslesion.evaluate.conventions import DEFAULT_POLICY, EmptyPolicy, f1_score
from mslesion.evaluate.voxel import as_mask_pair, voxel_volume_mm3

logger = logging.getLogger(__name__)


def _hit_labels(labels: np.ndarray, other: np.ndarray) -> int:
    """Number of distinct non-zero labels that have at least one voxel inside `other`."""
    hit = np.unique(labels[other])
    return int(np.count_nonzero(hit))


@dataclass(frozen=True)
class IsbiLesionResult:
    """ISBI 2015 lesion-wise rates with the counts they come from.

    ltpr = tp_ref / n_ref, lfpr = fp_pred / n_pred, lppv = 1 - lfpr,
    f1 = 2 * lppv * ltpr / (lppv + ltpr).
    """

    ltpr: float
    lfpr: float
    lppv: float
    f1: float
    n_ref: int
    n_pred: int
    tp_ref: int
    fp_pred: int


def isbi_lesion_metrics(
    pred: np.ndarray,
    ref: np.ndarray,
    connectivity: int = 26,
    policy: EmptyPolicy = DEFAULT_POLICY,
) -> IsbiLesionResult:
    """ISBI 2015 lesion TPR, FPR and F1 (Carass et al. 2017), any-voxel overlap rule.

    LTPR = reference lesions overlapped by >= 1 predicted voxel / reference lesions
    (no reference lesion -> `policy.ltpr_no_ref`); LFPR = predicted lesions touching no
    reference voxel / predicted lesions (none -> `policy.lfpr_no_pred`).
    """
    p, r = as_mask_pair(pred, ref)
    ref_labels, n_ref = label_components(r, connectivity)
    pred_labels, n_pred = label_components(p, connectivity)
    tp_ref = _hit_labels(ref_labels, p)
    fp_pred = n_pred - _hit_labels(pred_labels, r)
    ltpr = tp_ref / n_ref if n_ref else policy.ltpr_no_ref
    lfpr = fp_pred / n_pred if n_pred else policy.lfpr_no_pred
    lppv = 1.0 - lfpr
    return IsbiLesionResult(
        ltpr=ltpr,
        lfpr=lfpr,
        lppv=lppv,
        f1=f1_score(lppv, ltpr, policy),
        n_ref=n_ref,
        n_pred=n_pred,
        tp_ref=tp_ref,
        fp_pred=fp_pred,
    )


# ---------------------------------------------------------------- MSSEG-2 / Anima rule

ANIMA_MIN_VOLUME_MM3 = 3.0  # animaSegPerfAnalyzer -v MinLesionVolume default
ANIMA_ALPHA = 0.10  # -x MinOverlapRatio default
ANIMA_BETA = 0.70  # -y MaxFalsePositiveRatio default
ANIMA_GAMMA = 0.65  # -z MaxFalsePositiveRatioModerator default
ANIMA_CONNECTIVITY = 6  # itk::ConnectedComponentImageFilter default (FullyConnected off)


def anima_min_lesion_voxels(spacing: Sequence[float], min_volume_mm3: float = ANIMA_MIN_VOLUME_MM3) -> int:
    """Smallest lesion size kept by Anima, in voxels: floor(min_volume / voxel volume) + 1.

    The "+ 1" makes kept lesions strictly larger than `min_volume_mm3` when it is a whole
    number of voxels (1 mm iso: 4 voxels; 0.5 mm iso: 25 voxels).
    """
    return min_voxels_above(min_volume_mm3, voxel_volume_mm3(spacing))


def _first_voxel_in_itk_order(labels: np.ndarray, n: int) -> np.ndarray:
    """Index of each label's first voxel when the first array axis varies fastest (ITK raster order)."""
    flat = labels.ravel(order="F")
    values, first = np.unique(flat, return_index=True)
    out = np.zeros(n, dtype=np.int64)
    positive = values > 0
    out[values[positive] - 1] = first[positive]
    return out


def anima_label_lesions(
    mask: np.ndarray,
    spacing: Sequence[float],
    min_volume_mm3: float = ANIMA_MIN_VOLUME_MM3,
    connectivity: int = ANIMA_CONNECTIVITY,
) -> tuple[np.ndarray, int]:
    """Lesion labels as Anima builds them: components, small ones removed, relabelled by size.

    Mirrors itk::ConnectedComponentImageFilter + RelabelComponentImageFilter with
    SetMinimumObjectSize(anima_min_lesion_voxels(...)): components with fewer voxels
    become background; the rest are numbered 1..n by decreasing size, ties by the first
    voxel in ITK raster order (first array axis fastest, i.e. arrays in nibabel's x,y,z
    order). The label order only matters for ties in the detection rule's sort.
    """
    if len(tuple(spacing)) != np.ndim(mask):
        raise ValueError(f"spacing {tuple(spacing)} does not match a {np.ndim(mask)}D mask")
    labels, n = label_components(mask, connectivity)
    if n == 0:
        return labels, 0
    min_voxels = anima_min_lesion_voxels(spacing, min_volume_mm3)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    order = np.lexsort((_first_voxel_in_itk_order(labels, n), -sizes))
    order = order[sizes[order] >= min_voxels]
    lut = np.zeros(n + 1, dtype=np.int32)
    lut[order + 1] = np.arange(1, order.size + 1, dtype=np.int32)
    logger.debug("anima labels: %d components, %d kept (>= %d voxels)", n, order.size, min_voxels)
    return lut[labels], int(order.size)


def overlap_table(ref_labels: np.ndarray, n_ref: int, pred_labels: np.ndarray, n_pred: int) -> np.ndarray:
    """T[i, j] = number of voxels with reference label i and predicted label j (0 = background)."""
    index = ref_labels.astype(np.int64).ravel() * (n_pred + 1) + pred_labels.ravel()
    counts = np.bincount(index, minlength=(n_ref + 1) * (n_pred + 1))
    return counts.reshape(n_ref + 1, n_pred + 1)


def _false_positive_ratio_test(table: np.ndarray, col_sum: np.ndarray, i: int, beta: float, gamma: float) -> bool:
    """Anima's `falsePositiveRatioTester` for row lesion i of `table` (rows = lesions under test).

    Column lesions are visited by decreasing overlap with i (stable: ties keep label order,
    which is what libstdc++'s std::sort does for <= 16 elements). A column lesion whose
    fraction outside every row lesion, T[0, j] / C[j], exceeds beta stops the test
    (lesion not detected); otherwise its share T[i, j] / TP_i is added until the shares
    reach gamma. Loop bound quirk, kept on purpose: Anima stops when k reaches the number
    of ROW labels including background (`k < pi_iNbLabelsRef`), not the number of column
    lesions; so with one reference lesion at most two predicted lesions are ever examined.
    We also stop when k passes the last column lesion (out of bounds in the C++ code).
    """
    overlaps = table[i, 1:]
    order = np.argsort(-overlaps, kind="stable") + 1
    tp = float(overlaps.sum())
    n_row_labels = table.shape[0]
    k, weight, stop = 0, 0.0, False
    while weight < gamma and k < n_row_labels and k < order.size and not stop:
        j = order[k]
        stop = float(table[0, j]) / float(col_sum[j]) > beta
        if not stop:
            weight += float(table[i, j]) / tp
        k += 1
    return not stop


def anima_detected(table: np.ndarray, alpha: float, beta: float, gamma: float) -> np.ndarray:
    """Detected flag of each row lesion (rows 1..n) of an overlap table, Anima's `getTruePositiveLesions`.

    Row lesion i is detected when TP_i / (TP_i + FN_i) > alpha (strict), with
    TP_i = sum_{j>=1} T[i, j] and FN_i = T[i, 0], and it passes the false-positive
    ratio test. Pass `table.T` to score the column lesions (the PPV side).
    """
    detected = np.zeros(table.shape[0] - 1, dtype=bool)
    col_sum = table.sum(axis=0)
    for i in range(1, table.shape[0]):
        tp, fn = float(table[i, 1:].sum()), float(table[i, 0])
        if tp + fn > 0 and tp / (tp + fn) > alpha:
            detected[i - 1] = _false_positive_ratio_test(table, col_sum, i, beta, gamma)
    return detected


@dataclass(frozen=True)
class MssegDetectionResult:
    """MSSEG-2 lesion detection scores with their counts (lesions after the size filter).

    pred_volume_mm3 is the volume of the kept predicted lesions: with an empty reference
    MSSEG-2 ranked methods on the number and volume of predicted lesions, not on Dice.
    """

    sensitivity: float
    ppv: float
    f1: float
    n_ref: int
    n_pred: int
    detected_ref: int
    detected_pred: int
    pred_volume_mm3: float
    min_lesion_voxels: int

    @property
    def pred_volume_ml(self) -> float:
        """Kept predicted lesion volume in mL."""
        return self.pred_volume_mm3 / 1000.0


def _check_ratio(name: str, value: float) -> None:
    """Anima's own parameter check: 0 < value <= 1."""
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {value}")


def msseg_lesion_detection(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing: Sequence[float],
    *,
    alpha: float = ANIMA_ALPHA,
    beta: float = ANIMA_BETA,
    gamma: float = ANIMA_GAMMA,
    min_volume_mm3: float = ANIMA_MIN_VOLUME_MM3,
    connectivity: int = ANIMA_CONNECTIVITY,
    policy: EmptyPolicy = DEFAULT_POLICY,
) -> MssegDetectionResult:
    """MSSEG-2 lesion sensitivity, PPV and F1: Anima `animaSegPerfAnalyzer -l` with its defaults.

    Lesions of both masks (non-zero = lesion) come from `anima_label_lesions`; reference
    lesions are scored with `anima_detected(T)`, predicted lesions with
    `anima_detected(T.T)` (roles swapped). sensitivity = detected ref / n_ref,
    ppv = detected pred / n_pred, f1 = 2PR/(P+R). Anima divides by zero when either mask
    has no lesion; here n_ref = 0 gives `policy.lesion_sensitivity_no_ref`, n_pred = 0
    gives `policy.lesion_ppv_no_pred`, and F1 follows `f1_score`.
    """
    for name, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        _check_ratio(name, value)
    p, r = as_mask_pair(pred, ref)
    ref_labels, n_ref = anima_label_lesions(r, spacing, min_volume_mm3, connectivity)
    pred_labels, n_pred = anima_label_lesions(p, spacing, min_volume_mm3, connectivity)
    table = overlap_table(ref_labels, n_ref, pred_labels, n_pred)
    detected_ref = int(anima_detected(table, alpha, beta, gamma).sum())
    detected_pred = int(anima_detected(table.T, alpha, beta, gamma).sum())
    sens = detected_ref / n_ref if n_ref else policy.lesion_sensitivity_no_ref
    ppv = detected_pred / n_pred if n_pred else policy.lesion_ppv_no_pred
    return MssegDetectionResult(
        sensitivity=sens,
        ppv=ppv,
        f1=f1_score(ppv, sens, policy),
        n_ref=n_ref,
        n_pred=n_pred,
        detected_ref=detected_ref,
        detected_pred=detected_pred,
        pred_volume_mm3=float(table[:, 1:].sum()) * voxel_volume_mm3(spacing),
        min_lesion_voxels=anima_min_lesion_voxels(spacing, min_volume_mm3),
    )
