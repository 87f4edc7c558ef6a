"""Ensembles: joined from trained models, averaged in probability, usable wherever a model is."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mslesion.cli import app
from mslesion.errors import InputError
from mslesion.models.registry import build_network
from mslesion.models.store import ModelCard, combine_models, load_model, save_model

runner = CliRunner()
FEATURES = [4, 4, 8, 8, 16, 4]


def _model(folder: Path, seed: int, contrasts: tuple[str, ...] = ("FLAIR", "T1"), architecture: str = "unet") -> Path:
    torch.manual_seed(seed)
    net = build_network(architecture, len(contrasts), {"features": FEATURES})
    card = ModelCard(
        architecture=architecture,
        contrasts=list(contrasts),
        params={"features": FEATURES},
        patch_size=(32, 32, 32),
        threshold=0.4,
        training={"steps": 10 + seed},
    )
    return save_model(net.state_dict(), card, folder)


def test_ensemble_averages_member_probabilities(tmp_path: Path) -> None:
    folders = [_model(tmp_path / f"m{i}", i) for i in range(3)]
    card = combine_models(folders, tmp_path / "ensemble")
    assert card.architecture == "ensemble" and card.params["members"] == 3 and card.threshold == 0.4
    assert [m["steps"] for m in card.training["members"]] == [10, 11, 12]
    net, loaded = load_model(tmp_path / "ensemble")
    members = [load_model(f)[0] for f in folders]
    x = torch.randn(1, 2, 32, 32, 32)
    with torch.no_grad():
        expected = torch.stack([torch.sigmoid(m(x)) for m in members]).mean(0)
        got = torch.sigmoid(net(x))
    assert loaded.params["member_architecture"] == "unet"
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    # Members differ, so the ensemble is not any one of them.
    assert (got - torch.sigmoid(members[0](x))).abs().max() > 1e-3


def test_models_that_do_not_match_are_refused(tmp_path: Path) -> None:
    a = _model(tmp_path / "a", 0)
    flair_only = _model(tmp_path / "b", 1, contrasts=("FLAIR",))
    with pytest.raises(InputError, match="contrasts"):
        combine_models([a, flair_only], tmp_path / "ens")
    with pytest.raises(InputError, match="at least two"):
        combine_models([a], tmp_path / "ens")
    assert not (tmp_path / "ens").exists()


def test_bad_ensemble_cards_are_refused(tmp_path: Path) -> None:
    _model(tmp_path / "a", 0)
    _model(tmp_path / "b", 1)
    combine_models([tmp_path / "a", tmp_path / "b"], tmp_path / "ens")
    card_path = tmp_path / "ens" / "model.json"
    card = json.loads(card_path.read_text())
    for params, message in (
        ({**card["params"], "members": 3}, "do not fit"),
        ({**card["params"], "member_architecture": "dlb"}, "members must be one of"),
    ):
        card_path.write_text(json.dumps({**card, "params": params}))
        with pytest.raises(InputError, match=message):
            load_model(tmp_path / "ens")


def test_cli_joins_models_and_segment_uses_the_ensemble(tmp_path: Path, nifti_writer) -> None:
    a, b = _model(tmp_path / "a", 0), _model(tmp_path / "b", 1)
    out = tmp_path / "ens"
    result = runner.invoke(app, ["ensemble", str(a), str(b), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "ensemble of 2 unet models" in result.output
    again = runner.invoke(app, ["ensemble", str(a), str(b), "--out", str(out)])
    assert again.exit_code == 2 and "not empty" in again.output
    grid = np.indices((36, 40, 32)).transpose(1, 2, 3, 0)
    brain = np.linalg.norm((grid - [18, 20, 16]) / [15, 17, 13], axis=-1) < 1
    flair = (np.random.default_rng(1).normal(100, 5, brain.shape) * brain).astype(np.float32)
    path = nifti_writer(tmp_path / "flair.nii.gz", flair, np.eye(4))
    seg = runner.invoke(app, ["segment", "--flair", str(path), "--out", str(tmp_path / "seg"), "--model", str(out), "--flips", "1"])
    assert seg.exit_code == 0, seg.output
    summary = json.loads((tmp_path / "seg" / "summary.json").read_text())
    assert summary["model"]["architecture"] == "ensemble"


def test_training_an_ensemble_directly_is_refused(tmp_path: Path) -> None:
    from mslesion.train.config import load_config

    config = tmp_path / "c.yaml"
    config.write_text("data: {datasets: [x], contrasts: [FLAIR]}\nmodel: {architecture: ensemble}\n")
    with pytest.raises(InputError, match="join them with `mslesion ensemble`"):
        load_config(config)
