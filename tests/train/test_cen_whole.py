"""CEN trains on whole brain-cropped volumes (batch of 1) and keeps the threshold that
maximises mean Dice on the training cases (Brosch et al. 2016)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

from mslesion.train.config import load_config, whole_image

TINY_CEN = {"filters": 4, "kernel": 5}


def _config(tmp_path: Path, dataset: Path) -> Path:
    cfg = {
        "data": {"datasets": [str(dataset)], "contrasts": ["FLAIR", "T1"], "split": "holdout", "val_fraction": 0.2},
        "model": {"architecture": "cen", "params": TINY_CEN},
        "augment": {"affine": 0.0, "image_quality": 0.0},
        "loss": {"name": "sensitivity_specificity", "params": {"r": 0.05}},
        "optim": {"lr": 0.01, "warmup_steps": 0},
        "train": {"max_epochs": 1, "steps_per_epoch": 3, "seed": 2, "num_threads": 1},
        "infer": {"thresholds": [0.2, 0.4, 0.6, 0.8], "min_lesion_mm3": 0.0},
    }
    path = tmp_path / "cen.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_cen_defaults_to_whole_images(tmp_path: Path, tiny_dataset: Path) -> None:
    cfg = load_config(_config(tmp_path, tiny_dataset))
    assert whole_image(cfg)
    cfg.patch.whole_image = False
    assert not whole_image(cfg)
    cfg.model.architecture, cfg.patch.whole_image = "unet", None
    assert not whole_image(cfg)


def test_cen_trains_on_whole_cases_and_tunes_on_the_training_set(tmp_path: Path, tiny_dataset: Path, monkeypatch) -> None:
    from mslesion.infer.sliding import predict_probability
    from mslesion.io.dataset import load_dataset
    from mslesion.models.cen import tune_threshold
    from mslesion.models.store import load_model
    from mslesion.train import augment
    from mslesion.train.data import prepare_case
    from mslesion.train.run import run_training

    shapes = []
    real_augment = augment.augment_batch

    def recording(transforms, items, seed):
        shapes.append([(i["image"].shape, i["case"].image.shape) for i in items])
        return real_augment(transforms, items, seed)

    monkeypatch.setattr(augment, "augment_batch", recording)
    out = tmp_path / "run"
    run_training(_config(tmp_path, tiny_dataset), out)
    assert len(shapes) == 3
    assert all(len(batch) == 1 and batch[0][0] == batch[0][1] for batch in shapes)  # one whole brain box per step

    net, card = load_model(out / "model")
    assert card.training["threshold_source"] == "training set" and card.training["whole_image"]
    assert all(s % 16 == 0 for s in card.patch_size)
    splits = json.loads((out / "splits.json").read_text())
    cases = {c.case_id: c for c in load_dataset(tiny_dataset)}
    train = [prepare_case(cases[i], ["FLAIR", "T1"]) for i in splits["train"]]
    assert all(s >= n for case in train for s, n in zip(card.patch_size, case.image.shape[1:]))  # one window each
    probabilities = []
    for case in train:
        prob = predict_probability(
            net, case.image, case.brain, card.patch_size, overlap=0.25, flips=1, precision="float32", backend="torch"
        )  # as the trainer validates (fp32 training)
        prob[~case.brain] = 0
        probabilities.append(prob)
    threshold, dice = tune_threshold(probabilities, [c.label for c in train], [0.2, 0.4, 0.6, 0.8])
    assert card.threshold == threshold and np.isclose(card.training["train_dice"], dice)
