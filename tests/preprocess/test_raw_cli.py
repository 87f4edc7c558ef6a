"""`preprocess_raw` and `mslesion preprocess`: bad input is one line with exit 2 and no partial outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mslesion.cli import app
from mslesion.errors import InputError
from mslesion.preprocess.raw import preprocess_raw

runner = CliRunner()


def _visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_no_flair_and_unknown_contrasts_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="FLAIR image is required"):
        preprocess_raw({"T1": tmp_path / "t1.nii.gz"})
    with pytest.raises(InputError, match="unknown contrast"):
        preprocess_raw({"FLAIR": tmp_path / "f.nii.gz", "DWI": tmp_path / "d.nii.gz"})


def test_cli_missing_file_is_one_line_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["preprocess", "--flair", str(tmp_path / "missing.nii.gz"), "--out", str(out)])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error:") and len(result.output.strip().splitlines()) == 1
    assert _visible(out) == []


def test_cli_constant_scan_and_bad_space_are_refused(tmp_path: Path, nifti_writer) -> None:
    flair = nifti_writer(tmp_path / "flair.nii.gz", np.zeros((20, 20, 10), np.float32))
    out = tmp_path / "out"
    result = runner.invoke(app, ["preprocess", "--flair", str(flair), "--out", str(out)])
    assert result.exit_code == 2 and "constant" in result.output
    result = runner.invoke(app, ["preprocess", "--flair", str(flair), "--out", str(out), "--space", "talairach"])
    assert result.exit_code == 2 and "--space" in result.output
    assert _visible(out) == []


def test_cli_contrast_elsewhere_in_space_is_refused_before_any_work(tmp_path: Path, nifti_writer, head) -> None:
    image, _, affine = head
    far = affine.copy()
    far[:3, 3] += 500.0
    flair = nifti_writer(tmp_path / "flair.nii.gz", image, affine)
    t1 = nifti_writer(tmp_path / "t1.nii.gz", image, far)
    out = tmp_path / "out"
    result = runner.invoke(app, ["preprocess", "--flair", str(flair), "--t1", str(t1), "--out", str(out)])
    assert result.exit_code == 2 and "does not overlap the FLAIR" in result.output
    assert _visible(out) == []
