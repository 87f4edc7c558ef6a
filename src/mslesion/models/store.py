"""Model files: `model.safetensors` (weights) + `model.json` (everything needed to use them).

The JSON holds the architecture and its parameters, the input contrasts in channel order,
the intensity normalisation, the patch size, the decision threshold and minimum lesion
size tuned on validation, and a summary of the training data. Loading never unpickles.
"""

from __future__ import annotations

import json
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
    def from_dict(cls, data: dict[str, Any], source: Path) -> "ModelCard":
        try:
            card = cls(**data)
        except TypeError as exc:
            raise InputError(source, f"invalid model card ({exc})") from None
        card.patch_size = tuple(card.patch_size)  # type: ignore[assignment]
        card.spacing_mm = tuple(card.spacing_mm)  # type: ignore[assignment]
        return card


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


def load_model(folder: str | Path):
    """Read a model folder into (network in eval mode, card). Refuses anything but safetensors."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from mslesion.models.registry import build_network

    folder = Path(folder)
    card_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    if not folder.is_dir() or not card_path.is_file() or not weights_path.is_file():
        raise InputError(folder, f"not a model folder (needs {CONFIG_NAME} and {WEIGHTS_NAME})")
    try:
        card = ModelCard.from_dict(json.loads(card_path.read_text()), card_path)
    except json.JSONDecodeError as exc:
        raise InputError(card_path, f"invalid JSON ({exc.msg})") from None
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputError(weights_path, f"not a safetensors file ({exc.__class__.__name__})") from None
    net = build_network(card.architecture, len(card.contrasts), card.params)
    try:
        net.load_state_dict(state)
    except RuntimeError:
        raise InputError(weights_path, f"weights do not fit architecture {card.architecture!r}") from None
    return net.eval(), card
