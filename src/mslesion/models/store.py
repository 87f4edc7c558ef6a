"""Model files: `model.safetensors` (weights) + `model.json` (everything needed to use them).

The JSON holds the architecture and its parameters, the input contrasts in channel order,
the intensity normalisation, the patch size, the decision threshold and minimum lesion
size tuned on validation, and a summary of the training data. Loading never unpickles.
"""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from mslesion.errors import InputError
from mslesion.io.atomic import write_json_atomic

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "model.json"
TEST_TIME_FLIPS = (1, 2, 4)  # none; + left-right; + the other two axes (infer.sliding.FLIP_AXES)


def is_test_time_flips(value: object) -> bool:
    """Whether `value` is one of TEST_TIME_FLIPS as a plain int (not True, not 2.0): the one check for
    cards, training and benchmark configs and `--flips`."""
    return type(value) is int and value in TEST_TIME_FLIPS


@dataclass
class ModelCard:
    """What a trained model is and how to apply it."""

    architecture: str
    contrasts: list[str]
    params: dict[str, Any] = field(default_factory=dict)
    normalisation: str = "zscore_brain"
    patch_size: tuple[int, int, int] = (96, 96, 96)
    threshold: float = 0.5
    min_lesion_mm3: float = 3.0
    min_mean_probability: float = 0.0  # lesions whose mean probability is lower are dropped (0: no such filter)
    spacing_mm: tuple[float, float, float] = (1.0, 1.0, 1.0)
    modality_dropout: bool = True
    # Test-time flips (1 none, 2 + left-right, 4 all three axes) `segment` runs this model with unless
    # told otherwise; benchmarks/real_accuracy.py --ship chooses the shipped postprocessing with them.
    test_time_flips: int = 2
    training: dict[str, Any] = field(default_factory=dict)
    nyul: dict[str, Any] = field(default_factory=dict)  # per contrast: fitted Nyul landmarks (normalisation "nyul")
    version: str = "1"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: Path) -> ModelCard:
        """A card read from JSON, every field checked (InputError naming `source` otherwise)."""
        if not isinstance(data, dict):
            raise InputError(source, "invalid model card (not a JSON object)")
        names = {f.name for f in fields(cls)}
        required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
        if unknown := sorted(set(data) - names):
            raise InputError(source, f"invalid model card: unknown field(s) {_shown(unknown)}")
        if missing := sorted(required - set(data)):
            raise InputError(source, f"invalid model card: missing field(s) {_shown(missing)}")
        card = cls(**data)
        check_card(card, source)
        card.patch_size = tuple(int(n) for n in card.patch_size)  # type: ignore[assignment]  # 3 (check_card); mypy cannot count a generator's items
        card.spacing_mm = tuple(float(s) for s in card.spacing_mm)  # type: ignore[assignment]  # 3 (check_card); mypy cannot count a generator's items
        return card


def _shown(value: Any, limit: int = 80) -> str:
    """A card value as shown in an error: its repr (one line), cut to `limit` characters."""
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**30 else f"a {len(str(abs(value)))}-digit integer"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _number(value: Any, name: str, lo: float, hi: float, source: Path, *, open_lo: bool = False, open_hi: bool = False) -> None:
    """Refuse a card field that is not a finite number in [lo, hi] (open ends when asked)."""
    # math.isfinite(int) converts to float: a JSON integer of 400 digits would raise OverflowError there
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (isinstance(value, int) or math.isfinite(value))
    if ok:
        ok = (value > lo if open_lo else value >= lo) and (value < hi if open_hi else value <= hi)
    if not ok:
        interval = f"{'(' if open_lo else '['}{lo}, {hi}{')' if open_hi else ']'}"
        raise InputError(source, f"invalid model card: {name} must be a number in {interval}, not {_shown(value)}")


def _triple(value: Any, name: str, lo: float, hi: float, source: Path, integer: bool = False) -> None:
    """Refuse a card field that is not three numbers in [lo, hi] (whole numbers when `integer`)."""
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise InputError(source, f"invalid model card: {name} must be a list of 3 numbers, not {_shown(value)}")
    for item in value:
        _number(item, name, lo, hi, source)
        if integer and item != int(item):
            raise InputError(source, f"invalid model card: {name} must be whole numbers, not {_shown(value)}")


def check_card(card: ModelCard, source: Path) -> None:
    """Every field of a card of the right type and in range: a bad card fails here, in one line, not in inference."""
    from mslesion.io.limits import SPACING_REFUSE_MM
    from mslesion.preprocess.normalize import Normalisation, NyulStandardiser

    if not isinstance(card.architecture, str) or not card.architecture:
        raise InputError(source, f"invalid model card: architecture must be a name, not {_shown(card.architecture)}")
    if (
        not isinstance(card.contrasts, list)
        or not card.contrasts
        or not all(isinstance(c, str) and c for c in card.contrasts)
        or len(set(card.contrasts)) != len(card.contrasts)
    ):
        raise InputError(source, f"invalid model card: contrasts must be a list of distinct names, not {_shown(card.contrasts)}")
    for name in ("params", "training", "nyul"):
        if not isinstance(getattr(card, name), dict):
            raise InputError(source, f"invalid model card: {name} must be a JSON object")
    if not isinstance(card.normalisation, str) or card.normalisation not in {n.value for n in Normalisation}:
        raise InputError(
            source, f"invalid model card: normalisation must be one of {[n.value for n in Normalisation]}, not {_shown(card.normalisation)}"
        )
    _triple(card.patch_size, "patch_size", 1, 1024, source, integer=True)
    _triple(card.spacing_mm, "spacing_mm", *SPACING_REFUSE_MM, source)
    _number(card.threshold, "threshold", 0.0, 1.0, source, open_lo=True, open_hi=True)
    _number(card.min_lesion_mm3, "min_lesion_mm3", 0.0, 1e6, source)
    _number(card.min_mean_probability, "min_mean_probability", 0.0, 1.0, source, open_hi=True)
    if not is_test_time_flips(card.test_time_flips):
        raise InputError(source, f"invalid model card: test_time_flips must be 1, 2 or 4, not {_shown(card.test_time_flips)}")
    if not isinstance(card.modality_dropout, bool):
        raise InputError(source, f"invalid model card: modality_dropout must be true or false, not {_shown(card.modality_dropout)}")
    for contrast, landmarks in card.nyul.items():  # read at inference; a bad set fails here, before any image is read
        if not isinstance(landmarks, dict):
            raise InputError(source, f"invalid model card: nyul[{_shown(contrast)}] must be a JSON object")
        NyulStandardiser.from_dict(landmarks, source)


def save_model(state_dict: dict[str, Any], card: ModelCard, folder: str | Path) -> Path:
    """Write weights (safetensors) and card (JSON) into `folder`, atomically each."""
    import os
    import uuid

    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{WEIGHTS_NAME}.{uuid.uuid4().hex[:8]}.tmp"
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, folder / WEIGHTS_NAME)
    write_json_atomic(folder / CONFIG_NAME, card.to_dict())
    return folder


def resolve_model(name_or_path: str | Path) -> Path:
    """A shipped model by name (`default`) or a model folder path."""
    candidate = Path(name_or_path)
    if candidate.exists():
        return candidate
    from importlib import resources

    shipped = Path(str(resources.files("mslesion") / "data" / "models" / str(name_or_path)))
    if shipped.is_dir():
        return shipped
    shipped_names = sorted(p.name for p in shipped.parent.iterdir()) if shipped.parent.is_dir() else []
    known = f"shipped models: {', '.join(shipped_names)}" if shipped_names else "no model ships with this version yet"
    raise InputError(
        candidate, f"model not found: not a model folder, and {known}; train one with `mslesion train` and pass --model RUN/model"
    )


def load_model(folder: str | Path):
    """Read a model folder into (network in eval mode, card). Refuses anything but safetensors."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from mslesion.models.registry import ARCHITECTURES, build_network

    folder = Path(folder)
    card_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    if not folder.is_dir() or not card_path.is_file() or not weights_path.is_file():
        raise InputError(folder, f"not a model folder (needs {CONFIG_NAME} and {WEIGHTS_NAME})")
    try:
        data = json.loads(card_path.read_text())
    except (ValueError, RecursionError) as exc:  # JSON syntax, UTF-8, integers over 4300 digits, nesting too deep
        raise InputError(card_path, f"invalid JSON ({getattr(exc, 'msg', type(exc).__name__)})") from None
    card = ModelCard.from_dict(data, card_path)
    if card.architecture not in ARCHITECTURES:
        raise InputError(
            card_path, f"invalid model card: unknown architecture {_shown(card.architecture)}; known: {', '.join(sorted(ARCHITECTURES))}"
        )
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputError(weights_path, f"not a safetensors file ({exc.__class__.__name__})") from None
    check_finite_weights(state, weights_path)
    shapes = network_shapes(card, card_path)
    if shapes != {name: tuple(tensor.shape) for name, tensor in state.items()}:
        raise InputError(weights_path, f"weights do not fit architecture {card.architecture!r}")
    net = build_network(card.architecture, len(card.contrasts), card.params)  # as above, now for real: its size is that of the weights file
    try:
        net.load_state_dict(state)
    except RuntimeError:
        raise InputError(weights_path, f"weights do not fit architecture {card.architecture!r}") from None
    return net.eval(), card


def network_shapes(card: ModelCard, source: Path) -> dict[str, tuple[int, ...]]:
    """The tensor shapes the card's network has, built on PyTorch's meta device (no memory, no init).

    A card's params may claim any size (100000 channels): built this way, they are refused for
    not fitting the weights file instead of allocating the network they describe.
    """
    import torch

    from mslesion.models.registry import build_network

    try:
        with torch.device("meta"):
            net = build_network(card.architecture, len(card.contrasts), card.params)
    except Exception as exc:  # any failure to build from the card's params is the card's fault
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        raise InputError(
            source, f"invalid model card: params do not build a {card.architecture!r} ({type(exc).__name__}: {first})"
        ) from None
    return {name: tuple(tensor.shape) for name, tensor in net.state_dict().items()}


def check_finite_weights(state: dict[str, Any], source: Path) -> None:
    """Refuse weights holding NaN or infinity: they would give a NaN probability map read as "no lesions"."""
    import torch

    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise InputError(source, f"weights are not finite ({bad} NaN or infinite values in {name})")


# Card fields that must be equal for models to be averaged: the same input, on the same grid,
# through the same network shape.
ENSEMBLE_MUST_MATCH = ("architecture", "params", "contrasts", "normalisation", "nyul", "patch_size", "spacing_mm", "modality_dropout")


def combine_models(folders: list[str | Path], out: str | Path) -> ModelCard:
    """Join trained models of one architecture into one ensemble model folder at `out`.

    The ensemble's card starts from the first member's (its threshold and filters; retune them
    on the ensemble's own validation maps) and lists every member's training summary.
    """
    from mslesion.models.ensemble import NOT_IN_ENSEMBLES

    if len(folders) < 2:
        raise InputError(None, "an ensemble needs at least two models")
    loaded = [load_model(folder) for folder in folders]
    first = loaded[0][1]
    if first.architecture in NOT_IN_ENSEMBLES:
        raise InputError(Path(folders[0]), f"a {first.architecture!r} model cannot be an ensemble member")
    for folder, (_, card) in zip(folders[1:], loaded[1:]):
        for name in ENSEMBLE_MUST_MATCH:
            if getattr(card, name) != getattr(first, name):
                raise InputError(
                    Path(folder),
                    f"cannot join: its {name} {getattr(card, name)!r} differs from {Path(folders[0])}'s {getattr(first, name)!r}",
                )
    state = {f"members.{i}.{name}": tensor for i, (net, _) in enumerate(loaded) for name, tensor in net.state_dict().items()}
    card = ModelCard(
        **{
            **first.to_dict(),
            "architecture": "ensemble",
            "params": {"member_architecture": first.architecture, "member_params": first.params, "members": len(loaded)},
            "training": {"members": [{"model": str(folder), **c.training} for folder, (_, c) in zip(folders, loaded)]},
        }
    )
    save_model(state, card, out)
    return card
