"""Benchmark tables: method x metric (mean +/- sd) with a paired Wilcoxon test against the best method.

Rows are per-case metric dicts with `method`, `dataset`, `case_id` (and `site`). Cases are
paired across methods by (dataset, case_id). The best method of a metric has the best mean
(highest, or lowest for error metrics such as LFPR, AVD and HD95); every other method is
tested against it with `evaluate.stats.paired_wilcoxon` (two-sided), marked as the papers
do: * p < 0.05, ** p < 0.01, *** p < 0.001.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from mslesion.evaluate.case_metrics import describe, summarise
from mslesion.evaluate.stats import paired_wilcoxon

LOWER_IS_BETTER = frozenset({"lfpr", "avd_ml", "avd_isbi", "hd_mm", "hd95_mm", "assd_mm"})
LABELS = {
    "dice": "Dice", "ppv": "PPV", "tpr": "TPR", "lesion_f1_isbi": "F1 (ISBI)", "msseg_lesion_f1": "F1 (MSSEG-2)",
    "ltpr": "LTPR", "lfpr": "LFPR", "avd_isbi": "AVD", "avd_ml": "AVD (mL)", "hd95_mm": "HD95 (mm)",
    "corr": "CORR", "hybrid_score": "hybrid",
}  # fmt: skip
SUMMARY_COLUMNS = ["setting", "method", "metric", "mean", "sd", "median", "n", "best_method", "is_best", "p_vs_best", "stars"]

Row = Mapping[str, Any]


def stars(p: float) -> str:
    """Significance marks: *** p < 0.001, ** p < 0.01, * p < 0.05, '' otherwise or NaN."""
    if p is None or math.isnan(p):
        return ""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else ""


def _value(row: Row, metric: str) -> float:
    value = row.get(metric, math.nan)
    try:
        return float(value) if value not in ("", None) else math.nan
    except (TypeError, ValueError):
        return math.nan


def scores(rows: Sequence[Row], method: str, metric: str) -> dict[tuple[str, str], float]:
    """Per-case values of `metric` for `method`, keyed by (dataset, case_id)."""
    return {(str(r.get("dataset", "")), str(r["case_id"])): _value(r, metric) for r in rows if r["method"] == method}


def best_method(means: Mapping[str, float], metric: str) -> str | None:
    """The method with the best mean (first in order on ties); None when every mean is NaN."""
    finite = {m: v for m, v in means.items() if not math.isnan(v)}
    if not finite:
        return None
    pick = min if metric in LOWER_IS_BETTER else max
    target = pick(finite.values())
    return next(m for m, v in finite.items() if v == target)


def compare_to_best(rows: Sequence[Row], methods: Sequence[str], metric: str) -> list[dict[str, Any]]:
    """One record per method: mean, sd, median, n of `metric`, the best method, Wilcoxon p vs the best."""
    per_method = {m: scores(rows, m, metric) for m in methods}
    stats = {m: describe(v.values()) for m, v in per_method.items()}
    best = best_method({m: float(s["mean"]) for m, s in stats.items()}, metric)
    records = []
    for method in methods:
        p = math.nan
        if best is not None and method != best:
            common = sorted(set(per_method[best]) & set(per_method[method]))
            if common:
                p = paired_wilcoxon([per_method[best][k] for k in common], [per_method[method][k] for k in common]).p_value
        records.append(
            {
                "method": method,
                "metric": metric,
                **stats[method],
                "best_method": best or "",
                "is_best": method == best,
                "p_vs_best": p,
                "stars": stars(p),
            }
        )
    return records


def across_case_scores(rows: Sequence[Row], methods: Sequence[str]) -> list[dict[str, Any]]:
    """CORR (predicted vs reference lesion volume across cases) and the ISBI hybrid score per method."""
    records = []
    for method in methods:
        mine = [
            {k: _value(r, k) for k in ("dice", "ppv", "ltpr", "lfpr", "vol_pred_ml", "vol_ref_ml")} for r in rows if r["method"] == method
        ]
        summary = summarise(mine, group_key=None)
        for metric in ("corr", "hybrid_score"):
            records.append(
                {
                    "method": method,
                    "metric": metric,
                    "mean": summary[metric],
                    "sd": math.nan,
                    "median": math.nan,
                    "n": summary["n_cases"],
                    "best_method": "",
                    "is_best": False,
                    "p_vs_best": math.nan,
                    "stars": "",
                }
            )
    return records


def method_table(rows: Sequence[Row], methods: Sequence[str], metrics: Sequence[str]) -> list[dict[str, Any]]:
    """Long-format records for every (method, metric), then CORR and the hybrid score."""
    records = [r for metric in metrics for r in compare_to_best(rows, methods, metric)]
    return records + across_case_scores(rows, methods)


def site_table(rows: Sequence[Row], methods: Sequence[str], metric: str) -> list[dict[str, Any]]:
    """Per method and site: mean, sd, n of `metric`; plus 'all sites' (mean and sd of the site means)."""
    sites = sorted({str(r.get("site", "")) for r in rows})
    records = []
    for method in methods:
        site_means = []
        for site in sites:
            stats = describe(_value(r, metric) for r in rows if r["method"] == method and str(r.get("site", "")) == site)
            site_means.append(stats["mean"])
            records.append({"method": method, "metric": metric, "site": site, **stats})
        spread = describe(site_means)
        records.append(
            {
                "method": method,
                "metric": metric,
                "site": "mean of sites",
                "mean": spread["mean"],
                "sd": spread["sd"],
                "median": spread["median"],
                "n": spread["n"],
            }
        )
    return records


# ----------------------------------------------------------------------------- Markdown


def fmt(value: Any, digits: int = 3) -> str:
    """A number for a table: NaN/None as 'n/a', large values with fewer decimals."""
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    value = float(value)
    return f"{value:.1f}" if abs(value) >= 100 else f"{value:.{digits}f}"


def _cell(record: Mapping[str, Any]) -> str:
    text = fmt(record["mean"]) if math.isnan(float(record["sd"])) else f"{fmt(record['mean'])} ± {fmt(record['sd'])}"
    if record["is_best"]:
        return f"**{text}**"
    return f"{text} {record['stars'].replace('*', chr(92) + '*')}".rstrip()


def markdown_method_table(records: Sequence[Mapping[str, Any]], methods: Sequence[str]) -> str:
    """Methods as rows, metrics as columns; best in bold, stars for p vs the best."""
    metrics = list(dict.fromkeys(r["metric"] for r in records))
    cells = {(r["method"], r["metric"]): r for r in records}
    n = max((int(r["n"]) for r in records if r["metric"] == metrics[0]), default=0)
    lines = [f"| method (n={n:d}) | {' | '.join(LABELS.get(m, m) for m in metrics)} |", "|---|" + "---|" * len(metrics)]
    for method in methods:
        lines.append(f"| {method} | " + " | ".join(_cell(cells[(method, m)]) for m in metrics) + " |")
    return "\n".join(lines)


def markdown_site_table(records: Sequence[Mapping[str, Any]], methods: Sequence[str]) -> str:
    """Methods as rows, sites as columns (mean ± sd of one metric), then the mean of the site means."""
    sites = list(dict.fromkeys(r["site"] for r in records))
    cells = {(r["method"], r["site"]): r for r in records}
    lines = ["| method | " + " | ".join(sites) + " |", "|---|" + "---|" * len(sites)]
    for method in methods:
        row = [cells[(method, s)] for s in sites]
        lines.append(
            f"| {method} | "
            + " | ".join(fmt(r["mean"]) if math.isnan(float(r["sd"])) else f"{fmt(r['mean'])} ± {fmt(r['sd'])}" for r in row)
            + " |"
        )
    return "\n".join(lines)


def markdown_consistency_table(records: Sequence[Mapping[str, Any]]) -> str:
    """Dice between the predictions of two folds' models on the same cases."""
    lines = ["| method | models | cases | Dice between predictions |", "|---|---|---|---|"]
    for r in records:
        lines.append(f"| {r['method']} | {r['fold_a']} vs {r['fold_b']} | {r['n']} | {fmt(r['mean'])} ± {fmt(r['sd'])} |")
    return "\n".join(lines)
