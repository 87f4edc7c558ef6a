"""`evaluate`/`compare` inputs (a probability map as --pred, a file as --out, a non-numeric score) and a
training whose loss diverges: one line, exit 2, nothing written."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from mslesion.cli import app


def _masks(tmp_path: Path, nifti_writer) -> tuple[Path, Path, Path]:
    ref = np.zeros((12, 12, 12), np.uint8)
    ref[3:7, 3:7, 3:7] = 1
    prob = (ref * 0.8 + 0.05).astype(np.float32)  # a probability map: > 0 everywhere
    return (
        nifti_writer(tmp_path / "ref.nii.gz", ref),
        nifti_writer(tmp_path / "prob.nii.gz", prob),
        nifti_writer(tmp_path / "mask.nii.gz", ref.copy()),
    )


def test_probability_map_as_pred_is_refused(tmp_path: Path, nifti_writer, refused) -> None:
    ref, prob, _ = _masks(tmp_path, nifti_writer)
    out = tmp_path / "ev"
    refused(["evaluate", "--pred", prob, "--ref", ref, "--out", out], prob, message="not a binary mask")
    assert not out.exists()


def test_probability_map_with_threshold_is_scored(tmp_path: Path, nifti_writer) -> None:
    ref, prob, mask = _masks(tmp_path, nifti_writer)
    result = CliRunner().invoke(
        app, ["evaluate", "--pred", str(prob), "--ref", str(ref), "--out", str(tmp_path / "ev"), "--threshold", "0.5"]
    )
    assert result.exit_code == 0, result.output
    assert float(next(csv.DictReader((tmp_path / "ev" / "metrics.csv").open()))["dice"]) == pytest.approx(1.0)
    result = CliRunner().invoke(app, ["evaluate", "--pred", str(mask), "--ref", str(ref), "--out", str(tmp_path / "ev2")])
    assert result.exit_code == 0, result.output  # a 0/1 mask needs no threshold


def test_threshold_out_of_range_is_refused(tmp_path: Path, nifti_writer, refused) -> None:
    ref, prob, _ = _masks(tmp_path, nifti_writer)
    refused(["evaluate", "--pred", prob, "--ref", ref, "--out", tmp_path / "ev", "--threshold", "1.5"], "--threshold")
    assert not (tmp_path / "ev").exists()


def test_out_that_is_a_file_is_refused(tmp_path: Path, nifti_writer, refused) -> None:
    ref, _, mask = _masks(tmp_path, nifti_writer)
    out = tmp_path / "metrics.txt"
    out.write_text("mine")
    refused(["evaluate", "--pred", mask, "--ref", ref, "--out", out], out, message="is a file")
    assert out.read_text() == "mine"


def test_compare_with_a_non_numeric_score_is_refused(tmp_path: Path, refused) -> None:
    good, bad = tmp_path / "a.csv", tmp_path / "b.csv"
    good.write_text("case_id,dice\nc1,0.5\nc2,0.6\n")
    bad.write_text("case_id,dice\nc1,0.4\nc2,high\n")
    refused(["compare", good, bad, "--out", tmp_path / "w.json"], bad, message="not a number")
    assert not (tmp_path / "w.json").exists()


def _train_config(tmp_path: Path, dataset: Path, epochs: int) -> Path:
    """A tiny U-Net on 32^3 patches, one step per epoch, validated every epoch."""
    cfg = {
        "data": {"datasets": [str(dataset)], "contrasts": ["FLAIR"], "split": "holdout", "val_fraction": 0.2},
        "model": {"architecture": "unet", "params": {"features": [4, 4, 8, 8, 16, 4]}},
        "patch": {"size": [32, 32, 32], "batch_size": 1, "lesion_fraction": 0.7},
        "train": {"max_epochs": epochs, "steps_per_epoch": 1, "checkpoint_every": 1, "seed": 3, "num_threads": 1},
    }
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump(cfg))
    return config


@pytest.mark.parametrize(("value", "shown"), [(float("nan"), "loss is nan"), (1e17, "loss is 1e+17 (limit 1e+06)")])
def test_diverging_training_stops_without_a_model(
    value: float, shown: str, tmp_path: Path, tiny_dataset: Path, refused, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mslesion.losses

    monkeypatch.setattr(mslesion.losses, "make_loss", lambda name, **params: lambda logits, target: logits.mean() * 0 + value)
    run = tmp_path / "run"
    refused(
        ["train", "--config", _train_config(tmp_path, tiny_dataset, 1), "--out", run],
        run,
        message=f"training diverged at step 1: {shown}; no model written from this step on",
    )
    assert not (run / "model").exists()


def test_divergence_after_a_good_epoch_keeps_its_model_and_checkpoint(
    tmp_path: Path, tiny_dataset: Path, refused, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mslesion.losses

    real, run, seen = mslesion.losses.make_loss, tmp_path / "run", {}

    def diverging_at_step_2(name: str, **params):
        loss = real(name, **params)

        def call(logits, target):
            if not seen:  # step 1: the real loss; step 2: a run gone off to 1e17, after epoch 1 wrote its model
                seen["step 1"] = True
                return loss(logits, target)
            seen["model"] = (run / "model" / "model.safetensors").read_bytes()
            return loss(logits, target) * 1e17

        return call

    monkeypatch.setattr(mslesion.losses, "make_loss", diverging_at_step_2)
    refused(
        ["train", "--config", _train_config(tmp_path, tiny_dataset, 2), "--out", run], run, message="training diverged at step 2: loss is"
    )
    assert (run / "model" / "model.safetensors").read_bytes() == seen["model"]
    assert (run / "checkpoint").is_dir()
