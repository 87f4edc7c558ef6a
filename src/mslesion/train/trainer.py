"""The training loop: patches -> augmentation -> network -> loss, validation, checkpoints.

Randomness is counter-based: the patches, augmentations and dropout masks of step k come
from (seed, k, rank) alone, so `--resume` from a checkpoint at step k continues exactly
as if training had never stopped. Multi-process training uses PyTorch DDP launched by
`torchrun` (gloo backend on CPU); rank 0 validates, logs and writes files.
"""

from __future__ import annotations

import logging
import math
import os
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mslesion.errors import InputError
from mslesion.infer.backends import Backend
from mslesion.io.atomic import write_csv_atomic
from mslesion.precision import Precision as InferencePrecision
from mslesion.train.config import ImplantScaling, Precision, Schedule, TrainConfig

logger = logging.getLogger(__name__)


def model_card(
    cfg: TrainConfig,
    train_cases: list,
    val_cases: list,
    *,
    architecture: str,
    params: dict[str, Any],
    patch_size: tuple[int, ...],
    threshold: float,
    nyul: dict[str, Any] | None = None,
    **training: Any,
) -> Any:
    """The card saved with trained weights: how to apply them, and what they were trained on and where."""
    from mslesion.models.store import ModelCard

    assert len(patch_size) == 3  # a checked patch.size, a whole-image window or a region: 3D
    return ModelCard(
        architecture=architecture,
        contrasts=list(cfg.data.contrasts),
        params=params,
        patch_size=patch_size,
        threshold=threshold,
        normalisation=cfg.data.normalisation,
        nyul=nyul or {},
        min_lesion_mm3=cfg.infer.min_lesion_mm3,
        test_time_flips=cfg.infer.flips,
        modality_dropout=cfg.augment.modality_dropout > 0,
        spacing_mm=training_spacing(train_cases),
        training={
            "cases": [c.case_id for c in train_cases],
            "validation_cases": [c.case_id for c in val_cases],
            "sites": sorted({c.site or "" for c in train_cases}),
            "loss": cfg.loss.name,
            "hardware": training_hardware(training_device(cfg.train.device)),
            **training,
        },
    )


def training_spacing(train_cases: list) -> tuple[float, float, float]:
    """The training cases' median voxel size: `segment` resamples coarser input to it."""
    if not train_cases:
        return (1.0, 1.0, 1.0)
    median = np.median(np.array([c.spacing for c in train_cases], dtype=float), axis=0)
    return tuple(round(float(s), 4) for s in median)  # type: ignore[return-value]  # 3 axes; mypy cannot count a generator's items


def training_hardware(device: torch.device) -> str:
    """Where the weights were trained (recorded in the model card): GPU name, or CPU and thread count."""
    if device.type == "cuda":
        return f"GPU {torch.cuda.get_device_name(device)}"
    return f"CPU {platform.machine()} ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"


# A training loss beyond this (or not finite) means the run diverged: every loss here is a mean of
# terms of order 1 (a run seen diverging reached 1e17 and still wrote a model).
MAX_LOSS = 1e6

LOG_COLUMNS = ["epoch", "step", "train_loss", "val_dice", "val_threshold", "lr", "seconds"]


def log_row(epoch: int, step: int, losses: list[float], lr: float, started: float) -> dict[str, Any]:
    """One log.csv row: the mean training loss since the last row (validation columns filled in later)."""
    return {
        "epoch": epoch,
        "step": step,
        "train_loss": round(float(np.mean(losses)), 5) if losses else "",
        "val_dice": "",
        "val_threshold": "",
        "lr": f"{lr:.3g}",
        "seconds": round(time.perf_counter() - started, 1),
    }


@dataclass
class LoopState:
    """Everything besides tensors that a checkpoint must restore."""

    step: int = 0
    epoch: int = 0
    best_dice: float = -1.0
    best_threshold: float = 0.5
    epochs_without_improvement: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped: str = ""


@dataclass
class Dist:
    """Process-group facts; world size 1 when not launched by torchrun."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed() -> Dist:
    """Join the torchrun process group (gloo: works on CPU) when WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="gloo")
    return Dist(rank=dist.get_rank(), world=dist.get_world_size())


def learning_rate(cfg: TrainConfig, step: int, total_steps: int) -> float:
    """Linear warm-up, then cosine, polynomial (nnU-Net's 0.9) or constant decay."""
    base, warm = cfg.optim.lr, cfg.optim.warmup_steps
    if warm > 0 and step < warm:
        return base * (step + 1) / warm
    progress = min(1.0, (step - warm) / max(1, total_steps - warm))
    schedule = Schedule(cfg.optim.schedule)
    if schedule is Schedule.COSINE:
        return base * 0.5 * (1 + math.cos(math.pi * progress))
    if schedule is Schedule.POLY:
        return base * (1 - progress) ** 0.9
    return base


class StepBatches(torch.utils.data.Dataset):
    """Steps first..end-1 of a trainer as a dataset: item i is `trainer.batch_for_step(first + i)`.
    Workers are forked, so the prepared cases are shared, not copied."""

    def __init__(self, trainer: Trainer, first: int, end: int) -> None:
        self.trainer, self.first, self.end = trainer, first, end

    def __len__(self) -> int:
        return self.end - self.first

    def __getitem__(self, index: int) -> dict[str, Any]:
        torch.set_num_threads(1)  # one core per worker: the workers are the parallelism
        return self.trainer.batch_for_step(self.first + index)


def as_made(batch: dict[str, Any]) -> dict[str, Any]:
    """A loader's collate step that leaves a made batch as it is (numpy arrays, metadata dicts)."""
    return batch


def training_device(choice: str) -> torch.device:
    """The device `train.device` names (auto: the first CUDA GPU when there is one, else the CPU)."""
    from mslesion.train.config import TrainDevice

    if TrainDevice(choice) is TrainDevice.CPU or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", torch.cuda.current_device())


def autocast(precision: str, device: str = "cpu"):
    """The forward pass's autocast context: bf16 when asked, else a no-op."""
    return torch.autocast(device, dtype=torch.bfloat16, enabled=Precision(precision) is Precision.BF16)


def small_bf16_convolutions(model: nn.Module, forward: Callable[[], Any]) -> tuple[Any, list[str]]:
    """`forward()`'s result, and the convolutions of `model` whose input was smaller than their kernel along an axis in it.

    PyTorch's CPU bfloat16 convolution (oneDNN, torch 2.13) computes the weight gradient of
    such a layer wrongly, reading uninitialised memory: the loss turns NaN or the weights
    jump at random (measured: a 3x3x3 convolution on a 2x2x2 bottleneck, as a 32^3 patch
    gives a 5-level U-Net, gets weight gradients of 1e24). float32 is not affected.
    """
    found: list[str] = []

    def check(name: str, module: nn.modules.conv._ConvNd, args: tuple) -> None:
        kernel, spatial = tuple(module.kernel_size), tuple(args[0].shape[2:])
        if any(s < k for s, k in zip(spatial, kernel)):
            found.append(f"{name} (input {'x'.join(map(str, spatial))}, kernel {'x'.join(map(str, kernel))})")

    hooks = [
        m.register_forward_pre_hook(lambda mod, args, n=n: check(n, mod, args))
        for n, m in model.named_modules()
        if isinstance(m, nn.modules.conv._ConvNd)
    ]
    try:
        result = forward()
    finally:
        for hook in hooks:
            hook.remove()
    return result, found


def make_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    if cfg.optim.name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    if cfg.optim.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.optim.lr, momentum=0.99, nesterov=True, weight_decay=cfg.optim.weight_decay)
    raise InputError(None, f"optim.name must be adamw or sgd, not {cfg.optim.name!r}")


def _step_seed(seed: int, step: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0])


def plot_curves(history: list[dict[str, Any]], path: Path) -> None:
    """Training loss and validation Dice per epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    train = [(h["epoch"], h["train_loss"]) for h in history if h["train_loss"] not in ("", None)]
    if train:
        ax.plot(*zip(*train), label="train loss")
    val = [(h["epoch"], h["val_dice"]) for h in history if h["val_dice"] not in ("", None)]
    if val:
        ax.plot(*zip(*val), marker="o", label="validation Dice")
    ax.set_xlabel("epoch")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def whole_image_window(cases) -> tuple[int, int, int]:
    """One inference window holding every training brain box, rounded up to multiples of 16."""
    shapes = np.array([c.image.shape[1:] for c in cases]).max(axis=0)
    return tuple(int(-(-n // 16) * 16) for n in shapes)  # type: ignore[return-value]  # 3 axes; mypy cannot count a generator's items


class Trainer:
    """Trains one network from a TrainConfig into a run folder.

    Hooks for other training schemes (DeepLesionBrain's regional stages): `net` replaces
    the network built from the config (e.g. one initialised from generic weights), and
    `sampler(rng)` replaces lesion-first patch sampling (e.g. crops of fixed regions).
    """

    def __init__(
        self,
        cfg: TrainConfig,
        out: Path,
        train_cases,
        val_cases,
        dist: Dist | None = None,
        net: nn.Module | None = None,
        sampler: Callable[[np.random.Generator], list[dict[str, Any]]] | None = None,
        nyul: dict[str, Any] | None = None,
    ) -> None:
        from mslesion.losses import make_loss
        from mslesion.models.registry import build_network, data_params
        from mslesion.train.augment import make_transforms
        from mslesion.train.config import whole_image

        self.cfg, self.out, self.dist = cfg, out, dist or Dist()
        self.train_cases, self.val_cases = train_cases, val_cases
        self.nyul = nyul or {}  # fitted Nyul landmarks per contrast, stored in the model card
        self.sites = sorted({c.site or "" for c in train_cases})
        self.params = data_params(cfg.model.architecture, cfg.model.params, self.sites)
        self.sampler = sampler
        self.whole_image = whole_image(cfg) and sampler is None
        # Whole-image models see each brain box in one window at inference too.
        self.patch_size = whole_image_window(train_cases) if self.whole_image else tuple(cfg.patch.size)
        torch.manual_seed(cfg.train.seed)  # identical initial weights on every rank
        self.net = net if net is not None else build_network(cfg.model.architecture, len(cfg.data.contrasts), self.params)
        if net is None and cfg.model.init is not None:
            from mslesion.train.config import initial_weights

            try:
                weights = initial_weights(cfg)
                assert weights is not None  # model.init is set
                self.net.load_state_dict(weights)
            except RuntimeError:
                raise InputError(cfg.model.init, "model.init: its weights do not fit model.params") from None
        self.device = training_device(cfg.train.device)
        self.net.to(self.device)  # before the optimiser is made, so its state lives there too
        self.model: nn.Module = self.net
        self.checked_bf16_shapes = False  # see small_bf16_convolutions, checked on the first step
        if self.dist.world > 1:
            self.model = nn.parallel.DistributedDataParallel(self.net)
        self.loss = make_loss(cfg.loss.name, **cfg.loss.params)
        if isinstance(self.loss, nn.Module):  # its buffers (e.g. a pos_weight) where the logits are; a plain function has none
            self.loss.to(self.device)
        self.optimizer = make_optimizer(cfg, self.net.parameters())
        self.transforms = make_transforms(cfg.augment, len(cfg.data.contrasts))
        from mslesion.train.data import case_probabilities

        self.case_probabilities = case_probabilities(train_cases, cfg.data.dataset_weights) if cfg.data.dataset_weights else None
        # Lesions of neither the test cases nor the validation cases are drawn into training patches.
        held_out = [*cfg.data.exclude, *(c.case_id for c in val_cases)]
        self.carvemix = self._carvemix(held_out) if cfg.augment.carvemix > 0 and sampler is None and not self.whole_image else None
        self.tissue_contrast = None
        if cfg.augment.tissue_contrast > 0 and sampler is None and not self.whole_image:
            from mslesion.train.tissue_contrast import TissueContrast

            self.tissue_contrast = TissueContrast(train_cases)
        self.implant = None
        if cfg.augment.implant > 0 and sampler is None and not self.whole_image:
            from mslesion.train.lesion_implant import LesionImplant

            assert cfg.data.lesion_locations is not None  # load_config refuses implant without it
            flair = cfg.data.contrasts.index("FLAIR") if "FLAIR" in cfg.data.contrasts else None
            lesion_poor = cfg.augment.implant_scaling == ImplantScaling.LESION_POOR
            self.implant = LesionImplant(train_cases, Path(cfg.data.lesion_locations), held_out, flair, lesion_poor)
        self.state = LoopState()
        self.total_steps = cfg.train.max_epochs * cfg.train.steps_per_epoch

    def _carvemix(self, held_out: list[str]):
        """CarveMix over the training cases; positions from `data.lesion_locations` without `held_out`'s masks."""
        from mslesion.train.carvemix import CarveMix, lesion_locations

        cfg, cases = self.cfg, self.train_cases
        positions = None
        if cfg.data.lesion_locations is not None:
            positions = lesion_locations(Path(cfg.data.lesion_locations), held_out, cases[0].grid_shape, cfg.train.seed)
        return CarveMix(cases, positions, cfg.patch.size)

    # --- persistence -------------------------------------------------------------------
    def checkpoint(self) -> None:
        from mslesion.train.checkpoint import save_checkpoint

        if self.dist.main:
            save_checkpoint(self.out / "checkpoint", self.net, self.optimizer, self.state.__dict__)

    def resume(self) -> None:
        from mslesion.train.checkpoint import load_checkpoint

        meta = load_checkpoint(self.out / "checkpoint", self.net, self.optimizer)
        self.state = LoopState(**meta)
        logger.info("resumed at step %d (epoch %d)", self.state.step, self.state.epoch)

    def save_model(self) -> None:
        from mslesion.models.store import save_model

        threshold, extra = self.state.best_threshold, {}
        if self.whole_image:  # Brosch et al.: the threshold maximising mean Dice on the TRAINING set
            threshold, train_dice = self.train_threshold()
            extra = {"threshold_source": "training set", "train_dice": train_dice, "whole_image": True}
        card = model_card(
            self.cfg,
            self.train_cases,
            self.val_cases,
            architecture=self.cfg.model.architecture,
            params=self.params,
            patch_size=self.patch_size,
            threshold=threshold,
            nyul=self.nyul,
            steps=self.state.step,
            val_dice=self.state.best_dice,
            **extra,
        )
        save_model(self.net.state_dict(), card, self.out / "model")

    # --- one step ----------------------------------------------------------------------
    def batch_for_step(self, step: int) -> dict[str, Any]:
        """The training batch of optimiser step `step`, made on the CPU: {'x', 'y'} arrays, plus
        'metadata' (FiLM) and 'sites' (scanner-invariant) when the network needs them.

        Depends only on the step (its seed), so loader workers (train.loader_workers) make
        the same batches as the training process itself."""
        from mslesion.train.augment import augment_batch
        from mslesion.train.data import case_metadata
        from mslesion.train.sampling import sample_batch, whole_case_batch

        cfg = self.cfg
        seed = _step_seed(cfg.train.seed, step, self.dist.rank)
        rng = np.random.default_rng(seed)
        if self.sampler is not None:
            items = self.sampler(rng)
        elif self.whole_image:
            items = whole_case_batch(self.train_cases, rng, self.case_probabilities)
        else:
            items = sample_batch(
                self.train_cases,
                rng,
                cfg.patch.batch_size,
                cfg.patch.size,
                cfg.patch.lesion_fraction,
                self.case_probabilities,
                self.carvemix,
                cfg.augment.carvemix,
            )
            if self.implant is not None:  # before the spatial transforms: the donors' masks are on the case's grid
                self.implant.apply(items, rng, cfg.augment.implant)
            if self.tissue_contrast is not None:  # before the spatial transforms: the prior is on the case's grid
                self.tissue_contrast.apply(items, rng, cfg.augment.tissue_contrast)
        items = augment_batch(self.transforms, items, seed)
        batch: dict[str, Any] = {"x": np.stack([i["image"] for i in items]), "y": np.stack([i["label"] for i in items])}
        if getattr(self.net, "needs_metadata", False):
            batch["metadata"] = [case_metadata(i["case"], cfg.data.contrasts, i["image"]) for i in items]
        if hasattr(self.net, "total_loss"):
            batch["sites"] = [self.sites.index(i["case"].site or "") for i in items]
        return batch

    def train_step(self, batch: dict[str, Any] | None = None) -> float:
        """One optimiser step on `batch` (made here when None: see batch_for_step); the loss."""
        cfg, step = self.cfg, self.state.step
        seed = _step_seed(cfg.train.seed, step, self.dist.rank)
        if batch is None:
            batch = self.batch_for_step(step)
        x = torch.as_tensor(batch["x"]).to(self.device)
        y = torch.as_tensor(batch["y"]).to(self.device)
        torch.manual_seed(seed)  # dropout masks
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(cfg, step, self.total_steps)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)

        def forward() -> torch.Tensor:
            with autocast(cfg.train.precision, self.device.type):
                if "metadata" in batch:
                    return self.model(x, self.net.metadata_spec.encode_batch(batch["metadata"]).to(self.device))  # type: ignore[union-attr,operator]  # FiLM's metadata_spec: nn.Module types unknown attributes as Tensor | Module
                return self.model(x)

        cpu_bf16 = Precision(cfg.train.precision) is Precision.BF16 and self.device.type == "cpu"
        if cpu_bf16 and not self.checked_bf16_shapes:
            logits, small = small_bf16_convolutions(self.net, forward)
            if small:
                raise InputError(
                    self.out,
                    f"train.precision bf16 with patch.size {list(cfg.patch.size)}: convolutions see inputs "
                    f"smaller than their kernel ({'; '.join(small[:3])}), where PyTorch's CPU bfloat16 "
                    "gradient is wrong; use a larger patch.size or train.precision fp32",
                )
            self.checked_bf16_shapes = True
        else:
            logits = forward()
        loss = self.loss(logits.float(), y)
        if "sites" in batch:  # e.g. the scanner-invariant site-confusion term
            sites = torch.tensor(batch["sites"], device=self.device)
            loss = self.net.total_loss(loss, sites, torch.Generator().manual_seed(seed))  # type: ignore[operator]  # the network's own method: nn.Module types unknown attributes as Tensor | Module
        value = float(loss.detach())
        self.check_diverged(value, step)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), 12.0)
        self.optimizer.step()
        self.state.step += 1
        return value

    def check_diverged(self, value: float, step: int) -> None:
        """Stop at a non-finite loss or one beyond MAX_LOSS, before this step's weights are stepped or saved.

        The model folder holds the weights of the last good validation only; under DDP every
        rank learns that one diverged (a scalar all-reduce), so none waits in backward forever.
        """
        here = not math.isfinite(value) or abs(value) > MAX_LOSS
        bad = here
        if self.dist.world > 1:
            import torch.distributed as dist

            flag = torch.tensor([float(here)])
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            bad = bool(flag.item())
        if bad:
            limit = f" (limit {MAX_LOSS:.0e})" if math.isfinite(value) else ""
            what = f"loss is {value:.3g}{limit}" if here else "the loss diverged on another rank"
            raise InputError(
                self.out,
                f"training diverged at step {step + 1}: {what}; no model written from this step on; lower optim.lr or check the data",
            )

    # --- validation --------------------------------------------------------------------
    def probability(self, case) -> np.ndarray:
        """The network's lesion probability on a prepared case (0 outside its brain)."""
        from mslesion.infer.sliding import predict_probability
        from mslesion.train.data import case_metadata

        self.net.eval()
        metadata = None
        if getattr(self.net, "needs_metadata", False):
            metadata = self.net.metadata_spec.encode(case_metadata(case, self.cfg.data.contrasts))  # type: ignore[union-attr,operator]  # FiLM's metadata_spec: nn.Module types unknown attributes as Tensor | Module
        # PyTorch, in the training's own precision: the weights change between validations, so an
        # exported backend would recompile every time, and it is the training arithmetic that is validated.
        arithmetic = InferencePrecision.BFLOAT16 if Precision(self.cfg.train.precision) is Precision.BF16 else InferencePrecision.FLOAT32
        prob = predict_probability(
            self.net,
            case.image,
            case.brain,
            self.patch_size,
            overlap=self.cfg.infer.overlap,
            flips=1,
            metadata=metadata,
            precision=arithmetic,
            backend=Backend.TORCH,
        )
        prob[~case.brain] = 0
        return prob

    def train_threshold(self) -> tuple[float, float]:
        """(threshold, mean Dice) over the training cases, on the infer.thresholds grid
        (`models.cen.tune_threshold`; both-empty cases count Dice 1)."""
        from mslesion.models.cen import tune_threshold

        probabilities = [self.probability(case) for case in self.train_cases]
        return tune_threshold(probabilities, [case.label for case in self.train_cases], self.cfg.infer.thresholds)

    def validate(self) -> tuple[float, float]:
        """Mean per-case Dice at the best threshold of the grid, and that threshold."""
        from mslesion.evaluate.conventions import EmptyPolicy
        from mslesion.evaluate.voxel import dice
        from mslesion.postprocess.lesions import binarise

        both_empty_is_perfect = EmptyPolicy.perfect_when_both_empty()
        thresholds = self.cfg.infer.thresholds
        scores = np.zeros((len(self.val_cases), len(thresholds)))
        for i, case in enumerate(self.val_cases):
            prob = self.probability(case)
            voxel_mm3 = float(np.prod(case.spacing))
            for j, t in enumerate(thresholds):
                mask = binarise(prob, t, self.cfg.infer.min_lesion_mm3, voxel_mm3)
                scores[i, j] = dice(mask, case.label, both_empty_is_perfect)
        mean = scores.mean(axis=0)
        best = int(np.argmax(mean))
        return float(mean[best]), float(thresholds[best])

    # --- the loop ----------------------------------------------------------------------
    def _should_stop(self, started: float) -> bool:
        budget = self.cfg.train.time_budget_minutes
        stop = budget is not None and (time.perf_counter() - started) > budget * 60
        stop = stop or self.state.epochs_without_improvement >= self.cfg.train.patience
        if self.dist.world > 1:
            import torch.distributed as dist

            flag = torch.tensor([int(stop)])
            dist.broadcast(flag, src=0)
            stop = bool(flag.item())
        return stop

    def end_epoch(self, losses: list[float], started_epoch: float) -> None:
        cfg, st = self.cfg, self.state
        st.epoch += 1
        row = log_row(st.epoch, st.step, losses, self.optimizer.param_groups[0]["lr"], started_epoch)
        if self.dist.main:
            if self.val_cases and st.epoch % cfg.train.val_every == 0:
                dice, threshold = self.validate()
                row.update(val_dice=round(dice, 5), val_threshold=threshold)
                if dice > st.best_dice:
                    st.best_dice, st.best_threshold, st.epochs_without_improvement = dice, threshold, 0
                    self.save_model()
                else:
                    st.epochs_without_improvement += 1
            elif not self.val_cases:
                self.save_model()
            st.history.append(row)
            write_csv_atomic(self.out / "log.csv", st.history, LOG_COLUMNS)
            plot_curves(st.history, self.out / "curves.png")
            logger.info("epoch %d step %d loss %.4f val_dice %s", st.epoch, st.step, row["train_loss"], row["val_dice"])
        self.checkpoint()

    def prefetched(self, first: int, end: int) -> Iterator[dict[str, Any]] | None:
        """Batches of steps first..end-1 made ahead by train.loader_workers processes (a GPU
        trains faster than one process augments), in step order; None with no workers."""
        workers = self.cfg.train.loader_workers
        if workers <= 0 or first >= end:
            return None
        loader = torch.utils.data.DataLoader(
            StepBatches(self, first, end),
            batch_size=None,
            collate_fn=as_made,  # type: ignore[arg-type]  # with batch_size=None it gets one item, not a list (PyTorch's stubs know only the list)
            num_workers=workers,
            prefetch_factor=4,
            multiprocessing_context="fork",  # the workers share the prepared cases instead of unpickling copies
        )
        return iter(loader)

    def fit(self) -> LoopState:
        """Train until max_epochs, early stopping, or the time budget; returns the final state."""
        from tqdm import tqdm

        cfg, st = self.cfg, self.state
        started = time.perf_counter()
        st.stopped = ""  # a resumed run says why THIS run stopped, not why the last one did
        bar = tqdm(total=self.total_steps, initial=st.step, disable=None if self.dist.main else True, desc="train")
        while st.epoch < cfg.train.max_epochs:
            if self._should_stop(started):
                st.stopped = "time budget" if st.epochs_without_improvement < cfg.train.patience else "early stopping"
                break
            started_epoch, losses = time.perf_counter(), []
            batches = self.prefetched(st.step, (st.epoch + 1) * cfg.train.steps_per_epoch)
            while st.step < (st.epoch + 1) * cfg.train.steps_per_epoch:
                losses.append(self.train_step(next(batches) if batches is not None else None))
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.3f}")
                if st.step % cfg.train.checkpoint_every == 0:
                    self.checkpoint()
            self.end_epoch(losses, started_epoch)
        bar.close()
        st.stopped = st.stopped or "max epochs"
        if self.dist.main:
            self.checkpoint()
        return st
