"""The new-lesion network (MSSEG-2 style): one 3D U-Net on both visits stacked as channels.

Early fusion, as most MSSEG-2 entries did: the model's contrasts list each visit's image in
consecutive pairs, baseline first (`baseline_FLAIR, followup_FLAIR[, baseline_T1,
followup_T1]`), and the network sees those channels plus, for each pair, the follow-up
minus the baseline. Computing the difference inside the network (not in the data) keeps
training, sliding-window inference and flips unchanged, and the inputs have already been
normalised jointly (`preprocess.normalize.match_linear`), so the difference is meaningful.
"""

from __future__ import annotations

import torch
from torch import nn

from mslesion.models.unet import build_unet


class EarlyFusionUNet(nn.Module):
    """U-Net on (baseline, follow-up[, ...], follow-up - baseline per pair) channels; one logit out."""

    def __init__(
        self, in_channels: int, features: tuple[int, ...] = (8, 16, 32, 64, 128, 8), difference: bool = True, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if in_channels < 2 or in_channels % 2:
            raise ValueError(f"a new-lesion model takes (baseline, follow-up) channel pairs, got {in_channels} channel(s)")
        self.difference = bool(difference)
        extra = in_channels // 2 if self.difference else 0
        self.unet = build_unet(in_channels + extra, tuple(features), dropout=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.difference:
            x = torch.cat([x, x[:, 1::2] - x[:, 0::2]], dim=1)
        return self.unet(x)


def build_new_lesions_unet(
    in_channels: int, features: tuple[int, ...] = (8, 16, 32, 64, 128, 8), difference: bool = True, dropout: float = 0.0
) -> nn.Module:
    """The default new-lesion architecture (`new-lesions-unet`)."""
    return EarlyFusionUNet(in_channels, features, difference, dropout)
