"""Training end to end on a tiny dataset: outputs, exact resume, splits, config errors, DDP."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from mslesion.errors import InputError
from mslesion.train.config import load_config

TINY_PARAMS = {"features": [4, 4, 8, 8, 16, 4]}


def _config(tmp_path: Path, dataset: Path, name: str = "cfg.yaml", **loop) -> Path:
    cfg = {
        "data": {"datasets": [str(dataset)], "contrasts": ["FLAIR", "T1"], "split": "holdout", "val_fraction": 0.2},
        "model": {"architecture": "unet", "params": TINY_PARAMS},
        "patch": {"size": [32, 32, 32], "batch_size": 2, "lesion_fraction": 0.7},
        "loss": {"name": "dice_ce"},
        "optim": {"lr": 0.003, "schedule": "constant", "warmup_steps": 0},
        # The CPU even where a GPU is: the exact-weights tests need its deterministic arithmetic.
        "train": {"max_epochs": 2, "steps_per_epoch": 2, "checkpoint_every": 1, "seed": 3, "num_threads": 1, "device": "cpu", **loop},
        "infer": {"thresholds": [0.3, 0.5]},
    }
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_train_writes_a_usable_run_folder(tmp_path: Path, tiny_dataset: Path) -> None:
    from mslesion.models.store import load_model
    from mslesion.train.run import run_training

    out = tmp_path / "run"
    path = _config(tmp_path, tiny_dataset)
    raw = yaml.safe_load(path.read_text())
    raw["infer"]["flips"] = 4
    path.write_text(yaml.safe_dump(raw))
    summary = run_training(path, out)
    assert summary["steps"] == 4 and summary["epochs"] == 2
    for name in ("config.yaml", "splits.json", "log.csv", "curves.png", "summary.json", "model/model.safetensors", "model/model.json"):
        assert (out / name).is_file(), name
    assert len((out / "log.csv").read_text().splitlines()) == 3  # header + 2 epochs
    splits = json.loads((out / "splits.json").read_text())
    assert len(splits["validation"]) == 1 and len(splits["train"]) == 5
    net, card = load_model(out / "model")
    assert card.contrasts == ["FLAIR", "T1"] and card.threshold in (0.3, 0.5)
    assert card.test_time_flips == 4  # infer.flips: what segment runs with it by default
    with pytest.raises(InputError, match="already holds a training run"):
        run_training(_config(tmp_path, tiny_dataset), out)


def test_resume_continues_exactly(tmp_path: Path, tiny_dataset: Path) -> None:
    from safetensors.torch import load_file

    from mslesion.train.run import run_training

    straight = tmp_path / "straight"
    run_training(_config(tmp_path, tiny_dataset), straight)
    split = tmp_path / "split"
    run_training(_config(tmp_path, tiny_dataset, "short.yaml", max_epochs=1), split)
    run_training(_config(tmp_path, tiny_dataset), split, resume=True)
    a = load_file(str(straight / "checkpoint" / "state.safetensors"))
    b = load_file(str(split / "checkpoint" / "state.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key].numpy(), b[key].numpy()), key


def test_loader_workers_train_exactly_as_the_training_process_alone(tmp_path: Path, tiny_dataset: Path) -> None:
    from safetensors.torch import load_file

    from mslesion.train.run import run_training

    alone, workers = tmp_path / "alone", tmp_path / "workers"
    run_training(_config(tmp_path, tiny_dataset), alone)
    run_training(_config(tmp_path, tiny_dataset, "workers.yaml", loader_workers=2), workers)
    a = load_file(str(alone / "checkpoint" / "state.safetensors"))
    b = load_file(str(workers / "checkpoint" / "state.safetensors"))
    for key in a:  # the same batches, in the same order: the same weights
        assert np.array_equal(a[key].numpy(), b[key].numpy()), key


def test_leave_site_out_and_kfold_splits(tmp_path: Path, tiny_dataset: Path) -> None:
    from mslesion.train.run import load_cases

    cfg = load_config(_config(tmp_path, tiny_dataset))
    cfg.data.split, cfg.data.val_site = "leave_site_out", "B"
    train, val = load_cases(cfg)
    assert {c.meta.site for c in train} == {"A"} and {c.case_id for c in val} == {"c3", "c4", "c5"}
    cfg.data.split, cfg.data.n_folds = "kfold", 3
    folds = []
    for fold in range(3):
        cfg.data.fold = fold
        folds.append({c.case_id for c in load_cases(cfg)[1]})
    assert sorted(x for f in folds for x in f) == [f"c{i}" for i in range(6)]  # each case validated once


def test_config_errors_are_one_line(tmp_path: Path, tiny_dataset: Path) -> None:
    path = _config(tmp_path, tiny_dataset)
    raw = yaml.safe_load(path.read_text())
    raw["patch"]["sise"] = [32, 32, 32]
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(InputError, match=r"unknown key\(s\) in 'patch': sise"):
        load_config(path)
    path.write_text("data: [unclosed")
    with pytest.raises(InputError, match="invalid YAML"):
        load_config(path)
    for section, key, typo in (("optim", "schedule", "cosin"), ("train", "precision", "bf61"), ("train", "device", "gpu")):
        raw = yaml.safe_load(_config(tmp_path, tiny_dataset).read_text())
        raw[section][key] = typo
        path.write_text(yaml.safe_dump(raw))
        with pytest.raises(InputError, match=rf"{section}.{key} must be one of .*not '{typo}'"):
            load_config(path)
    raw = yaml.safe_load(_config(tmp_path, tiny_dataset).read_text())
    for flips in (3, 2.0):
        raw["infer"]["flips"] = flips
        path.write_text(yaml.safe_dump(raw))
        with pytest.raises(InputError, match=f"infer.flips must be 1, 2 or 4, not {flips}"):
            load_config(path)
    raw["infer"]["flips"], raw["model"] = 4, {"architecture": "dlb"}
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(InputError, match="infer.flips 4 is not available for architecture dlb"):
        load_config(path)


def test_training_device_is_the_cpu_unless_a_gpu_is_there(tmp_path: Path, tiny_dataset: Path) -> None:
    import torch

    from mslesion.train.trainer import training_device

    assert training_device("cpu").type == "cpu"
    assert training_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():  # a recipe that insists on a GPU fails when the config is read, not mid-run
        path = _config(tmp_path, tiny_dataset)
        raw = yaml.safe_load(path.read_text())
        raw["train"]["device"] = "cuda"
        path.write_text(yaml.safe_dump(raw))
        with pytest.raises(InputError, match="train.device is cuda, but PyTorch sees no CUDA GPU"):
            load_config(path)


def test_carvemix_training_carves_the_training_lesions(tmp_path: Path, tiny_dataset: Path) -> None:
    from mslesion.train.config import load_config
    from mslesion.train.data import prepare_case
    from mslesion.train.run import load_cases, run_training
    from mslesion.train.trainer import Trainer

    path = _config(tmp_path, tiny_dataset)
    raw = yaml.safe_load(path.read_text())
    raw["augment"] = {"carvemix": 0.5}
    path.write_text(yaml.safe_dump(raw))
    cfg = load_config(path)
    train, _ = load_cases(cfg)
    cases = [prepare_case(c, cfg.data.contrasts) for c in train]
    trainer = Trainer(cfg, tmp_path / "t", cases, [])
    assert trainer.carvemix is not None and {lesion.source for lesion in trainer.carvemix.bank} <= {c.case_id for c in cases}
    assert len(trainer.carvemix.bank) > 0
    assert run_training(path, tmp_path / "run")["steps"] == 4


def test_carvemix_positions_leave_out_the_validation_cases_masks(tmp_path: Path, tiny_dataset: Path, nifti_writer) -> None:
    """With split: holdout, a validation case's own lesion sites are never drawn as CarveMix positions."""
    from mslesion.train.data import prepare_case
    from mslesion.train.run import load_cases
    from mslesion.train.trainer import Trainer

    path = _config(tmp_path, tiny_dataset)
    raw = yaml.safe_load(path.read_text())
    raw["augment"] = {"carvemix": 0.5}
    raw["data"]["lesion_locations"] = str(tmp_path / "locations")
    path.write_text(yaml.safe_dump(raw))
    cfg = load_config(path)
    train, val = load_cases(cfg)
    assert len(val) == 1
    for case, at in ((val[0].case_id, (5, 5, 5)), (train[0].case_id, (20, 21, 22))):
        mask = np.zeros((40, 40, 40), np.uint8)
        mask[at] = 1
        nifti_writer(tmp_path / "locations" / f"{case}_lesion.nii.gz", mask)
    prepared = [prepare_case(c, cfg.data.contrasts) for c in train]
    trainer = Trainer(cfg, tmp_path / "t", prepared, [prepare_case(c, cfg.data.contrasts) for c in val])
    assert trainer.carvemix is not None
    np.testing.assert_array_equal(trainer.carvemix.positions, [[20, 21, 22]])


def test_bf16_training_runs_and_records_plain_strings(tmp_path: Path, tiny_dataset: Path) -> None:
    from mslesion.train.run import run_training

    out = tmp_path / "run"
    path = _config(tmp_path, tiny_dataset, precision="bf16")
    raw = yaml.safe_load(path.read_text())
    raw["patch"]["size"] = [48, 48, 48]  # a 3^3 bottleneck: see the next test for 32^3
    path.write_text(yaml.safe_dump(raw))
    summary = run_training(path, out)
    assert summary["steps"] == 4 and np.isfinite(float((out / "log.csv").read_text().splitlines()[-1].split(",")[2]))
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["precision"] == "bf16"


def test_bf16_training_refuses_convolutions_smaller_than_their_kernel(tmp_path: Path, tiny_dataset: Path) -> None:
    """32^3 patches leave a 2^3 bottleneck under 3^3 kernels: PyTorch's CPU bf16 weight gradient there reads garbage."""
    from mslesion.models.unet import build_unet
    from mslesion.train.run import run_training
    from mslesion.train.trainer import small_bf16_convolutions

    net = build_unet(1, features=TINY_PARAMS["features"])
    _, small = small_bf16_convolutions(net, lambda: net(torch.zeros(1, 1, 32, 32, 32)))
    assert small and all("input 2x2x2, kernel 3x3x3" in s for s in small) and all(s.startswith("down_4.") for s in small)
    assert small_bf16_convolutions(net, lambda: net(torch.zeros(1, 1, 48, 48, 48)))[1] == []
    with pytest.raises(InputError, match="patch.size \\[32, 32, 32\\].*smaller than their kernel"):
        run_training(_config(tmp_path, tiny_dataset, precision="bf16"), tmp_path / "run")
    assert not (tmp_path / "run" / "model").exists()


@pytest.mark.skipif(shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists(), reason="torchrun missing")
def test_ddp_two_processes_on_cpu(tmp_path: Path, tiny_dataset: Path) -> None:
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    out = tmp_path / "ddp"
    cmd = [
        torchrun,
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "mslesion.cli",
        "train",
        "--config",
        str(_config(tmp_path, tiny_dataset, max_epochs=1)),
        "--out",
        str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 2
    assert (out / "model" / "model.safetensors").is_file()


@pytest.mark.parametrize("method", ["wm_peak", "nyul"])
def test_normalisation_is_chosen_in_the_config_and_stored_with_the_model(tmp_path: Path, tiny_dataset: Path, method: str) -> None:
    from mslesion.models.store import load_model
    from mslesion.pipeline import segment
    from mslesion.train.run import run_training

    path = _config(tmp_path, tiny_dataset, max_epochs=1)
    raw = yaml.safe_load(path.read_text())
    raw["data"]["normalisation"] = method
    path.write_text(yaml.safe_dump(raw))
    run_training(path, tmp_path / "run")
    _, card = load_model(tmp_path / "run" / "model")
    assert card.normalisation == method
    if method == "nyul":  # landmarks fitted on the training cases travel with the model
        assert sorted(card.nyul) == ["FLAIR", "T1"] and len(card.nyul["FLAIR"]["landmarks"]) == 11
    else:
        assert card.nyul == {}
    result = segment({"FLAIR": tiny_dataset / "c0" / "FLAIR.nii.gz"}, tmp_path / "seg", model=tmp_path / "run" / "model", flips=1)
    assert result.summary["model"]["architecture"] == "unet"
    raw["data"]["normalisation"] = "histogram"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(InputError, match="data.normalisation must be one of zscore_brain, wm_peak, nyul"):
        load_config(path)


def test_model_init_fine_tunes_from_a_trained_model(tmp_path: Path, tiny_dataset: Path) -> None:
    """model.init starts training from another run's weights; a mismatching model is refused at load time."""
    from safetensors.torch import load_file

    from mslesion.train.run import run_training

    first = tmp_path / "first"
    run_training(_config(tmp_path, tiny_dataset), first)
    cfg = yaml.safe_load(_config(tmp_path, tiny_dataset).read_text())
    cfg["model"]["init"] = str(first / "model")
    cfg["train"].update(max_epochs=1, steps_per_epoch=1)
    cfg["optim"]["lr"] = 1e-12  # one step that cannot move the weights
    path = tmp_path / "finetune.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run_training(path, tmp_path / "second")
    a, b = load_file(str(first / "model" / "model.safetensors")), load_file(str(tmp_path / "second" / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all(np.allclose(a[k].numpy(), b[k].numpy(), atol=1e-6) for k in a)
    cfg["data"]["contrasts"] = ["FLAIR"]
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(InputError, match="model.init"):
        load_config(path)


def test_training_restores_the_process_torch_settings(tmp_path: Path, tiny_dataset: Path) -> None:
    from mslesion.train.run import run_training

    threads = torch.get_num_threads()
    run_training(_config(tmp_path, tiny_dataset, max_epochs=1), tmp_path / "run")  # the config asks for 1 thread
    assert torch.get_num_threads() == threads
    assert torch.tensor([1e-39]).mul(1.0).item() != 0.0  # denormals are not flushed to zero any more
