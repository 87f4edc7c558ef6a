"""What every metric returns when its denominator is empty: one explicit, serialisable policy.

Segmentation metrics are ratios, and lesion masks are often empty (a healthy follow-up
with no new lesion, a model that predicts nothing). The literature does not agree on
the value of 0/0: MSSEG-2 reported no Dice at all for cases without new lesions, nnU-Net
reports NaN for Dice when both masks are empty, other codes return 1. Hiding that
choice inside each function makes tables incomparable, so every choice lives here,
defaults to NaN ("undefined", excluded from NaN-aware means), and is written next to the
results by callers (`EmptyPolicy.to_dict()`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

logger = logging.getLogger(__name__)

NAN = float("nan")
INF = float("inf")


def _to_json_value(value: float) -> float | str:
    """Finite floats stay floats; NaN/inf become "nan"/"inf"/"-inf" (valid JSON and YAML)."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


@dataclass(frozen=True)
class EmptyPolicy:
    """Value returned by each metric when it is undefined because a mask (or lesion set) is empty.

    Every field is a float; NaN (the default everywhere except `f1_both_zero`) means
    "undefined, leave it out of the averages". Typical alternatives are given per field.

    Voxel-wise (see `mslesion.evaluate.voxel`):
      dice_both_empty: Dice when prediction and reference are both empty (0/0). Option 1.0.
      jaccard_both_empty: Jaccard when both are empty (0/0). Option 1.0.
      ppv_pred_empty: precision when the prediction is empty (0/0). Options 0.0 or 1.0.
      tpr_ref_empty: sensitivity when the reference is empty (0/0). Option 1.0.
      specificity_no_negatives: specificity when the reference covers every voxel (0/0).
      rvd_ref_empty: (Vp - Vr)/Vr and |Vp - Vr|/Vr when Vr = 0. Option inf.

    Surface distances (see `mslesion.evaluate.surface`):
      surface_one_empty: HD, HD95 and ASSD when exactly one mask is empty. Option inf.
      surface_both_empty: the same when both masks are empty. Option 0.0.

    Lesion-wise (see `mslesion.evaluate.lesion`):
      ltpr_no_ref: ISBI LTPR when the reference has no lesion. Option 1.0.
      lfpr_no_pred: ISBI LFPR when the prediction has no lesion. Option 0.0.
      lesion_sensitivity_no_ref: MSSEG-2 lesion sensitivity with no reference lesion.
      lesion_ppv_no_pred: MSSEG-2 lesion PPV with no predicted lesion. Option 0.0.
      f1_both_zero: any F1 = 2PR/(P+R) when P = R = 0. Default 0.0 (the limit of the
        harmonic mean; both rates are defined and zero). F1 is NaN when P or R is NaN.

    Across cases (see `mslesion.evaluate.stats`):
      corr_undefined: Pearson correlation with fewer than 2 cases or zero variance.
    """

    dice_both_empty: float = NAN
    jaccard_both_empty: float = NAN
    ppv_pred_empty: float = NAN
    tpr_ref_empty: float = NAN
    specificity_no_negatives: float = NAN
    rvd_ref_empty: float = NAN
    surface_one_empty: float = NAN
    surface_both_empty: float = NAN
    ltpr_no_ref: float = NAN
    lfpr_no_pred: float = NAN
    lesion_sensitivity_no_ref: float = NAN
    lesion_ppv_no_pred: float = NAN
    f1_both_zero: float = 0.0
    corr_undefined: float = NAN

    def __post_init__(self) -> None:
        """Coerce every field to float; refuse anything that is not a real number."""
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise ValueError(f"EmptyPolicy.{f.name} must be a number, got {value!r}")
            try:
                object.__setattr__(self, f.name, float(value))
            except ValueError:
                raise ValueError(f"EmptyPolicy.{f.name} must be a number, got {value!r}") from None

    def to_dict(self) -> dict[str, float | str]:
        """JSON/YAML-safe dict: finite values as floats, NaN/inf as "nan"/"inf"/"-inf"."""
        return {name: _to_json_value(value) for name, value in asdict(self).items()}

    def as_dict(self) -> dict[str, float | str]:
        """Alias of `to_dict`."""
        return self.to_dict()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmptyPolicy:
        """Inverse of `to_dict` (unknown keys are an error, missing keys keep defaults)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown EmptyPolicy field(s): {', '.join(unknown)}")
        return cls(**data)

    @classmethod
    def perfect_when_both_empty(cls) -> EmptyPolicy:
        """A common alternative: two empty masks agree perfectly, one empty mask fails.

        Dice/Jaccard of two empty masks = 1, surface distance = 0 when both are empty and
        inf when one is, LTPR = 1 with no reference lesion, LFPR = 0 with no predicted
        lesion. Rates whose numerator is always zero (PPV, TPR) stay NaN.
        """
        return cls(
            dice_both_empty=1.0,
            jaccard_both_empty=1.0,
            surface_one_empty=INF,
            surface_both_empty=0.0,
            ltpr_no_ref=1.0,
            lfpr_no_pred=0.0,
        )


DEFAULT_POLICY = EmptyPolicy()


def f1_score(precision: float, recall: float, policy: EmptyPolicy = DEFAULT_POLICY) -> float:
    """Harmonic mean 2PR/(P+R); NaN if P or R is NaN; `policy.f1_both_zero` if both are 0."""
    if math.isnan(precision) or math.isnan(recall):
        return NAN
    if precision + recall == 0:
        return policy.f1_both_zero
    return 2.0 * precision * recall / (precision + recall)
