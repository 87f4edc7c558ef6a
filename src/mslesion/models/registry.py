"""Explicit registries: architecture name -> builder, and the methods `mslesion methods` lists.

A model file (model.json) names its architecture; `build_network` rebuilds it from there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from mslesion.models.cen import build_cen
from mslesion.models.dlb import build_compact_unet, build_dlb
from mslesion.models.film import build_film_unet
from mslesion.models.new_lesions import build_new_lesions_unet
from mslesion.models.scanner_invariant import build_scanner_invariant_unet, build_unet_bdm, build_unet_bm
from mslesion.models.unet import build_unet


def build_ensemble(in_channels: int, member_architecture: str, member_params: dict[str, Any] | None = None, members: int = 2) -> nn.Module:
    """`members` networks of `member_architecture`, averaged in probability (models.ensemble)."""
    from mslesion.models.ensemble import NOT_IN_ENSEMBLES, ProbabilityMeanEnsemble

    if member_architecture in NOT_IN_ENSEMBLES or member_architecture not in ARCHITECTURES:
        allowed = sorted(set(ARCHITECTURES) - NOT_IN_ENSEMBLES)
        raise ValueError(f"an ensemble's members must be one of {', '.join(allowed)}, not {member_architecture!r}")
    if not isinstance(members, int) or isinstance(members, bool) or not 1 <= members <= 16:
        raise ValueError(f"an ensemble has 1 to 16 members, not {members!r}")
    return ProbabilityMeanEnsemble([build_network(member_architecture, in_channels, member_params) for _ in range(members)])


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "unet": build_unet,
    "cen": build_cen,
    "unet-bm": build_unet_bm,
    "unet-bdm": build_unet_bdm,
    "scanner-invariant": build_scanner_invariant_unet,
    "film-unet": build_film_unet,
    "dlb-unet": build_compact_unet,
    "dlb": build_dlb,
    "new-lesions-unet": build_new_lesions_unet,
    "ensemble": build_ensemble,
}

# One line per architecture for `mslesion methods`: what it is and where it comes from.
DESCRIPTIONS: dict[str, str] = {
    "unet": "shared baseline: compact 3D U-Net (MONAI BasicUNet, instance norm)",
    "cen": "Brosch et al. 2016: convolutional encoder network, one 9^3 conv + one full deconv; sensitivity-specificity loss",
    "unet-bm": "Aslani et al. 2020 baseline BM: 3D U-Net, 4 down / 4 up stages, no regulariser",
    "unet-bdm": "Aslani et al. 2020 baseline BDM: BM with dropout 0.5 in the encoder",
    "scanner-invariant": "Aslani et al. 2020: U-Net + bottleneck site classifier trained to confuse sites (pearson/random/uniform)",
    "film-unet": "Vincent et al. 2020: U-Net with FiLM after every conv block, conditioned on contrast/site/field/voxel size",
    "dlb-unet": "Kamraoui et al. 2022 (DeepLesionBrain): compact U-Net, GroupNorm, dropout 0.5 after pooling (one region's net)",
    "dlb": "Kamraoui et al. 2022 (DeepLesionBrain): one compact U-Net per MNI region, generic then specialised, majority vote",
    "new-lesions-unet": "MSSEG-2 style new-lesion U-Net: early fusion of baseline and follow-up (+ their difference)",
    "ensemble": "several models of one architecture trained alike (seeds, recipes), probabilities averaged (`mslesion ensemble`)",
}

# Methods that need no training (no weights, no architecture): name -> one line for `mslesion methods`.
UNTRAINED: dict[str, str] = {
    "subtraction": "new lesions without training: normalised difference of the visits, threshold, white-matter and size filters",
    "grown-subtraction": "changed lesions (default): subtraction candidates grown into the whole follow-up lesion they touch "
    "(shipped single-visit model), each classed new or enlarging",
    "probability-change": "changed lesions (new, enlarging, shrinking, resolved) from the shipped single-visit model run on each visit: |p(follow-up) - p(baseline)|",
}


def data_params(architecture: str, params: dict[str, Any], sites: Sequence[str]) -> dict[str, Any]:
    """Fill the parameters an architecture takes from the training data (its site list)."""
    params = dict(params)
    if architecture == "scanner-invariant":
        params.setdefault("n_sites", max(2, len(sites)))
    if architecture == "film-unet":
        params.setdefault("sites", list(sites))
    return params


def build_network(architecture: str, in_channels: int, params: dict[str, Any] | None = None) -> nn.Module:
    """Instantiate a registered architecture with `in_channels` inputs."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; known: {', '.join(sorted(ARCHITECTURES))}")
    return ARCHITECTURES[architecture](in_channels=in_channels, **(params or {}))
