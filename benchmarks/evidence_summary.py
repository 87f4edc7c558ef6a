"""Scores of `configs/benchmarks/cpu_evidence.yaml` by method and by how the test subject relates to training.

The harness's own tables (`OUT/summary.md`) cover the held-out site; this adds the in-site
scores (new subjects of the training sites, from the `insite` consistency dataset) and the
unseen-site scores, and works on a run still in progress (finished folds only).

    .venv/bin/python benchmarks/evidence_summary.py build/bench/cpu_evidence --name cpu_evidence
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np

from mslesion.benchmark.run import read_rows
from mslesion.io.atomic import write_text_atomic

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("dice", "msseg_lesion_f1", "ltpr", "lfpr")
# The papers' claims as paired comparisons (method, baseline, what the paper says).
CLAIMS = (
    ("SI-pearson", "BM", "Aslani 2020: the scanner-invariant regulariser beats BM on unseen sites"),
    ("SI-random", "BM", "Aslani 2020 (randomised-label loss)"),
    ("SI-uniform", "BM", "Aslani 2020 (uniform-target loss)"),
    ("BM-seed1", "BM", "noise floor: the same method trained with another seed"),
    ("DLB", "DLB-noIQ", "Kamraoui 2022: image-quality augmentation helps across sites"),
    ("DLB", "DLB-nospec", "Kamraoui 2022: hierarchical specialisation helps"),
    ("CEN", "U-Net", "Brosch 2016 vs deeper nets: CEN trails"),
    ("FiLM", "FiLM-off", "Vincent 2020: FiLM matches its U-Net when metadata is uninformative"),
    ("FiLM-seed1", "FiLM", "noise floor: FiLM with another seed"),
)


def _group(row: dict[str, str], held_out: str) -> str:
    if row["role"] == "test":
        return "held-out site"
    if row["dataset"] == "insite":
        return "held-out site (new subjects)" if row["site"] == held_out else "in-site (new subjects)"
    if row["dataset"] == "real":
        return "real scans (Lesjak patient07, patient19)"
    return f"unseen sites ({row['dataset']})"


def _cell(values: list[float]) -> str:
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return "nan"
    return f"{np.mean(finite):.3f} ± {np.std(finite):.3f} (n={len(finite)})"


def _claims(rows: list[dict[str, Any]]) -> list[str]:
    """Paired Dice differences (method - baseline) with two-sided Wilcoxon p, on the held-out
    site and on every never-trained phantom (held-out site + new subjects + unseen sites)."""
    from mslesion.evaluate.stats import paired_wilcoxon

    dice: dict[str, dict[tuple[str, str], float]] = {}
    held_out: dict[str, dict[tuple[str, str], float]] = {}
    for row in rows:
        if row["dataset"] == "real":
            continue  # two cases: no test
        key = (row["dataset"], row["case_id"])
        dice.setdefault(row["method"], {})[key] = float(row["dice"])
        if row["role"] == "test":
            held_out.setdefault(row["method"], {})[key] = float(row["dice"])
    lines = ["## Claims: paired Dice differences (method - baseline), two-sided Wilcoxon", "",
             "| method | baseline | claim | held-out site: mean diff, p (n) | all never-trained phantoms: mean diff, p (n) |",
             "|---|---|---|---|---|"]
    for method, baseline, claim in CLAIMS:
        if method not in dice or baseline not in dice:
            continue
        cells = []
        for table in (held_out, dice):
            keys = sorted(set(table[method]) & set(table[baseline]))
            a, b = [table[method][k] for k in keys], [table[baseline][k] for k in keys]
            test = paired_wilcoxon(a, b)
            cells.append(f"{np.nanmean(np.subtract(a, b)):+.3f}, p={test.p_value:.3f} (n={test.n})")
        lines.append(f"| {method} | {baseline} | {claim} | {cells[0]} | {cells[1]} |")
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the benchmark's --out folder")
    parser.add_argument("--name", default="cpu_evidence")
    args = parser.parse_args()
    # Every finished fold's per-case rows (numbers parsed by the harness's own reader).
    rows = [row for path in sorted(args.out.glob("runs/*/*/metrics.csv")) for row in read_rows(path)]
    table: dict[tuple[str, str], dict[str, list[float]]] = {}
    methods: list[str] = []
    for row in rows:
        held_out = row["fold"].removeprefix("site-")
        key = (row["method"], _group(row, held_out))
        if row["method"] not in methods:
            methods.append(row["method"])
        cells = table.setdefault(key, {m: [] for m in METRICS})
        for m in METRICS:
            cells[m].append(row[m] if isinstance(row[m], float) else math.nan)  # "" / "None": undefined
    groups = sorted({g for _, g in table})
    lines = [f"# {args.name}: scores by method and test group (finished folds only)", "",
             f"`.venv/bin/python benchmarks/evidence_summary.py {args.out} --name {args.name}`", "",
             "Mean ± sd over test subjects; NaN values (e.g. lesion F1 of an empty reference) left out.", ""]
    for metric in METRICS:
        lines += [f"## {metric}", "", "| method | " + " | ".join(groups) + " |", "|---|" + "---|" * len(groups)]
        for method in methods:
            lines.append(f"| {method} | " + " | ".join(_cell(table.get((method, g), {}).get(metric, [])) for g in groups) + " |")
        lines.append("")
    lines += _claims(rows)
    text = "\n".join(lines)
    write_text_atomic(ROOT / "benchmarks" / "results" / f"{args.name}.md", text)
    print(text)


if __name__ == "__main__":
    main()
