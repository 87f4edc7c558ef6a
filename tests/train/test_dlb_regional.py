"""DeepLesionBrain's regional training: region crops in grid coordinates, generic -> specialised
stages, the saved ensemble through `segment`, and exact resume across stages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from mslesion.errors import InputError
from mslesion.models.dlb import crop_regions
from mslesion.train.config import load_config

TINY_UNET = {"features": [8, 8, 8, 8]}
# On the 40^3 test grid: 24^3 regions, 2 per axis (starts 0 and 16) = 8 regions, 4 networks.
TINY_REGIONS = {"size": [24, 24, 24], "per_axis": [2, 2, 2], "generic_steps": 3, "finetune_steps": 2, "log_every": 2}


def _config(tmp_path: Path, dataset: Path, name: str = "dlb.yaml", **regional) -> Path:
    cfg = {
        "data": {"datasets": [str(dataset)], "contrasts": ["FLAIR", "T1"], "split": "holdout", "val_fraction": 0.2},
        "model": {"architecture": "dlb", "params": TINY_UNET},
        "patch": {"batch_size": 2, "lesion_fraction": 0.7},
        "augment": {"flip": 0.0, "affine": 0.0, "image_quality": 0.5},
        "loss": {"name": "generalized_jaccard"},
        "optim": {"lr": 0.003, "warmup_steps": 0},
        "train": {"checkpoint_every": 1, "seed": 5, "num_threads": 1},
        "infer": {"thresholds": [0.3, 0.5], "min_lesion_mm3": 0.0},
        "regional": {**TINY_REGIONS, **regional},
    }
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return path


def _regional_trainer(tmp_path: Path, dataset: Path, margin: int = 8, **regional):
    from mslesion.train.data import prepare_case
    from mslesion.train.regional import RegionalTrainer
    from mslesion.train.run import load_cases

    cfg = load_config(_config(tmp_path, dataset, **regional))
    train, val = load_cases(cfg)
    prepared = [prepare_case(c, cfg.data.contrasts, margin=margin) for c in train]
    return RegionalTrainer(cfg, tmp_path / "run", prepared, [prepare_case(c, cfg.data.contrasts, margin=margin) for c in val])


def test_region_crops_are_in_grid_coordinates_and_mirror_exactly(tmp_path: Path, tiny_dataset: Path) -> None:
    from mslesion.train.regional import crop_region, full_grid

    trainer = _regional_trainer(tmp_path, tiny_dataset, margin=0)
    assert len(trainer.regions) == 8 and len(trainer.groups) == 4
    case = trainer.train_cases[0]
    assert min(case.origin) > 0 and case.grid_shape == (40, 40, 40)  # the brain box is a crop of the grid
    whole = torch.from_numpy(full_grid(case, case.image))
    flipped_whole = whole.flip(1)
    for members in trainer.groups.values():
        canonical = members[0][0]
        for index, flipped in members:
            image, label = crop_region(case, trainer.regions[index], flipped)
            assert np.array_equal(image, crop_regions(whole, trainer.regions, [(index, flipped)])[0].numpy())
            if flipped:  # voxel-exact: the right twin, flipped, is the left region of the mirrored brain
                assert np.array_equal(image, flipped_whole[(slice(None), *trainer.regions[canonical].slices)].numpy())
            assert label.shape == (1, 24, 24, 24) and set(np.unique(label)) <= {0.0, 1.0}


def test_samplers_crop_only_their_regions(tmp_path: Path, tiny_dataset: Path) -> None:
    from mslesion.train.regional import RegionSampler, crop_region

    trainer = _regional_trainer(tmp_path, tiny_dataset)
    every = [m for ms in trainer.groups.values() for m in ms]
    assert trainer.stage_trainer(0).sampler.members == every  # the generic stage sees every region once
    for members in (every, trainer.groups[1]):
        sampler = RegionSampler(trainer.train_cases, trainer.regions, members, 3, 0.7)
        for item in sampler(np.random.default_rng(0)) + sampler(np.random.default_rng(1)):
            crops = [crop_region(item["case"], trainer.regions[i], f)[0] for i, f in members]
            assert any(np.array_equal(item["image"], c) for c in crops)


def test_generic_then_specialised(tmp_path: Path, tiny_dataset: Path) -> None:
    trainer = _regional_trainer(tmp_path, tiny_dataset)
    assert trainer._run_stage(0, None)
    generic = trainer._load_stage(0)
    first = trainer.stage_trainer(1)  # stage 2 starts from the generic weights, exactly
    assert first.sampler.members == list(trainer.groups[0])
    assert all(torch.equal(first.net.state_dict()[k], generic[k]) for k in generic)
    assert trainer._run_stage(1, None)  # fine-tune group 0 only
    ensemble = trainer.ensemble(generic_only=True)
    tuned = trainer._load_stage(1)
    ensemble.networks[0].load_state_dict(tuned)
    assert any(not torch.equal(tuned[k], generic[k]) for k in generic)
    for g in range(1, len(trainer.groups)):  # the other groups still hold the generic weights
        assert all(torch.equal(v, generic[k]) for k, v in ensemble.networks[g].state_dict().items())


def test_trains_saves_and_segments(tmp_path: Path, tiny_dataset: Path, nifti_writer) -> None:
    from mslesion.models.store import load_model
    from mslesion.pipeline import segment
    from mslesion.train.run import run_training

    out = tmp_path / "run"
    summary = run_training(_config(tmp_path, tiny_dataset), out)
    assert summary["steps"] == 3 + 4 * 2 and summary["stopped"] == "all stages done"
    log = (out / "log.csv").read_text().splitlines()
    assert log[0].startswith("stage,epoch,step") and any(line.startswith("ensemble,") for line in log)
    card = json.loads((out / "model" / "model.json").read_text())
    assert card["architecture"] == "dlb" and card["training"]["regions"] == 8 and card["training"]["networks"] == 4
    assert card["params"]["starts"] == [[0, 16]] * 3 and len(card["params"]["group_members"]) == 4
    net, _ = load_model(out / "model")  # round trip: every regional net from one safetensors file
    for g in range(4):
        stage = trainer_file(out, f"group{g}")
        assert all(torch.equal(net.networks[g].state_dict()[k], v) for k, v in stage.items())
    case = tiny_dataset / "c0"
    result = segment({"FLAIR": case / "FLAIR.nii.gz", "T1": case / "T1.nii.gz"}, tmp_path / "seg", model=out / "model")
    assert result.summary["model"]["architecture"] == "dlb"
    import nibabel as nib

    assert nib.load(str(tmp_path / "seg" / "lesion_mask.nii.gz")).shape == (40, 40, 40)
    other = nifti_writer(tmp_path / "other" / "FLAIR.nii.gz", np.pad(np.ones((30, 30, 30), np.float32), 5)[:, :, :38])
    with pytest.raises(InputError, match="not on the model's grid"):
        segment({"FLAIR": other}, tmp_path / "seg2", model=out / "model")
    assert not (tmp_path / "seg2").exists()


def trainer_file(out: Path, name: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(out / "regional" / f"{name}.safetensors"))


def test_resume_continues_exactly(tmp_path: Path, tiny_dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Interrupted mid generic stage and mid fine-tuning, resumed twice: the same model as straight."""
    from safetensors.torch import load_file

    from mslesion.train import trainer as trainer_module
    from mslesion.train.run import run_training

    # Two regions along x (one network, the right one mirrored), 2 generic + 2 fine-tune steps.
    small = {"size": [24, 40, 40], "per_axis": [2, 1, 1], "generic_steps": 2, "finetune_steps": 2, "log_every": 1}
    config = _config(tmp_path, tiny_dataset, **small)
    straight = tmp_path / "straight"
    run_training(config, straight)
    split = tmp_path / "split"
    original = trainer_module.Trainer.train_step
    for done, stop_at in ((0, 1), (1, 3)):  # stop after global step 1 (generic), then 3 (fine-tuning)
        calls = {"n": done}

        def interrupted(self, calls=calls, stop_at=stop_at):
            if calls["n"] == stop_at:
                raise KeyboardInterrupt
            calls["n"] += 1
            return original(self)

        monkeypatch.setattr(trainer_module.Trainer, "train_step", interrupted)
        with pytest.raises(KeyboardInterrupt):
            run_training(config, split, resume=done > 0)
        assert json.loads((split / "checkpoint" / "state.json").read_text())["step"] == stop_at
    monkeypatch.setattr(trainer_module.Trainer, "train_step", original)
    run_training(config, split, resume=True)
    a, b = load_file(str(straight / "model" / "model.safetensors")), load_file(str(split / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert (straight / "log.csv").read_text().count("\n") == (split / "log.csv").read_text().count("\n")


def test_layout_errors(tmp_path: Path, tiny_dataset: Path) -> None:
    with pytest.raises(InputError, match="leave gaps"):
        _regional_trainer(tmp_path, tiny_dataset, size=[16, 16, 16])
    with pytest.raises(InputError, match="regional.per_axis"):
        load_config(_config(tmp_path, tiny_dataset, per_axis=[2, 2]))
