"""Explicit registry: architecture name -> builder. A model file names its architecture."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from mslesion.models.unet import build_unet

ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "unet": build_unet,
}


def build_network(architecture: str, in_channels: int, params: dict[str, Any] | None = None) -> nn.Module:
    """Instantiate a registered architecture with `in_channels` inputs."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; known: {', '.join(sorted(ARCHITECTURES))}")
    return ARCHITECTURES[architecture](in_channels=in_channels, **(params or {}))
