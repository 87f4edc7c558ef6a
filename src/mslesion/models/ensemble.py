"""Several networks trained alike, used as one: their lesion probabilities are averaged.

An ensemble is an architecture like any other ("ensemble" in the registry): its card names the
members' architecture and parameters, its safetensors file holds every member's weights
(`members.<i>.<name>`), so `load_model`, sliding-window inference and every command take it
unchanged. Averaging probabilities, not logits, is what nnU-Net does for its folds.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

# Architectures an ensemble cannot hold: their inference is not one logit map per patch
# (DeepLesionBrain votes per region, FiLM needs a metadata vector), or an ensemble itself.
NOT_IN_ENSEMBLES = frozenset({"dlb", "film-unet", "ensemble"})

# Probabilities are kept in [eps, 1 - eps] before the log-odds, so a confident member gives a
# large finite logit, never an infinite one.
LOGIT_EPS = 1e-6


class ProbabilityMeanEnsemble(nn.Module):
    """forward(x) = log-odds of the members' mean sigmoid probability (one logit channel, as each member)."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probability = torch.stack([torch.sigmoid(member(x)) for member in self.members]).mean(dim=0)
        return torch.logit(probability, eps=LOGIT_EPS)


def member_state_dicts(state: dict[str, torch.Tensor]) -> dict[int, dict[str, torch.Tensor]]:
    """An ensemble's state dict split per member: {i: {name: tensor}}."""
    out: dict[int, dict[str, torch.Tensor]] = {}
    for key, tensor in state.items():
        head, index, name = key.split(".", 2)
        if head != "members":
            raise ValueError(f"not an ensemble weight name: {key!r}")
        out.setdefault(int(index), {})[name] = tensor
    return out
