"""Training configuration: one YAML file, read into typed dataclasses, validated up front.

Unknown keys are errors (a typo must not silently train with a default). Relative
dataset paths are resolved against the YAML file's folder.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from mslesion.errors import InputError
from mslesion.io.case import required_contrasts
from mslesion.models.store import is_test_time_flips


class Schedule(StrEnum):
    """Learning-rate decay after the warm-up."""

    COSINE = "cosine"
    POLY = "poly"  # nnU-Net's (1 - progress) ** 0.9
    CONSTANT = "constant"


class Precision(StrEnum):
    """Arithmetic of the training forward pass. bf16 autocast runs 2.3x faster than fp32 on
    CPUs with AMX (measured: BasicUNet 8..128, 64^3, batch 2: 0.44 s against 1.0 s per step)
    and on recent GPUs; weights and the optimiser stay fp32."""

    FP32 = "fp32"
    BF16 = "bf16"


class TrainDevice(StrEnum):
    """Where the network trains. AUTO: the first CUDA GPU when PyTorch sees one, else the CPU.
    Patch sampling and augmentation stay on the CPU either way (numpy, one process)."""

    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


class ImplantScaling(StrEnum):
    """How augment.implant's share of patches depends on the patch's case (train.lesion_implant).
    FIXED: the same share for every case. LESION_POOR: the share times
    max(0, 1 - the case's lesion load / the median load of the donor masks), so a case with few
    lesions gets nearly all of it and a case at or above the donors' median load none: the
    fold trained on patient19 (50 mL) over-called with implants, the one trained on patient07
    (1.3 mL) needed them to find confluent lesions (benchmarks/results/real_accuracy.md)."""

    FIXED = "fixed"
    LESION_POOR = "lesion_poor"


@dataclass
class DataConfig:
    """Which cases, which contrasts, how they are split into train and validation."""

    datasets: list[str] = field(default_factory=list)
    contrasts: list[str] = field(default_factory=lambda: ["FLAIR", "T1"])
    split: str = "holdout"  # holdout | kfold | leave_site_out | none
    val_fraction: float = 0.2
    n_folds: int = 5
    fold: int = 0
    val_site: str | None = None
    val_datasets: list[str] = field(default_factory=list)  # extra cases used only for validation
    max_cases: int | None = None
    exclude: list[str] = field(default_factory=list)  # case ids kept out entirely (e.g. a test case)
    # Share of training patches drawn from each dataset (same order as `datasets`); empty =
    # every case equally likely. E.g. [0.7, 0.3] keeps one real case from being drowned out.
    dataset_weights: list[float] = field(default_factory=list)
    normalisation: str = "zscore_brain"  # zscore_brain | wm_peak | nyul (stored in the model card)
    # Folder of lesion masks on the training cases' grid (e.g. lesjak-mni-masks): where CarveMix
    # pastes real lesions (augment.carvemix). None = the training cases' own lesion positions.
    lesion_locations: str | None = None


@dataclass
class ModelConfig:
    architecture: str = "unet"
    params: dict[str, Any] = field(default_factory=dict)
    # Fine-tuning: a model folder or shipped model name whose weights start the training
    # (same architecture, params and contrasts); None = random initialisation.
    init: str | None = None


@dataclass
class PatchConfig:
    size: list[int] = field(default_factory=lambda: [64, 64, 64])
    batch_size: int = 2
    lesion_fraction: float = 0.66  # share of patches centred on a lesion (chosen lesion-first)
    # Train on whole brain-cropped volumes (batch of 1) instead of patches; None = the
    # architecture's own way (CEN: whole images, as Brosch et al.; the others: patches).
    whole_image: bool | None = None


@dataclass
class AugmentConfig:
    """Probabilities of each augmentation per patch (0 disables it); `implant_scaling` alone is a choice, not a probability."""

    flip: float = 0.5
    affine: float = 0.2
    elastic: float = 0.0
    gamma: float = 0.3
    bias_field: float = 0.3
    noise: float = 0.2
    image_quality: float = 0.25
    modality_dropout: float = 0.3
    histogram_shift: float = 0.0  # a random intensity curve per contrast, brain voxels only (train.augment)
    thick_slices: float = 0.0  # a 1.5-6 mm slice acquisition resampled back to 1 mm (train.augment.thick_slices)
    # Share of patches centred on a real training lesion carved with its rim and pasted at a
    # real lesion position (CarveMix, Zhang et al. 2021; see train.carvemix).
    carvemix: float = 0.0
    # Share of patches whose grey matter is made brighter or darker (MNI prior; train.tissue_contrast).
    tissue_contrast: float = 0.0
    # Share of patches into which another patient's real lesions of that region are drawn
    # (the masks of data.lesion_locations; train.lesion_implant).
    implant: float = 0.0
    implant_scaling: str = ImplantScaling.FIXED  # not a probability: how implant's share varies per case


@dataclass
class LossConfig:
    name: str = "dice_ce"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    name: str = "adamw"  # adamw | sgd
    lr: float = 3e-4
    weight_decay: float = 1e-5
    schedule: str = Schedule.COSINE
    warmup_steps: int = 50


@dataclass
class LoopConfig:
    max_epochs: int = 50
    steps_per_epoch: int = 100
    val_every: int = 1
    patience: int = 10
    checkpoint_every: int = 50
    seed: int = 0
    num_threads: int = 0  # 0 = leave torch's default
    time_budget_minutes: float | None = None
    precision: str = Precision.FP32
    device: str = TrainDevice.AUTO
    # Processes that make batches ahead of the training step (0: the training process makes each
    # batch itself). For a GPU, which trains faster than one process samples and augments.
    loader_workers: int = 0


@dataclass
class InferConfig:
    overlap: float = 0.25
    # Test-time flips (1, 2 or 4) written into the model card as test_time_flips: what `segment`
    # runs with this model by default. Validation during training runs without flips (speed).
    flips: int = 2
    thresholds: list[float] = field(default_factory=lambda: [0.3, 0.4, 0.5, 0.6, 0.7])
    min_lesion_mm3: float = 3.0


@dataclass
class RegionalConfig:
    """DeepLesionBrain's regions and its two training stages (architecture `dlb` only).

    Regions: `size`^3 sub-volumes of the (MNI) grid, `per_axis` spread evenly (default
    5 x 5 x 5 = 125, the paper's), or the fewest with a spacing of at most `stride` when
    it is given. Stage 1 trains one generic network `generic_steps` steps on crops of all
    regions; stage 2 copies it to every network group and fine-tunes each on its own
    region (and mirrored twin) for `finetune_steps` steps at `finetune_lr` (None: optim.lr).
    """

    size: list[int] = field(default_factory=lambda: [96, 96, 96])
    per_axis: list[int] = field(default_factory=lambda: [5, 5, 5])
    stride: list[int] | None = None
    generic_steps: int = 1000
    finetune_steps: int = 100
    finetune_lr: float | None = None
    log_every: int = 50  # steps per log.csv row (an "epoch" of the regional loop)


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    patch: PatchConfig = field(default_factory=PatchConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: LoopConfig = field(default_factory=LoopConfig)
    infer: InferConfig = field(default_factory=InferConfig)
    regional: RegionalConfig = field(default_factory=RegionalConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (enum options as their strings), for YAML and JSON."""
        return asdict(self, dict_factory=lambda items: {k: v.value if isinstance(v, StrEnum) else v for k, v in items})


def _build(cls: type, values: dict[str, Any] | None, where: str, source: Path) -> Any:
    values = values or {}
    if not isinstance(values, dict):
        raise InputError(source, f"section {where!r} must be a mapping")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise InputError(source, f"unknown key(s) in {where!r}: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    return cls(**values)


SECTIONS = {
    "data": DataConfig,
    "model": ModelConfig,
    "patch": PatchConfig,
    "augment": AugmentConfig,
    "loss": LossConfig,
    "optim": OptimConfig,
    "train": LoopConfig,
    "infer": InferConfig,
    "regional": RegionalConfig,
}


def whole_image(cfg: TrainConfig) -> bool:
    """Whether training feeds whole brain-cropped volumes (CEN's default) instead of patches."""
    return cfg.model.architecture == "cen" if cfg.patch.whole_image is None else bool(cfg.patch.whole_image)


# Nyul landmarks are fitted on the training cases and stored in the model card.
TRAINABLE_NORMALISATIONS = ("zscore_brain", "wm_peak", "nyul")


def _check_model(cfg: TrainConfig, source: Path) -> None:
    """Known architecture and loss, and model.params that build the network (once, now, not hours into a run)."""
    from mslesion.losses import LOSSES
    from mslesion.models.registry import ARCHITECTURES, build_network, data_params

    arch = cfg.model.architecture
    if arch not in ARCHITECTURES:
        raise InputError(source, f"unknown architecture {arch!r} (known: {', '.join(sorted(ARCHITECTURES))})")
    if arch == "ensemble":
        raise InputError(source, "model.architecture ensemble is not trained: train its members, then join them with `mslesion ensemble`")
    if cfg.loss.name not in LOSSES:
        raise InputError(source, f"unknown loss {cfg.loss.name!r} (known: {', '.join(sorted(LOSSES))})")
    try:
        build_network(arch, len(cfg.data.contrasts), data_params(arch, cfg.model.params, ["site-a", "site-b"]))
    except (TypeError, ValueError) as exc:
        raise InputError(source, f"model.params do not fit {arch} ({str(exc).splitlines()[0]})") from None


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def config_from_dict(raw: dict[str, Any], source: Path) -> TrainConfig:
    """Validate a parsed YAML mapping into a TrainConfig."""
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise InputError(source, f"unknown section(s): {', '.join(unknown)} (known: {', '.join(SECTIONS)})")
    cfg = TrainConfig(**{name: _build(cls, raw.get(name), name, source) for name, cls in SECTIONS.items()})
    checked: tuple[tuple[str, str, type[StrEnum]], ...] = (
        ("optim", "schedule", Schedule),
        ("train", "precision", Precision),
        ("train", "device", TrainDevice),
        ("augment", "implant_scaling", ImplantScaling),
    )
    for section_name, option, kind in checked:  # each option checked, then made its enum member
        section = getattr(cfg, section_name)
        value = getattr(section, option)
        if not isinstance(value, str) or value not in {k.value for k in kind}:
            raise InputError(source, f"{section_name}.{option} must be one of {', '.join(k.value for k in kind)}, not {value!r}")
        setattr(section, option, kind(value))
    if isinstance(cfg.train.loader_workers, bool) or not isinstance(cfg.train.loader_workers, int) or cfg.train.loader_workers < 0:
        raise InputError(source, f"train.loader_workers must be a whole number >= 0, not {cfg.train.loader_workers!r}")
    if cfg.train.device is TrainDevice.CUDA and not _cuda_available():
        raise InputError(source, "train.device is cuda, but PyTorch sees no CUDA GPU here (use auto or cpu)")
    for item in fields(AugmentConfig):  # probabilities / shares of patches, but for the scaling choice
        if item.name == "implant_scaling":
            continue
        value = getattr(cfg.augment, item.name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise InputError(source, f"augment.{item.name} must be a probability in [0, 1], not {value!r}")
    if cfg.data.split not in ("holdout", "kfold", "leave_site_out", "none"):
        raise InputError(source, f"data.split must be holdout, kfold, leave_site_out or none, not {cfg.data.split!r}")
    if cfg.data.dataset_weights and (len(cfg.data.dataset_weights) != len(cfg.data.datasets) or min(cfg.data.dataset_weights) < 0):
        raise InputError(source, "data.dataset_weights needs one non-negative weight per dataset")
    if cfg.data.normalisation not in TRAINABLE_NORMALISATIONS:
        raise InputError(source, f"data.normalisation must be one of {', '.join(TRAINABLE_NORMALISATIONS)}, not {cfg.data.normalisation!r}")
    if not set(required_contrasts(cfg.data.contrasts)) <= set(cfg.data.contrasts):
        raise InputError(
            source, f"data.contrasts must include {' and '.join(required_contrasts(cfg.data.contrasts))} (every model accepts FLAIR alone)"
        )
    if not is_test_time_flips(cfg.infer.flips):
        raise InputError(source, f"infer.flips must be 1, 2 or 4, not {cfg.infer.flips!r}")
    if cfg.infer.flips == 4 and cfg.model.architecture == "dlb":  # its regional vote mirrors left-right only (models.dlb)
        raise InputError(
            source, "infer.flips 4 is not available for architecture dlb (its regional vote mirrors left-right only): use 1 or 2"
        )
    if len(cfg.patch.size) != 3 or any(s % 16 for s in cfg.patch.size):
        raise InputError(source, f"patch.size must be 3 multiples of 16, not {cfg.patch.size}")
    _check_regional(cfg.regional, source)
    _check_model(cfg, source)
    return cfg


def _check_regional(reg: RegionalConfig, source: Path) -> None:
    """The `regional` section's shapes and counts (the grid is checked once the data are read)."""
    for name in ("size", "per_axis") + (("stride",) if reg.stride is not None else ()):
        value = getattr(reg, name)
        if not isinstance(value, list) or len(value) != 3 or any(not isinstance(v, int) or v < 1 for v in value):
            raise InputError(source, f"regional.{name} must be 3 positive integers, not {value!r}")
    if reg.generic_steps < 1 or reg.finetune_steps < 0 or reg.log_every < 1:
        raise InputError(source, "regional.generic_steps and log_every must be >= 1, finetune_steps >= 0")


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """A YAML file that must hold a mapping (training and benchmark configs), or InputError."""
    import yaml

    if not path.is_file():
        raise InputError(path, "config file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise InputError(path, f"invalid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise InputError(path, "config must be a YAML mapping")
    return raw


def load_config(path: str | Path) -> TrainConfig:
    """Read and validate a training YAML; dataset paths become absolute."""
    path = Path(path)
    cfg = config_from_dict(read_yaml_mapping(path), path)

    def resolve(entry: str) -> str:
        expanded = Path(os.path.expandvars(entry))  # e.g. ${MSLESION_SHARED_DATA}/lesjak-mni
        return str(expanded if expanded.is_absolute() else (path.parent / expanded).resolve())

    cfg.data.datasets = [resolve(p) for p in cfg.data.datasets]
    cfg.data.val_datasets = [resolve(p) for p in cfg.data.val_datasets]
    if cfg.data.lesion_locations is not None:  # like the datasets, opened when training starts (train.carvemix)
        cfg.data.lesion_locations = resolve(cfg.data.lesion_locations)
    if not cfg.data.datasets:
        raise InputError(path, "data.datasets is empty")
    if cfg.augment.implant > 0 and cfg.data.lesion_locations is None:
        raise InputError(path, "augment.implant needs data.lesion_locations (a folder of lesion masks on the training grid)")
    if cfg.augment.implant_scaling is not ImplantScaling.FIXED and cfg.augment.implant == 0:
        raise InputError(path, f"augment.implant_scaling {cfg.augment.implant_scaling} scales augment.implant, which is 0 here")
    if cfg.augment.implant > 0 and (whole_image(cfg) or cfg.model.architecture == "dlb"):
        raise InputError(path, "augment.implant works on sampled patches: not with whole-image (CEN) or regional (dlb) training")
    if cfg.train.loader_workers > 0 and cfg.model.architecture == "dlb":
        raise InputError(path, "train.loader_workers is not used by regional (dlb) training; set it to 0")
    if cfg.model.init is not None:
        local = Path(resolve(cfg.model.init))
        cfg.model.init = str(local) if local.exists() else cfg.model.init  # else a shipped model's name
        initial_weights(cfg, path)  # fail now, not after preparing the data
    return cfg


def initial_weights(cfg: TrainConfig, source: Path | None = None) -> dict[str, Any] | None:
    """The state dict of `model.init` (safetensors only) if its architecture and contrasts match; None without one."""
    if cfg.model.init is None:
        return None
    from mslesion.models.store import load_model, resolve_model

    net, card = load_model(resolve_model(cfg.model.init))
    if card.architecture != cfg.model.architecture or list(card.contrasts) != list(cfg.data.contrasts):
        raise InputError(
            source,
            f"model.init {cfg.model.init} is {card.architecture} on {card.contrasts}; "
            f"the config trains {cfg.model.architecture} on {cfg.data.contrasts}",
        )
    return net.state_dict()
