"""Box and strip plot of one metric per method (every test case a dot), written atomically as PNG."""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def metric_plot(rows: Sequence[Mapping[str, Any]], methods: Sequence[str], metric: str, label: str, path: Path) -> Path:
    """Boxes of the per-case values of `metric` for each method, the cases overlaid as jittered dots."""
    import matplotlib

    matplotlib.use("Agg", force=False)  # no screen needed; leaves an already chosen backend alone
    import matplotlib.pyplot as plt

    values = []
    for method in methods:
        column = [float(r[metric]) for r in rows if r["method"] == method and r.get(metric) not in ("", None)]
        values.append([v for v in column if not math.isnan(v)])
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(methods) + 1.5), 3.6))
    ax.boxplot(values, showfliers=False, widths=0.5)
    jitter = np.random.default_rng(0)  # fixed: the same plot for the same numbers
    for i, column in enumerate(values, start=1):
        ax.scatter(i + jitter.uniform(-0.12, 0.12, len(column)), column, s=12, alpha=0.7, color="tab:blue", zorder=3)
    ax.set_xticks(range(1, len(methods) + 1), list(methods), rotation=20, ha="right")
    ax.set_ylabel(label)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp.png")
    try:
        fig.savefig(tmp, dpi=100)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path
