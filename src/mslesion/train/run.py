"""`mslesion train --config CFG --out RUN_DIR [--resume]`: from a YAML to a trained model folder.

RUN_DIR holds `config.yaml` (as resolved), `splits.json`, `log.csv`, `curves.png`,
`checkpoint/` (for --resume) and `model/` (safetensors + model.json, the best epoch).
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from mslesion.errors import InputError
from mslesion.io.atomic import write_json_atomic, write_text_atomic
from mslesion.io.case import required_contrasts
from mslesion.train.config import TrainConfig, load_config

logger = logging.getLogger(__name__)


def load_cases(cfg: TrainConfig):
    """Every case of the configured datasets, then the split into (train, validation)."""
    from mslesion.io.dataset import load_dataset
    from mslesion.train.splits import split_cases

    cases = []
    for index, path in enumerate(cfg.data.datasets):
        for case in load_dataset(path):
            case.meta.extra["dataset_index"] = index
            cases.append(case)
    required = required_contrasts(cfg.data.contrasts)
    cases = [c for c in cases if c.lesion is not None and all(r in c.images for r in required) and c.case_id not in cfg.data.exclude]
    if cfg.data.max_cases:
        cases = cases[: cfg.data.max_cases]
    if not cases:
        raise InputError(None, f"no case with {' and '.join(required)} and a lesion mask in data.datasets")
    try:
        train, val = split_cases(
            cases,
            cfg.data.split,
            val_fraction=cfg.data.val_fraction,
            n_folds=cfg.data.n_folds,
            fold=cfg.data.fold,
            site=cfg.data.val_site,
            seed=cfg.train.seed,
        )
    except ValueError as exc:
        raise InputError(None, f"data split: {exc}") from None
    val += [c for path in cfg.data.val_datasets for c in load_dataset(path) if c.lesion is not None]
    if not train:
        raise InputError(None, "the split leaves no training case")
    return train, val


def run_training(config_path: Path, out: Path, resume: bool = False, time_budget_minutes: float | None = None) -> dict:
    """Train as configured; return a summary (steps, best validation Dice, why it stopped).

    The process's torch thread count and denormal flushing are set for the run and restored after it.
    """
    import torch

    threads = torch.get_num_threads()
    try:
        return _run_training(config_path, out, resume, time_budget_minutes)
    finally:
        torch.set_num_threads(threads)
        torch.set_flush_denormal(False)


def _run_training(config_path: Path, out: Path, resume: bool, time_budget_minutes: float | None) -> dict:
    import torch
    import yaml

    from mslesion.train.data import fit_nyul, prepare_case
    from mslesion.train.trainer import Trainer, init_distributed

    cfg = load_config(config_path)
    if time_budget_minutes is not None:
        cfg.train.time_budget_minutes = time_budget_minutes
    if cfg.train.num_threads > 0:
        torch.set_num_threads(cfg.train.num_threads)
    torch.set_flush_denormal(True)  # denormal floats slow CPU convolutions many times over (see preprocess.hdbet)
    dist = init_distributed()
    train, val = load_cases(cfg)
    if dist.main:
        if not resume and (out / "checkpoint").exists():
            raise InputError(out, "already holds a training run; use --resume or another --out")
        write_text_atomic(out / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        write_json_atomic(out / "splits.json", {"train": [c.case_id for c in train], "validation": [c.case_id for c in val]})
    logger.info("preparing %d training and %d validation cases", len(train), len(val))
    nyul = fit_nyul(train, cfg.data.contrasts) if cfg.data.normalisation == "nyul" else None  # fitted on training cases only
    prepare = functools.partial(
        prepare_case, contrasts=cfg.data.contrasts, seed=cfg.train.seed, normalisation=cfg.data.normalisation, nyul=nyul
    )
    prepared_train = [prepare(c) for c in train]
    prepared_val = [prepare(c) for c in val] if dist.main else []
    landmarks = {name: s.to_dict() for name, s in (nyul or {}).items()}
    if cfg.model.architecture == "dlb":  # DeepLesionBrain: regional networks, trained in stages
        from mslesion.train.regional import RegionalTrainer

        trainer: RegionalTrainer | Trainer = RegionalTrainer(cfg, out, prepared_train, prepared_val, dist, nyul=landmarks)
    else:
        trainer = Trainer(cfg, out, prepared_train, prepared_val, dist, nyul=landmarks)
    if resume:
        trainer.resume()
    state = trainer.fit()
    summary = {
        "steps": state.step,
        "epochs": state.epoch,
        "best_val_dice": state.best_dice,
        "threshold": state.best_threshold,
        "stopped": state.stopped,
        "world_size": dist.world,
    }
    if dist.main:
        write_json_atomic(out / "summary.json", summary)
    if dist.world > 1:
        import torch.distributed as tdist

        tdist.barrier()
        tdist.destroy_process_group()
    return summary
