"""DeepLesionBrain's hierarchical specialisation (Kamraoui et al. 2022), end to end.

Stage 1 trains one generic compact U-Net on crops of every region of the (MNI) grid,
right-hemisphere regions flipped onto their left twins (symmetric training). Stage 2
copies its weights to every network group (`models.dlb.specialise`) and fine-tunes each
copy on its own region and mirrored twin only. The saved model is the `RegionalEnsemble`
of all fine-tuned networks (majority vote at inference).

Each stage is a `Trainer` (same augmentation, loss, optimiser, learning-rate schedule,
gradient clipping and counter-based randomness) given the stage's network and a sampler
of fixed region crops. Checkpoints hold the current stage's network and optimiser and
the stage/step reached; finished stages are kept as safetensors files in `regional/`,
so `--resume` continues exactly, mid-stage included.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mslesion.errors import InputError
from mslesion.io.atomic import write_csv_atomic
from mslesion.models.dlb import (
    Members,
    Region,
    RegionalEnsemble,
    build_compact_unet,
    majority,
    network_groups,
    region_starts,
    regions,
)
from mslesion.train.config import TrainConfig
from mslesion.train.data import PreparedCase
from mslesion.train.sampling import extract_patch
from mslesion.train.trainer import Dist, Trainer, log_row, model_card, plot_curves

logger = logging.getLogger(__name__)

LOG_COLUMNS = ["stage", "epoch", "step", "train_loss", "val_dice", "val_threshold", "lr", "seconds"]
STAGES_DIR = "regional"
UNET_KEYS = ("features", "dropout", "groups")


def crop_region(case: PreparedCase, region: Region, flipped: bool) -> tuple[np.ndarray, np.ndarray]:
    """(image (C, *size), label (1, *size) float32) of a region given in full-grid coordinates.

    The case holds only its brain box, starting at `case.origin`; voxels of the region
    outside the box are background (0 after normalisation). Flipped crops are mirrored
    along x (array axis 0), as `models.dlb.crop_regions` does on whole volumes.
    """
    size = np.asarray(region.size)
    centre = np.asarray(region.start) - np.asarray(case.origin) + size // 2  # extract_patch starts at centre - size // 2
    image = extract_patch(case.image, centre, region.size)
    label = extract_patch(case.label[None], centre, region.size).astype(np.float32)
    if flipped:
        image, label = np.ascontiguousarray(image[:, ::-1]), np.ascontiguousarray(label[:, ::-1])
    return image, label


class RegionSampler:
    """Batches of region crops for one stage: any (case, member) pair, or with probability
    `lesion_fraction` one whose region holds lesion voxels (lesions are a small part of
    the brain; without this most crops of a peripheral region are empty)."""

    def __init__(
        self,
        cases: list[PreparedCase],
        rs: list[Region],
        members: Members,
        batch_size: int,
        lesion_fraction: float,
        case_probabilities: np.ndarray | None = None,
    ) -> None:
        self.cases, self.regions, self.members = cases, rs, list(members)
        self.batch_size, self.lesion_fraction, self.case_probabilities = batch_size, lesion_fraction, case_probabilities
        self.lesion_pairs = [
            (c, m) for c, case in enumerate(cases) for m, (index, _) in enumerate(self.members) if _has_lesion(case, rs[index])
        ]

    def __call__(self, rng: np.random.Generator) -> list[dict[str, Any]]:
        items = []
        for _ in range(self.batch_size):
            if self.lesion_pairs and rng.random() < self.lesion_fraction:
                c, m = self.lesion_pairs[rng.integers(len(self.lesion_pairs))]
            else:
                n = len(self.cases)
                c = int(rng.choice(n, p=self.case_probabilities)) if self.case_probabilities is not None else int(rng.integers(n))
                m = int(rng.integers(len(self.members)))
            index, flipped = self.members[m]
            image, label = crop_region(self.cases[c], self.regions[index], flipped)
            items.append({"image": image, "label": label, "case": self.cases[c]})
        return items


def _has_lesion(case: PreparedCase, region: Region) -> bool:
    if not case.lesion_voxels:
        return False
    voxels = np.concatenate(case.lesion_voxels) + np.asarray(case.origin)
    lo, hi = np.asarray(region.start), np.asarray(region.start) + np.asarray(region.size)
    return bool(np.all((voxels >= lo) & (voxels < hi), axis=1).any())


def full_grid(case: PreparedCase, array: np.ndarray) -> np.ndarray:
    """A brain-box array (C, ...) put back on the case's full grid (zeros outside the box)."""
    assert case.grid_shape is not None  # prepare_case records every case's full grid
    out = np.zeros((array.shape[0], *case.grid_shape), array.dtype)
    box = tuple(slice(o, o + n) for o, n in zip(case.origin, array.shape[1:], strict=True))
    out[(slice(None), *box)] = array
    return out


def _grid(case: PreparedCase) -> tuple[tuple[int, int, int], np.ndarray]:
    """The shape and affine of the case's full grid (prepare_case records both for every case)."""
    assert case.grid_shape is not None and case.affine is not None
    return case.grid_shape, case.affine


def layout(cfg: TrainConfig, cases: list[PreparedCase]) -> tuple[list[Region], dict[int, list[tuple[int, bool]]], np.ndarray]:
    """Regions and network groups on the training cases' common grid (InputError when they differ)."""
    grids = {(shape, tuple(np.round(affine, 3).ravel())) for shape, affine in map(_grid, cases)}
    if len(grids) != 1:
        raise InputError(
            None,
            f"DeepLesionBrain needs every case on one grid (MNI space); the training cases differ ({len(grids)} grids: shape or affine)",
        )
    shape, affine = _grid(cases[0])
    reg = cfg.regional
    try:
        rs = regions(shape, reg.size, stride=reg.stride) if reg.stride else regions(shape, reg.size, counts=reg.per_axis)
    except ValueError as exc:
        raise InputError(None, f"regional layout on the grid {shape}: {exc}") from None
    return rs, network_groups(rs, affine), affine


@dataclass
class RegionalState:
    """What a regional checkpoint restores besides tensors (`stage` 0 = generic, g + 1 = group g)."""

    stage: int = 0
    stage_step: int = 0  # steps done in `stage`
    step: int = 0  # steps done in all stages
    epoch: int = 0  # log rows written
    history: list[dict[str, Any]] = field(default_factory=list)
    best_dice: float = -1.0
    best_threshold: float = 0.5
    generic_dice: float | None = None
    stopped: str = ""


class RegionalTrainer:
    """Trains a DeepLesionBrain model (generic stage, then one fine-tune per network group)."""

    def __init__(
        self, cfg: TrainConfig, out: Path, train_cases, val_cases, dist: Dist | None = None, nyul: dict[str, Any] | None = None
    ) -> None:
        self.cfg, self.out, self.dist = cfg, out, dist or Dist()
        self.train_cases, self.val_cases = train_cases, val_cases
        self.nyul = nyul or {}  # fitted Nyul landmarks per contrast, stored in the model card
        self.regions, self.groups, self.affine = layout(cfg, train_cases)
        unknown = sorted(set(cfg.model.params) - set(UNET_KEYS))
        if unknown:
            raise InputError(None, f"model.params for dlb: unknown {', '.join(unknown)} (known: {', '.join(UNET_KEYS)})")
        self.unet_params = dict(cfg.model.params)
        self.state = RegionalState()
        self.n_stages = 1 + len(self.groups) if cfg.regional.finetune_steps > 0 else 1
        logger.info("DeepLesionBrain: %d regions, %d networks, grid %s", len(self.regions), len(self.groups), train_cases[0].grid_shape)

    # --- stages ------------------------------------------------------------------------
    def stage_name(self, stage: int) -> str:
        return "generic" if stage == 0 else f"group{stage - 1}"

    def stage_steps(self, stage: int) -> int:
        return self.cfg.regional.generic_steps if stage == 0 else self.cfg.regional.finetune_steps

    def _stage_config(self, stage: int) -> TrainConfig:
        """The run's config with the stage's length, seed and learning rate."""
        cfg = copy.deepcopy(self.cfg)
        cfg.train.max_epochs, cfg.train.steps_per_epoch = 1, self.stage_steps(stage)
        cfg.train.seed = int(np.random.SeedSequence([self.cfg.train.seed, stage]).generate_state(1)[0])
        cfg.model.architecture = "dlb-unet"
        if stage > 0 and self.cfg.regional.finetune_lr is not None:
            cfg.optim.lr = self.cfg.regional.finetune_lr
        return cfg

    def _network(self, stage: int) -> torch.nn.Module:
        """A fresh compact U-Net (generic stage, seeded) or a copy of the generic weights."""
        torch.manual_seed(self.cfg.train.seed)
        net = build_compact_unet(len(self.cfg.data.contrasts), **self.unet_params)
        if stage > 0:
            net.load_state_dict(self._load_stage(0))
        return net

    def stage_trainer(self, stage: int) -> Trainer:
        cfg = self._stage_config(stage)
        members = [m for g in self.groups for m in self.groups[g]] if stage == 0 else self.groups[stage - 1]
        from mslesion.train.data import case_probabilities

        probabilities = case_probabilities(self.train_cases, cfg.data.dataset_weights) if cfg.data.dataset_weights else None
        sampler = RegionSampler(self.train_cases, self.regions, members, cfg.patch.batch_size, cfg.patch.lesion_fraction, probabilities)
        return Trainer(cfg, self.out, self.train_cases, [], self.dist, net=self._network(stage), sampler=sampler)

    def _stage_path(self, stage: int) -> Path:
        return self.out / STAGES_DIR / f"{self.stage_name(stage)}.safetensors"

    def _save_stage(self, stage: int, net: torch.nn.Module) -> None:
        import os
        import uuid

        from safetensors.torch import save_file

        path = self._stage_path(stage)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        save_file({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, str(tmp))
        os.replace(tmp, path)

    def _load_stage(self, stage: int) -> dict[str, torch.Tensor]:
        from safetensors.torch import load_file

        path = self._stage_path(stage)
        if not path.is_file():
            raise InputError(path, "finished stage's weights are missing; cannot resume")
        return load_file(str(path))

    # --- persistence -------------------------------------------------------------------
    def _checkpoint(self, trainer: Trainer) -> None:
        from mslesion.train.checkpoint import save_checkpoint

        if self.dist.main:
            save_checkpoint(self.out / "checkpoint", trainer.net, trainer.optimizer, asdict(self.state))

    def resume(self) -> None:
        folder = self.out / "checkpoint"
        if not (folder / "state.json").is_file():
            raise InputError(folder, "no checkpoint to resume from")
        self.state = RegionalState(**{k: v for k, v in json.loads((folder / "state.json").read_text()).items() if k != "optimizer"})
        logger.info("resumed at stage %s step %d", self.stage_name(self.state.stage), self.state.stage_step)

    # --- the loop ----------------------------------------------------------------------
    def _log(self, stage: int, losses: list[float], lr: float, started: float, **val: Any) -> None:
        """One log.csv row (and curves.png): mean loss since the last row, or a validation result."""
        st = self.state
        st.epoch += 1
        row = {
            "stage": self.stage_name(stage) if stage < self.n_stages else "ensemble",
            **log_row(st.epoch, st.step, losses, lr, started),
            **val,
        }
        if self.dist.main:
            st.history.append(row)
            write_csv_atomic(self.out / "log.csv", st.history, LOG_COLUMNS)
            plot_curves(st.history, self.out / "curves.png")
        logger.info("%s step %d loss %s", row["stage"], st.step, row["train_loss"])

    def _run_stage(self, stage: int, deadline: float | None) -> bool:
        """Train one stage from the state's step; False when the time budget ran out first."""
        from mslesion.train.checkpoint import load_checkpoint

        trainer = self.stage_trainer(stage)
        st = self.state
        if st.stage_step > 0:  # resume inside this stage: network and optimiser from the checkpoint
            load_checkpoint(self.out / "checkpoint", trainer.net, trainer.optimizer)
        trainer.state.step = st.stage_step
        steps, every = self.stage_steps(stage), self.cfg.regional.log_every
        started, losses = time.perf_counter(), []
        while st.stage_step < steps:
            if deadline is not None and time.perf_counter() > deadline:
                self._checkpoint(trainer)
                return False
            losses.append(trainer.train_step())
            st.stage_step, st.step = trainer.state.step, st.step + 1
            if st.stage_step % every == 0 or st.stage_step == steps:
                self._log(stage, losses, trainer.optimizer.param_groups[0]["lr"], started)
                started, losses = time.perf_counter(), []
            if st.stage_step % self.cfg.train.checkpoint_every == 0 and st.stage_step < steps:
                self._checkpoint(trainer)
        if self.dist.main:
            self._save_stage(stage, trainer.net)  # before the checkpoint that names the next stage
        if self.dist.world > 1:  # every rank reads the generic weights next
            import torch.distributed as tdist

            tdist.barrier()
        if stage == 0 and self.val_cases and self.dist.main:
            st.generic_dice, _ = self.validate(self.ensemble(generic_only=True))
            self._log(stage, [], trainer.optimizer.param_groups[0]["lr"], started, val_dice=round(st.generic_dice, 5))
        st.stage, st.stage_step = stage + 1, 0
        self._checkpoint(trainer)
        return True

    def fit(self) -> RegionalState:
        """Run the remaining stages, then validate the ensemble, pick its threshold and save it."""
        budget = self.cfg.train.time_budget_minutes
        deadline = None if budget is None else time.perf_counter() + budget * 60
        st = self.state
        while st.stage < self.n_stages:
            if not self._run_stage(st.stage, deadline):
                st.stopped = "time budget"
                return st
        if self.dist.main:
            started, ensemble = time.perf_counter(), self.ensemble()
            if self.val_cases:
                st.best_dice, st.best_threshold = self.validate(ensemble)
                self._log(self.n_stages, [], 0.0, started, val_dice=round(st.best_dice, 5), val_threshold=st.best_threshold)
            self.save_model(ensemble)
        st.stopped = "all stages done"
        return st

    # --- the model ---------------------------------------------------------------------
    def ensemble(self, generic_only: bool = False) -> RegionalEnsemble:
        """The regional networks of the finished stages (generic copies before stage 2)."""
        generic = build_compact_unet(len(self.cfg.data.contrasts), **self.unet_params)
        generic.load_state_dict(self._load_stage(0))
        model = RegionalEnsemble.from_generic(generic, self.regions, self.groups, self.affine)
        if not generic_only and self.n_stages > 1:
            for g in self.groups:
                model.networks[g].load_state_dict(self._load_stage(g + 1))
        return model.eval()

    def validate(self, model: RegionalEnsemble) -> tuple[float, float]:
        """Mean per-case Dice of the majority vote (brain only, small lesions removed) at the
        best of infer.thresholds, and that threshold."""
        from mslesion.evaluate.conventions import EmptyPolicy
        from mslesion.evaluate.voxel import dice
        from mslesion.postprocess.lesions import binarise

        thresholds = self.cfg.infer.thresholds
        scores = np.zeros((len(self.val_cases), len(thresholds)))
        for i, case in enumerate(self.val_cases):
            votes, cover, _ = model.vote(torch.from_numpy(full_grid(case, case.image)), thresholds)
            brain = full_grid(case, case.brain[None])[0]
            label = full_grid(case, case.label[None])[0]
            for j in range(len(thresholds)):
                mask = majority(votes[j], cover).cpu().numpy() & brain
                mask = binarise(mask.astype(np.float32), 0.5, self.cfg.infer.min_lesion_mm3, float(np.prod(case.spacing)))
                scores[i, j] = dice(mask, label, EmptyPolicy.perfect_when_both_empty())
        mean = scores.mean(axis=0)
        best = int(np.argmax(mean))
        return float(mean[best]), float(thresholds[best])

    def model_params(self) -> dict[str, Any]:
        """Everything `models.dlb.build_dlb` needs to rebuild the ensemble (stored in model.json)."""
        return {
            **self.unet_params,
            "grid_shape": list(self.train_cases[0].grid_shape),
            "grid_affine": np.asarray(self.affine).round(6).tolist(),
            "region_size": list(self.regions[0].size),
            "starts": region_starts(self.regions),
            "group_members": [[[i, f] for i, f in self.groups[g]] for g in range(len(self.groups))],
        }

    def save_model(self, model: RegionalEnsemble) -> None:
        from mslesion.models.store import save_model

        card = model_card(
            self.cfg,
            self.train_cases,
            self.val_cases,
            architecture="dlb",
            params=self.model_params(),
            patch_size=tuple(self.regions[0].size),
            threshold=self.state.best_threshold,
            nyul=self.nyul,
            regions=len(self.regions),
            networks=len(self.groups),
            generic_steps=self.cfg.regional.generic_steps,
            finetune_steps=self.cfg.regional.finetune_steps,
            steps=sum(self.stage_steps(s) for s in range(self.n_stages)),
            val_dice=self.state.best_dice,
            val_dice_generic_only=self.state.generic_dice,
        )
        save_model(model.state_dict(), card, self.out / "model")
