"""`mslesion evaluate` and `mslesion compare`: pair masks, compute metrics, write and print them.

Outputs of `evaluate`: `OUT/metrics.csv` (one row per case) and `OUT/summary.json`
(mean, sd, median per metric, overall and per site, CORR and hybrid score across cases,
and the conventions used: connectivity, Anima parameters, empty-mask rules).
"""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from mslesion.errors import InputError
from mslesion.io.atomic import write_csv_atomic, write_json_atomic
from mslesion.io.matching import MaskEntry, collect_masks, pair_by_case_id

logger = logging.getLogger(__name__)

# Columns shown for `--task new-lesions`: the MSSEG-2 challenge's table.
MSSEG2_COLUMNS = ("msseg_lesion_f1", "dice", "msseg_lesion_sensitivity", "msseg_lesion_ppv", "msseg_n_pred", "msseg_pred_volume_ml")
LESION_COLUMNS = ("dice", "ppv", "tpr", "ltpr", "lfpr", "lesion_f1_isbi", "msseg_lesion_f1", "hd95_mm", "assd_mm", "avd_ml")


def _policy(empty_dice: str):
    from mslesion.evaluate.conventions import EmptyPolicy

    if empty_dice not in ("nan", "one"):
        raise InputError(None, f"--empty-dice must be 'nan' or 'one', not {empty_dice!r}")
    return EmptyPolicy(dice_both_empty=math.nan if empty_dice == "nan" else 1.0)


def _binary(entry: MaskEntry) -> np.ndarray:
    """A reference mask as booleans: any non-zero label is lesion."""
    return np.asarray(entry.volume.array) > 0


def _predicted(entry: MaskEntry, threshold: float | None) -> np.ndarray:
    """A predicted mask as booleans: values > `threshold`, or, without one, a mask that must hold only 0 and 1.

    A probability map given as a mask would otherwise be scored thresholded at > 0, silently.
    """
    data = np.asarray(entry.volume.array)
    if threshold is not None:
        return data > threshold
    if data.dtype != bool:
        other = (data != 0) & (data != 1)
        if other.any():
            example = float(data[other].flat[0])
            raise InputError(
                entry.volume.path,
                f"is not a binary mask ({int(other.sum())} voxels hold values other than 0 and 1, "
                f"e.g. {example:g}); give a lesion mask, or --threshold to binarise a probability map",
            )
    return data > 0


def evaluate_pairs(
    pairs: list[tuple[MaskEntry, MaskEntry]], connectivity: int = 26, empty_dice: str = "nan", threshold: float | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per-case metric rows and the summary for already paired (prediction, reference) masks.

    Predictions must be binary (0/1) unless `threshold` is given (then lesion = value > threshold).
    """
    from mslesion.evaluate.case_metrics import evaluate_case, summarise

    if connectivity not in (6, 18, 26):
        raise InputError(None, f"--connectivity must be 6, 18 or 26, not {connectivity}")
    if threshold is not None and not (0.0 <= threshold < 1.0):
        raise InputError(None, f"--threshold must be in [0, 1), not {threshold}")
    policy = _policy(empty_dice)
    rows = []
    for pred, ref in pairs:
        if not pred.volume.same_grid(ref.volume):
            raise InputError(pred.volume.path, f"grid {pred.volume.shape} differs from reference {ref.volume.path} {ref.volume.shape}")
        metrics = evaluate_case(_predicted(pred, threshold), _binary(ref), ref.volume.spacing, connectivity=connectivity, policy=policy)
        rows.append({"case_id": ref.case_id, "site": ref.site or "", **metrics})
        logger.debug("evaluated %s", ref.case_id)
    summary = summarise(rows, group_key="site")
    summary["conventions"] = {
        "lesion_connectivity": connectivity,
        "empty_masks": policy.as_dict(),
        "prediction": "binary mask" if threshold is None else f"value > {threshold}",
    }
    return rows, summary


def _format_table(summary: dict[str, Any], columns: tuple[str, ...], title: str) -> str:
    lines = [title, f"{'metric':28s} {'mean':>9s} {'sd':>9s} {'median':>9s} {'n':>4s}"]
    for name in columns:
        stats = summary["overall"].get(name)
        if stats is None:
            continue
        values = [stats.get(k) for k in ("mean", "sd", "median")]
        text = " ".join("      nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:9.4f}" for v in values)
        lines.append(f"{name:28s} {text} {stats.get('n', 0):4d}")
    for key in ("corr", "hybrid_score"):
        if key in summary:
            value = summary[key]
            lines.append(f"{key:28s} {'nan' if value is None or value != value else f'{value:.4f}'}")
    sites = {s: v for s, v in summary.get("per_site", {}).items() if s}
    for site, stats in sites.items():
        dice = stats.get("dice", {}).get("mean")
        lines.append(f"site {site}: n={stats.get('dice', {}).get('n', 0)} dice mean={dice if dice is None else round(dice, 4)}")
    return "\n".join(lines)


def run_evaluation(
    pred: Path,
    ref: Path,
    out: Path,
    connectivity: int = 26,
    task: str = "lesions",
    empty_dice: str = "nan",
    threshold: float | None = None,
) -> str:
    """Evaluate predictions against references, write metrics.csv and summary.json, return the printed table."""
    if task not in ("lesions", "new-lesions"):
        raise InputError(None, f"--task must be 'lesions' or 'new-lesions', not {task!r}")
    if out.exists() and not out.is_dir():
        raise InputError(out, "is a file; --out must be a folder")
    pairs = pair_by_case_id(collect_masks(pred), collect_masks(ref))
    rows, summary = evaluate_pairs(pairs, connectivity=connectivity, empty_dice=empty_dice, threshold=threshold)
    summary["task"] = task
    write_csv_atomic(out / "metrics.csv", rows, list(rows[0]))
    write_json_atomic(out / "summary.json", summary)
    columns = MSSEG2_COLUMNS if task == "new-lesions" else LESION_COLUMNS
    title = f"{len(rows)} case(s); lesion connectivity {connectivity}; MSSEG-2 rule: Anima defaults"
    return _format_table(summary, columns, title)


def _read_scores(path: Path, metric: str) -> dict[str, float]:
    if not path.is_file():
        raise InputError(path, "metrics file not found")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or "case_id" not in reader.fieldnames:
            raise InputError(path, "not a metrics.csv (no case_id column)")
        if metric not in reader.fieldnames:
            raise InputError(path, f"no column {metric!r}")
        scores = {}
        for row in reader:
            value = row[metric]
            try:
                scores[row["case_id"]] = math.nan if value in ("", "nan", None) else float(value)
            except ValueError:
                raise InputError(path, f"{metric} of case {row['case_id']} is not a number ({value!r})") from None
        return scores


def run_comparison(a: Path, b: Path, metric: str = "dice", out: Path | None = None) -> str:
    """Paired Wilcoxon test of `metric` between two metrics.csv files, matched by case id."""
    from mslesion.evaluate.stats import paired_wilcoxon

    scores_a, scores_b = _read_scores(a, metric), _read_scores(b, metric)
    common = sorted(set(scores_a) & set(scores_b))
    if not common:
        raise InputError(b, f"no case id in common with {a}")
    result = paired_wilcoxon([scores_a[c] for c in common], [scores_b[c] for c in common])
    report = {"metric": metric, "a": str(a), "b": str(b), "n_common_cases": len(common), **result.as_dict()}
    if out is not None:
        write_json_atomic(out, report)
    return "\n".join(f"{k}: {v}" for k, v in report.items())
