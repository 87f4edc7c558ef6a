"""Results of a benchmark: the Markdown summary, the CSV tables, the plots and the consistency table.

Called by `run.run_benchmark` once every fold has its metrics.csv; reads only those rows
and the predicted masks (for the consistency table), so it can be re-run on a finished OUT.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mslesion.benchmark.config import BenchmarkConfig
from mslesion.benchmark.protocol import CaseKey, prediction_path
from mslesion.io.atomic import write_csv_atomic, write_text_atomic


def consistency_records(rows: list[dict[str, Any]], methods: list[str], out: Path) -> list[dict[str, Any]]:
    """Dice between the masks two folds' models predicted for the same cases, per method and fold pair."""
    from itertools import combinations

    from mslesion.evaluate.case_metrics import describe
    from mslesion.evaluate.stats import consistency_index
    from mslesion.io.volume import load_volume

    records = []
    for method in methods:
        by_fold: dict[str, set[CaseKey]] = {}
        for r in rows:
            if r["method"] == method:
                by_fold.setdefault(r["fold"], set()).add((r["dataset"], r["case_id"]))
        for fold_a, fold_b in combinations(sorted(by_fold), 2):
            common = sorted(by_fold[fold_a] & by_fold[fold_b])
            if not common:
                continue
            values = [
                consistency_index(
                    load_volume(prediction_path(out / "runs" / method / fold_a, k)).array > 0,
                    load_volume(prediction_path(out / "runs" / method / fold_b, k)).array > 0,
                )
                for k in common
            ]
            records.append({"method": method, "fold_a": fold_a, "fold_b": fold_b, **describe(values)})
    return records


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", text).strip("_")


def write_results(cfg: BenchmarkConfig, out: Path, rows: list[dict[str, Any]]) -> str:
    """All tables (Markdown + CSV) and plots from the per-case rows; returns the Markdown summary."""
    from mslesion.benchmark.plots import metric_plot
    from mslesion.benchmark.tables import (
        LABELS,
        SUMMARY_COLUMNS,
        markdown_consistency_table,
        markdown_method_table,
        markdown_site_table,
        method_table,
        site_table,
    )

    methods = [m.name for m in cfg.methods]
    tested = [r for r in rows if r["role"] == "test"]
    settings = list(dict.fromkeys(r["setting"] for r in tested))
    lines = [
        f"# Benchmark {cfg.name}: {cfg.protocol.kind.value}",
        "",
        f"Config: `{cfg.source}`. Mean ± sd over test cases; **bold** = best method of the column; "
        r"\* p < 0.05, \*\* p < 0.01, \*\*\* p < 0.001 (paired two-sided Wilcoxon test against the best method). "
        "CORR and hybrid are across-case scores (no sd, no test). Test-time flips: "
        f"{cfg.test_time.flips}, overlap {cfg.test_time.overlap}.",
        "",
    ]
    summary, per_site = [], []
    for setting in settings:
        mine = [r for r in tested if r["setting"] == setting]
        records = method_table(mine, methods, cfg.tables.metrics)
        summary += [{"setting": setting, **r} for r in records]
        lines += [f"## Test set: {setting}", "", markdown_method_table(records, methods), ""]
        if len({r["site"] for r in mine}) > 1:
            for metric in cfg.tables.site_metrics:
                site_records = site_table(mine, methods, metric)
                per_site += [{"setting": setting, **r} for r in site_records]
                lines += [
                    f"Per site, {LABELS.get(metric, metric)} (last column: mean ± sd of the site means; "
                    "a smaller sd = more consistent across sites):",
                    "",
                    markdown_site_table(site_records, methods),
                    "",
                ]
        for metric in cfg.tables.metrics:
            plot = metric_plot(mine, methods, metric, LABELS.get(metric, metric), out / "tables" / _slug(setting) / f"{metric}.png")
            lines.append(f"![{metric}]({plot.relative_to(out).as_posix()})")
        lines.append("")
    consistency = consistency_records(rows, methods, out)
    if consistency:
        lines += [
            "## Consistency between models trained on different data",
            "",
            "Dice between the lesion masks that two folds' models predict for the same cases "
            "(DeepLesionBrain's Table 10; `evaluate.stats.consistency_index`).",
            "",
            markdown_consistency_table(consistency),
            "",
        ]
    write_csv_atomic(out / "tables" / "summary.csv", summary, SUMMARY_COLUMNS)
    write_csv_atomic(out / "tables" / "per_site.csv", per_site, ["setting", "method", "metric", "site", "mean", "sd", "median", "n"])
    write_csv_atomic(out / "tables" / "consistency.csv", consistency, ["method", "fold_a", "fold_b", "mean", "sd", "median", "n"])
    text = "\n".join(lines)
    write_text_atomic(out / "summary.md", text)
    return text
