"""Every registered architecture trains a few steps and segments a tiny synthetic case."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from mslesion.cli import app
from mslesion.models.registry import ARCHITECTURES, DESCRIPTIONS, UNTRAINED

TINY = {
    "unet": {"features": [4, 4, 8, 8, 16, 4]},
    "cen": {"filters": 4, "kernel": 5},
    "unet-bm": {"features": [4, 8, 8, 8, 8]},
    "unet-bdm": {"features": [4, 8, 8, 8, 8]},
    "scanner-invariant": {"features": [4, 8, 8, 8, 8], "aux": "uniform"},
    "film-unet": {"features": [4, 8, 8, 8, 8]},
    "dlb-unet": {"features": [8, 8, 8, 8]},
}


REGIONAL = {"dlb"}  # trained in stages on fixed regions: tests/train/test_dlb_regional.py
PAIRS = {"new-lesions-unet"}  # two visits in, trained and run in tests/test_new_lesions.py


def test_every_architecture_is_described_and_listed() -> None:
    joined = {"ensemble"}  # not trained: built from trained members (tests/models/test_ensemble.py)
    assert set(TINY) | REGIONAL | PAIRS | joined == set(ARCHITECTURES) == set(DESCRIPTIONS)
    result = CliRunner().invoke(app, ["methods"])
    assert result.exit_code == 0 and all(name in result.output for name in [*ARCHITECTURES, *UNTRAINED])


@pytest.mark.parametrize("architecture", sorted(TINY))
def test_trains_and_segments(architecture: str, tmp_path: Path, tiny_dataset: Path) -> None:
    from mslesion.train.run import run_training

    cfg = {
        "data": {"datasets": [str(tiny_dataset)], "contrasts": ["FLAIR", "T1"], "split": "holdout", "val_fraction": 0.2},
        "model": {"architecture": architecture, "params": TINY[architecture]},
        "patch": {"size": [32, 32, 32], "batch_size": 2},
        "augment": {"affine": 0.0},
        "optim": {"warmup_steps": 0},
        "train": {"max_epochs": 1, "steps_per_epoch": 2, "seed": 1, "num_threads": 1},
    }
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    summary = run_training(tmp_path / "cfg.yaml", tmp_path / "run")
    assert summary["steps"] == 2 and np.isfinite(summary["best_val_dice"])
    case = tiny_dataset / "c0"
    result = CliRunner().invoke(
        app,
        [
            "segment",
            "--flair",
            str(case / "FLAIR.nii.gz"),
            "--t1",
            str(case / "T1.nii.gz"),
            "--out",
            str(tmp_path / "seg"),
            "--model",
            str(tmp_path / "run" / "model"),
            "--flips",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    mask = nib.load(str(tmp_path / "seg" / "lesion_mask.nii.gz"))
    assert mask.shape == (40, 40, 40)
    card = json.loads((tmp_path / "run" / "model" / "model.json").read_text())
    assert card["architecture"] == architecture
    if architecture == "scanner-invariant":
        assert card["params"]["n_sites"] == 2
