"""Model files: `model.safetensors` (weights) + `model.json` (everything needed to use them).

The JSON holds the architecture and its parameters, the input contrasts in channel order,
the intensity normalisation, the patch size, the decision threshold and minimum lesion
size tuned on validation, and a summary of the training data. Loading never unpickles.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mslesion.errors import InputError
from mslesion.io.atomic import write_json_atomic

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "model.json"


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
        try:
            card = cls(**data)
        except TypeError as exc:
            raise InputError(source, f"invalid model card ({exc})") from None
        check_card(card, source)
        card.patch_size = tuple(int(n) for n in card.patch_size)  # type: ignore[assignment]
        card.spacing_mm = tuple(float(s) for s in card.spacing_mm)  # type: ignore[assignment]
        return card


def _number(value: Any, name: str, lo: float, hi: float, source: Path, *, open_lo: bool = False, open_hi: bool = False) -> None:
    """Refuse a card field that is not a finite number in [lo, hi] (open ends when asked)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > lo if open_lo else value >= lo) and (value < hi if open_hi else value <= hi)
    if not ok:
        interval = f"{'(' if open_lo else '['}{lo}, {hi}{')' if open_hi else ']'}"
        raise InputError(source, f"invalid model card: {name} must be a number in {interval}, not {value!r}")


def _triple(value: Any, name: str, lo: float, hi: float, source: Path, integer: bool = False) -> None:
    """Refuse a card field that is not three numbers in [lo, hi] (whole numbers when `integer`)."""
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise InputError(source, f"invalid model card: {name} must be a list of 3 numbers, not {value!r}")
    for item in value:
        _number(item, name, lo, hi, source)
        if integer and item != int(item):
            raise InputError(source, f"invalid model card: {name} must be whole numbers, not {value!r}")


def check_card(card: ModelCard, source: Path) -> None:
    """Every field of a card of the right type and in range: a bad card fails here, in one line, not in inference."""
    from mslesion.io.limits import SPACING_REFUSE_MM
    from mslesion.preprocess.normalize import Normalisation

    if not isinstance(card.architecture, str) or not card.architecture:
        raise InputError(source, f"invalid model card: architecture must be a name, not {card.architecture!r}")
    if (not isinstance(card.contrasts, list) or not card.contrasts or not all(isinstance(c, str) and c for c in card.contrasts)
            or len(set(card.contrasts)) != len(card.contrasts)):
        raise InputError(source, f"invalid model card: contrasts must be a list of distinct names, not {card.contrasts!r}")
    for name in ("params", "training", "nyul"):
        if not isinstance(getattr(card, name), dict):
            raise InputError(source, f"invalid model card: {name} must be a JSON object")
    if not isinstance(card.normalisation, str) or card.normalisation not in {n.value for n in Normalisation}:
        raise InputError(source, f"invalid model card: normalisation must be one of {[n.value for n in Normalisation]}, not {card.normalisation!r}")
    _triple(card.patch_size, "patch_size", 1, 1024, source, integer=True)
    _triple(card.spacing_mm, "spacing_mm", *SPACING_REFUSE_MM, source)
    _number(card.threshold, "threshold", 0.0, 1.0, source, open_lo=True, open_hi=True)
    _number(card.min_lesion_mm3, "min_lesion_mm3", 0.0, 1e6, source)
    _number(card.min_mean_probability, "min_mean_probability", 0.0, 1.0, source, open_hi=True)
    if not isinstance(card.modality_dropout, bool):
        raise InputError(source, f"invalid model card: modality_dropout must be true or false, not {card.modality_dropout!r}")


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
    raise InputError(candidate, f"model not found: not a model folder, and {known}; train one with `mslesion train` and pass --model RUN/model")


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
        card = ModelCard.from_dict(json.loads(card_path.read_text()), card_path)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(card_path, f"invalid JSON ({getattr(exc, 'msg', type(exc).__name__)})") from None
    if card.architecture not in ARCHITECTURES:
        raise InputError(card_path, f"invalid model card: unknown architecture {card.architecture!r}; known: {', '.join(sorted(ARCHITECTURES))}")
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputError(weights_path, f"not a safetensors file ({exc.__class__.__name__})") from None
    check_finite_weights(state, weights_path)
    try:
        net = build_network(card.architecture, len(card.contrasts), card.params)
    except (TypeError, ValueError) as exc:  # params the builder does not take, or of the wrong type
        raise InputError(card_path, f"invalid model card: params do not build a {card.architecture!r} ({exc})") from None
    try:
        net.load_state_dict(state)
    except RuntimeError:
        raise InputError(weights_path, f"weights do not fit architecture {card.architecture!r}") from None
    return net.eval(), card


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
                raise InputError(Path(folder), f"cannot join: its {name} {getattr(card, name)!r} differs from {Path(folders[0])}'s {getattr(first, name)!r}")
    state = {f"members.{i}.{name}": tensor for i, (net, _) in enumerate(loaded) for name, tensor in net.state_dict().items()}
    card = ModelCard(**{**first.to_dict(), "architecture": "ensemble",
                        "params": {"member_architecture": first.architecture, "member_params": first.params, "members": len(loaded)},
                        "training": {"members": [{"model": str(folder), **c.training} for folder, (_, c) in zip(folders, loaded)]}})
    save_model(state, card, out)
    return card
