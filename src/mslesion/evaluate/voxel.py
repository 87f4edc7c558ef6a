"""Voxel-wise overlap and volume metrics between a predicted and a reference lesion mask.

Definitions follow the MS lesion challenges (ISBI 2015: Carass et al., NeuroImage 148,
2017; MICCAI 2016 / MSSEG-2: Commowick et al., Sci. Rep. 8, 2018 and 2021): voxels are
counted in a 2x2 confusion table (TP, FP, FN, TN), any non-zero voxel is lesion.
Undefined ratios (0/0) return the value chosen in `EmptyPolicy`, never a silent 0 or 1.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mslesion.evaluate.conventions import DEFAULT_POLICY, EmptyPolicy

logger = logging.getLogger(__name__)


def as_mask_pair(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both inputs as boolean arrays (non-zero = lesion); ValueError naming both shapes if unequal."""
    p, r = np.asarray(pred), np.asarray(ref)
    if p.shape != r.shape:
        raise ValueError(f"prediction shape {p.shape} differs from reference shape {r.shape}")
    return p != 0, r != 0


def voxel_volume_mm3(spacing: Sequence[float]) -> float:
    """Volume of one voxel in mm^3: the product of the (positive, finite) spacings."""
    values = [float(s) for s in spacing]
    if not values or any(not math.isfinite(s) or s <= 0 for s in values):
        raise ValueError(f"voxel spacing must be positive and finite, got {tuple(spacing)}")
    return math.prod(values)


@dataclass(frozen=True)
class Confusion:
    """Voxel counts: tp (both), fp (pred only), fn (ref only), tn (neither)."""

    tp: int
    fp: int
    fn: int
    tn: int


def confusion(pred: np.ndarray, ref: np.ndarray) -> Confusion:
    """Count TP, FP, FN, TN voxels of two equal-shape masks."""
    p, r = as_mask_pair(pred, ref)
    tp = int(np.count_nonzero(p & r))
    n_p, n_r = int(np.count_nonzero(p)), int(np.count_nonzero(r))
    fp, fn = n_p - tp, n_r - tp
    return Confusion(tp=tp, fp=fp, fn=fn, tn=int(p.size) - tp - fp - fn)


def _ratio(num: int, den: int, undefined: float) -> float:
    """num/den as float, or `undefined` when den == 0."""
    return undefined if den == 0 else num / den


def _dice(c: Confusion, policy: EmptyPolicy) -> float:
    return _ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn, policy.dice_both_empty)


def _jaccard(c: Confusion, policy: EmptyPolicy) -> float:
    return _ratio(c.tp, c.tp + c.fp + c.fn, policy.jaccard_both_empty)


def _ppv(c: Confusion, policy: EmptyPolicy) -> float:
    return _ratio(c.tp, c.tp + c.fp, policy.ppv_pred_empty)


def _tpr(c: Confusion, policy: EmptyPolicy) -> float:
    return _ratio(c.tp, c.tp + c.fn, policy.tpr_ref_empty)


def _specificity(c: Confusion, policy: EmptyPolicy) -> float:
    return _ratio(c.tn, c.tn + c.fp, policy.specificity_no_negatives)


def _rvd(c: Confusion, policy: EmptyPolicy) -> float:
    v_p, v_r = c.tp + c.fp, c.tp + c.fn
    return _ratio(v_p - v_r, v_r, policy.rvd_ref_empty)


def dice(pred: np.ndarray, ref: np.ndarray, policy: EmptyPolicy = DEFAULT_POLICY) -> float:
    """Dice (Dice 1945; Sorensen 1948): 2|P∩R| / (|P|+|R|).

    Both empty -> `policy.dice_both_empty` (NaN by default). One empty -> 0.
    """
    return _dice(confusion(pred, ref), policy)


def jaccard(pred: np.ndarray, ref: np.ndarray, policy: EmptyPolicy = DEFAULT_POLICY) -> float:
    """Jaccard index / IoU (Jaccard 1912): |P∩R| / |P∪R|. Both empty -> `policy.jaccard_both_empty`."""
    return _jaccard(confusion(pred, ref), policy)


def ppv(pred: np.ndarray, ref: np.ndarray, policy: EmptyPolicy = DEFAULT_POLICY) -> float:
    """Positive predictive value / precision: TP / (TP+FP) (ISBI 2015 "PPV").

    Empty prediction -> `policy.ppv_pred_empty`.
    """
    return _ppv(confusion(pred, ref), policy)


precision = ppv


def tpr(pred: np.ndarray, ref: np.ndarray, policy: EmptyPolicy = DEFAULT_POLICY) -> float:
    """True positive rate / sensitivity / recall: TP / (TP+FN) (ISBI 2015 "TPR").

    Empty reference -> `policy.tpr_ref_empty`.
    """
    return _tpr(confusion(pred, ref), policy)


sensitivity = tpr


def specificity(pred: np.ndarray, ref: np.ndarray, policy: EmptyPolicy = DEFAULT_POLICY) -> float:
    """True negative rate: TN / (TN+FP). Reference covering every voxel -> `policy.specificity_no_negatives`.

    Close to 1 for any lesion mask (lesions are ~0.1% of the image); reported for
    completeness (MSSEG 2016), not to rank methods.
    """
    return _specificity(confusion(pred, ref), policy)


def volume_ml(mask: np.ndarray, voxel_volume: float) -> float:
    """Lesion volume in mL: number of non-zero voxels x voxel volume (mm^3) / 1000."""
    return _volume_ml(int(np.count_nonzero(mask)), voxel_volume)


def _volume_ml(n_voxels: int, voxel_volume: float) -> float:
    """n_voxels x voxel volume (mm^3) in mL; ValueError for a non-positive voxel volume."""
    if not math.isfinite(voxel_volume) or voxel_volume <= 0:
        raise ValueError(f"voxel volume must be positive and finite, got {voxel_volume}")
    return n_voxels * float(voxel_volume) / 1000.0


def absolute_volume_difference_ml(pred: np.ndarray, ref: np.ndarray, voxel_volume: float) -> float:
    """|Vp - Vr| in mL (voxel volume in mm^3). Always defined (0 when both are empty)."""
    p, r = as_mask_pair(pred, ref)
    return abs(volume_ml(p, voxel_volume) - volume_ml(r, voxel_volume))


def relative_volume_difference(pred: np.ndarray, ref: np.ndarray, policy: EmptyPolicy = DEFAULT_POLICY) -> float:
    """Signed relative volume difference (Vp - Vr) / Vr (as medpy `ravd`; > 0 = over-segmentation).

    Voxel volume cancels out. Empty reference -> `policy.rvd_ref_empty`.
    """
    return _rvd(confusion(pred, ref), policy)


def avd_isbi(pred: np.ndarray, ref: np.ndarray, policy: EmptyPolicy = DEFAULT_POLICY) -> float:
    """ISBI 2015 absolute volume difference |Vp - Vr| / Vr (Carass et al. 2017), unitless.

    Empty reference -> `policy.rvd_ref_empty`.
    """
    value = relative_volume_difference(pred, ref, policy)
    return abs(value) if not math.isnan(value) else value


def voxel_metrics(pred: np.ndarray, ref: np.ndarray, voxel_volume: float, policy: EmptyPolicy = DEFAULT_POLICY) -> dict[str, float]:
    """All voxel-wise metrics of one case from a single confusion count (volumes in mL)."""
    c = confusion(pred, ref)
    vol_pred = _volume_ml(c.tp + c.fp, voxel_volume)
    vol_ref = _volume_ml(c.tp + c.fn, voxel_volume)
    rvd = _rvd(c, policy)
    return {
        "dice": _dice(c, policy),
        "jaccard": _jaccard(c, policy),
        "ppv": _ppv(c, policy),
        "tpr": _tpr(c, policy),
        "specificity": _specificity(c, policy),
        "vol_pred_ml": vol_pred,
        "vol_ref_ml": vol_ref,
        "avd_ml": abs(vol_pred - vol_ref),
        "rvd": rvd,
        "avd_isbi": abs(rvd) if not math.isnan(rvd) else rvd,
    }
