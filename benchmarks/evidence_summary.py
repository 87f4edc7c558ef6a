"""Scores of `configs/benchmarks/cpu_evidence.yaml` by method and by how the test subject relates to training.

The harness's own tables (`OUT/summary.md`) cover the held-out site; this adds the in-site
scores (new subjects of the training sites, from the `insite` consistency dataset) and the
unseen-site scores, and works on a run still in progress (finished folds only).

    .venv/bin/python benchmarks/evidence_summary.py build/bench/cpu_evidence --name cpu_evidence
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

import numpy as np

from mslesion.io.atomic import write_text_atomic

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("dice", "msseg_lesion_f1", "ltpr", "lfpr")


def _group(row: dict[str, str], held_out: str) -> str:
    if row["role"] == "test":
        return "held-out site"
    if row["dataset"] == "insite":
        return "held-out site (new subjects)" if row["site"] == held_out else "in-site (new subjects)"
    return f"unseen sites ({row['dataset']})"


def _cell(values: list[float]) -> str:
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return "nan"
    return f"{np.mean(finite):.3f} ± {np.std(finite):.3f} (n={len(finite)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the benchmark's --out folder")
    parser.add_argument("--name", default="cpu_evidence")
    args = parser.parse_args()
    table: dict[tuple[str, str], dict[str, list[float]]] = {}
    methods: list[str] = []
    for path in sorted(args.out.glob("runs/*/*/metrics.csv")):
        with open(path, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                held_out = row["fold"].removeprefix("site-")
                key = (row["method"], _group(row, held_out))
                if row["method"] not in methods:
                    methods.append(row["method"])
                cells = table.setdefault(key, {m: [] for m in METRICS})
                for m in METRICS:
                    cells[m].append(float(row[m]) if row[m] not in ("", "nan", "None") else math.nan)
    groups = sorted({g for _, g in table})
    lines = [f"# {args.name}: scores by method and test group (finished folds only)", "",
             f"`.venv/bin/python benchmarks/evidence_summary.py {args.out} --name {args.name}`", "",
             "Mean ± sd over test subjects; NaN values (e.g. lesion F1 of an empty reference) left out.", ""]
    for metric in METRICS:
        lines += [f"## {metric}", "", "| method | " + " | ".join(groups) + " |", "|---|" + "---|" * len(groups)]
        for method in methods:
            lines.append(f"| {method} | " + " | ".join(_cell(table.get((method, g), {}).get(metric, [])) for g in groups) + " |")
        lines.append("")
    text = "\n".join(lines)
    write_text_atomic(ROOT / "benchmarks" / "results" / f"{args.name}.md", text)
    print(text)


if __name__ == "__main__":
    main()
