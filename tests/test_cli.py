"""The `mslesion` command line: help is instant, errors are one line with exit 2, outputs exist."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mslesion.cli import app

runner = CliRunner()


def test_help_imports_nothing_heavy() -> None:
    code = "import sys, mslesion.cli; print(sorted(m for m in ('numpy','nibabel','torch','scipy','monai') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "evaluate" in result.output and "synth" in result.output


def _masks(tmp_path: Path, nifti_writer, spacing=(1.0, 1.0, 2.0)) -> tuple[Path, Path]:
    affine = np.diag([*spacing, 1.0])
    ref = np.zeros((20, 20, 10), np.uint8)
    ref[2:6, 2:6, 2:4] = 1  # 32 voxels
    ref[12:15, 12:15, 6:8] = 1  # 18 voxels
    pred = np.zeros_like(ref)
    pred[2:6, 2:6, 2:4] = 1  # exact on the first lesion
    pred[16:19, 2:5, 5:7] = 1  # a false positive of 18 voxels
    for case in ("c1", "c2"):
        nifti_writer(tmp_path / "ref" / f"{case}.nii.gz", ref, affine)
        nifti_writer(tmp_path / "pred" / f"{case}_pred.nii.gz", pred, affine)
    return tmp_path / "pred", tmp_path / "ref"


def test_evaluate_folders_matched_by_case_id(tmp_path: Path, nifti_writer) -> None:
    pred, ref = _masks(tmp_path, nifti_writer)
    result = runner.invoke(app, ["evaluate", "--pred", str(pred), "--ref", str(ref), "--out", str(tmp_path / "ev")])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((tmp_path / "ev" / "metrics.csv").open()))
    assert [r["case_id"] for r in rows] == ["c1", "c2"]
    # Dice = 2*32 / (50 + 50) = 0.64; LTPR = 1/2; LFPR = 1/2 (hand-computed).
    assert float(rows[0]["dice"]) == pytest.approx(0.64)
    assert float(rows[0]["ltpr"]) == pytest.approx(0.5) and float(rows[0]["lfpr"]) == pytest.approx(0.5)
    summary = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert summary["conventions"]["lesion_connectivity"] == 26
    assert "dice" in result.output


def test_evaluate_and_compare_bad_input_exit_2(tmp_path: Path, nifti_writer) -> None:
    pred, ref = _masks(tmp_path, nifti_writer)
    nifti_writer(tmp_path / "other" / "c1.nii.gz", np.zeros((20, 20, 11), np.uint8))
    result = runner.invoke(
        app, ["evaluate", "--pred", str(tmp_path / "other" / "c1.nii.gz"), "--ref", str(ref / "c1.nii.gz"), "--out", str(tmp_path / "ev")]
    )
    assert result.exit_code == 2
    assert "differs from reference" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "ev").exists()  # no partial outputs
    result = runner.invoke(app, ["compare", str(tmp_path / "nope.csv"), str(tmp_path / "nope.csv")])
    assert result.exit_code == 2 and "metrics file not found" in result.output


def test_compare_two_methods(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    a = rng.uniform(0.5, 0.8, 12)
    b = a + rng.uniform(0.01, 0.05, 12)
    for name, values in (("a", a), ("b", b)):
        lines = ["case_id,dice"] + [f"c{i},{v}" for i, v in enumerate(values)]
        (tmp_path / f"{name}.csv").write_text("\n".join(lines) + "\n")
    result = runner.invoke(app, ["compare", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--out", str(tmp_path / "w.json")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "w.json").read_text())
    from scipy.stats import wilcoxon

    assert report["p_value"] == pytest.approx(wilcoxon(a, b).pvalue)
    assert report["n_common_cases"] == 12
