"""One flat row of metrics per case, and NaN-aware summaries of many rows (overall and per site).

Rows are plain dicts of str -> float | int | bool so they go straight into CSV/JSON.
Undefined values are NaN (see `EmptyPolicy`); summaries ignore them and report how many
cases each statistic is based on.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from numbers import Number
from typing import Any

import numpy as np

from mslesion.evaluate.conventions import DEFAULT_POLICY, EmptyPolicy
from mslesion.evaluate.lesion import (
    ANIMA_ALPHA,
    ANIMA_BETA,
    ANIMA_CONNECTIVITY,
    ANIMA_GAMMA,
    ANIMA_MIN_VOLUME_MM3,
    MssegDetectionResult,
    isbi_lesion_metrics,
    msseg_lesion_detection,
)
from mslesion.evaluate.stats import isbi_hybrid_score, volume_correlation
from mslesion.evaluate.surface import surface_metrics
from mslesion.evaluate.voxel import as_mask_pair, voxel_metrics, voxel_volume_mm3

logger = logging.getLogger(__name__)

Row = dict[str, float | int | bool]


def evaluate_case(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing: tuple[float, float, float],
    *,
    connectivity: int = 26,
    policy: EmptyPolicy = DEFAULT_POLICY,
    msseg_alpha: float = ANIMA_ALPHA,
    msseg_beta: float = ANIMA_BETA,
    msseg_gamma: float = ANIMA_GAMMA,
    msseg_min_volume_mm3: float = ANIMA_MIN_VOLUME_MM3,
    msseg_connectivity: int = ANIMA_CONNECTIVITY,
) -> Row:
    """All per-case metrics of a predicted vs reference lesion mask (spacing in mm).

    `connectivity` is for the ISBI lesion-wise counts; the msseg_* arguments are the
    Anima detection parameters (defaults = MSSEG-2). Columns: see `CASE_COLUMNS`.
    """
    p, r = as_mask_pair(pred, ref)
    row: Row = {"ref_empty": not r.any(), "pred_empty": not p.any()}
    row.update(voxel_metrics(p, r, voxel_volume_mm3(spacing), policy))
    row.update(surface_metrics(p, r, spacing, policy))
    row.update(_isbi_columns(p, r, connectivity, policy))
    msseg = msseg_lesion_detection(
        p,
        r,
        spacing,
        alpha=msseg_alpha,
        beta=msseg_beta,
        gamma=msseg_gamma,
        min_volume_mm3=msseg_min_volume_mm3,
        connectivity=msseg_connectivity,
        policy=policy,
    )
    row.update(_msseg_columns(msseg))
    logger.debug("case: dice=%s, %s/%s lesions", row["dice"], row["n_ref_lesions"], row["n_pred_lesions"])
    return row


def _isbi_columns(p: np.ndarray, r: np.ndarray, connectivity: int, policy: EmptyPolicy) -> Row:
    """ISBI 2015 lesion-wise columns."""
    res = isbi_lesion_metrics(p, r, connectivity, policy)
    return {
        "n_ref_lesions": res.n_ref,
        "n_pred_lesions": res.n_pred,
        "isbi_tp_ref_lesions": res.tp_ref,
        "isbi_fp_pred_lesions": res.fp_pred,
        "ltpr": res.ltpr,
        "lfpr": res.lfpr,
        "lesion_f1_isbi": res.f1,
    }


def _msseg_columns(res: MssegDetectionResult) -> Row:
    """MSSEG-2 (Anima) detection columns."""
    return {
        "msseg_n_ref": res.n_ref,
        "msseg_n_pred": res.n_pred,
        "msseg_detected_ref": res.detected_ref,
        "msseg_detected_pred": res.detected_pred,
        "msseg_lesion_sensitivity": res.sensitivity,
        "msseg_lesion_ppv": res.ppv,
        "msseg_lesion_f1": res.f1,
        "msseg_pred_volume_ml": res.pred_volume_ml,
    }


CASE_COLUMNS: tuple[str, ...] = (
    "ref_empty", "pred_empty",
    "dice", "jaccard", "ppv", "tpr", "specificity",
    "vol_pred_ml", "vol_ref_ml", "avd_ml", "rvd", "avd_isbi",
    "hd_mm", "hd95_mm", "assd_mm",
    "n_ref_lesions", "n_pred_lesions", "isbi_tp_ref_lesions", "isbi_fp_pred_lesions",
    "ltpr", "lfpr", "lesion_f1_isbi",
    "msseg_n_ref", "msseg_n_pred", "msseg_detected_ref", "msseg_detected_pred",
    "msseg_lesion_sensitivity", "msseg_lesion_ppv", "msseg_lesion_f1", "msseg_pred_volume_ml",
)  # fmt: skip


# ---------------------------------------------------------------------------- summaries


def _is_number(value: Any) -> bool:
    """True for ints, floats, bools and numpy numbers (what a metric column holds)."""
    return isinstance(value, (Number, np.bool_)) and not isinstance(value, complex)


def describe(values: Iterable[float]) -> dict[str, float | int]:
    """mean, sd (ddof=1), median and n of the non-NaN values (NaN statistics when too few)."""
    x = np.asarray([float(v) for v in values], dtype=float)
    x = x[~np.isnan(x)]
    n = int(x.size)
    return {
        "mean": float(np.mean(x)) if n else math.nan,
        "sd": float(np.std(x, ddof=1)) if n >= 2 else math.nan,
        "median": float(np.median(x)) if n else math.nan,
        "n": n,
    }


def _metric_columns(rows: Sequence[Mapping[str, Any]], group_key: str | None) -> list[str]:
    """Numeric columns in first-seen order, the group key excluded."""
    columns: dict[str, None] = {}
    for row in rows:
        for key, value in row.items():
            if key != group_key and _is_number(value):
                columns.setdefault(key, None)
    return list(columns)


def _metric_stats(rows: Sequence[Mapping[str, Any]], columns: list[str]) -> dict[str, dict[str, float | int]]:
    """describe() of every column over the rows (missing values count as NaN)."""
    return {c: describe(float(row.get(c, math.nan)) for row in rows) for c in columns}


def _scores(rows: Sequence[Mapping[str, Any]], stats: Mapping[str, Mapping[str, Any]], policy: EmptyPolicy) -> dict[str, Any]:
    """Across-case CORR (vol_pred_ml vs vol_ref_ml) and ISBI hybrid score from the mean metrics."""
    corr = volume_correlation(
        [float(row.get("vol_pred_ml", math.nan)) for row in rows],
        [float(row.get("vol_ref_ml", math.nan)) for row in rows],
        policy,
    )
    mean = {k: stats[k]["mean"] if k in stats else math.nan for k in ("dice", "ppv", "lfpr", "ltpr")}
    hybrid = isbi_hybrid_score(mean["dice"], mean["ppv"], mean["lfpr"], mean["ltpr"], corr)
    return {"n_cases": len(rows), "corr": corr, "hybrid_score": hybrid}


def summarise(
    rows: Sequence[Mapping[str, Any]],
    group_key: str | None = "site",
    policy: EmptyPolicy = DEFAULT_POLICY,
) -> dict[str, Any]:
    """Summarise per-case rows overall and per group (e.g. site).

    Returns {"n_cases", "overall": {metric: {mean, sd, median, n}}, "corr", "hybrid_score",
    "group_key", f"per_{group_key}": {group: {metric: {...}}},
    f"per_{group_key}_scores": {group: {n_cases, corr, hybrid_score}}, "empty_policy"}.
    Statistics: mean, sd (ddof=1), median and n over the non-NaN values of every numeric
    column (bools count as 0/1). corr: Pearson of vol_pred_ml vs vol_ref_ml across cases;
    hybrid_score: ISBI 2015 raw score from the NaN-aware mean Dice, PPV, LFPR, LTPR and corr.
    Rows missing `group_key` are grouped under "unknown"; group_key=None skips grouping.
    """
    columns = _metric_columns(rows, group_key)
    overall = _metric_stats(rows, columns)
    result: dict[str, Any] = {"overall": overall, **_scores(rows, overall, policy), "group_key": group_key}
    if group_key is not None:
        groups: dict[str, list[Mapping[str, Any]]] = {}
        for row in rows:
            groups.setdefault(str(row.get(group_key, "unknown")), []).append(row)
        if any(group_key not in row for row in rows):
            logger.warning("some rows have no %r; grouped under 'unknown'", group_key)
        per_group = {g: _metric_stats(rs, columns) for g, rs in groups.items()}
        result[f"per_{group_key}"] = per_group
        result[f"per_{group_key}_scores"] = {g: _scores(groups[g], per_group[g], policy) for g in groups}
    result["empty_policy"] = policy.to_dict()
    return result
