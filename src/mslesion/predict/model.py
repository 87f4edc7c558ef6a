"""The model folder of a run, read once: its path, network (eval mode) and card."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class LoadedModel:
    """A model folder read once: its path, network (eval mode) and card.

    Whoever segments many scans with one model (a cohort worker) passes this as `model=`,
    so the weights are read and checked once per worker, not once per scan.
    """

    path: Path
    net: Any
    card: Any  # models.store.ModelCard

    @property
    def regional(self) -> bool:
        """A regional ensemble (DeepLesionBrain): regions fixed on the model's (MNI) grid, no sliding window."""
        return bool(getattr(self.net, "regional", False))

    @property
    def needs_metadata(self) -> bool:
        """A network conditioned on the scan's metadata (FiLM)."""
        return bool(getattr(self.net, "needs_metadata", False))


def load_model_once(model: str | Path | LoadedModel) -> LoadedModel:
    """The model named or given, read (a LoadedModel is returned as it is)."""
    if isinstance(model, LoadedModel):
        return model
    from mslesion.models.store import load_model, resolve_model

    path = resolve_model(model)
    net, card = load_model(path)
    return LoadedModel(path, net, card)


def model_caveat(card: Any) -> list[str]:
    """The warning of what the model's own measurements say about trusting it (none without a caveat or a card)."""
    caveat = None if card is None else card.training.get("caveat")
    return [f"model: {caveat}"] if caveat else []
