"""`make demo`'s job end to end: a synthetic subject made on the fly, segmented and evaluated."""

from __future__ import annotations

import csv
from pathlib import Path

from mslesion.demo import run_demo


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    report = run_demo(tmp_path, seed=7)
    assert "dice" in report and "msseg_lesion_f1" in report
    (row,) = list(csv.DictReader((tmp_path / "evaluation" / "metrics.csv").open()))
    assert int(row["n_ref_lesions"]) > 0 and 0.0 <= float(row["dice"]) <= 1.0
    assert (tmp_path / "example" / "manifest.csv").is_file()
