"""Fixtures for report and cohort tests: a tiny random-weight model."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    """A random-weight 2-contrast U-Net (as tests/test_segment.py): fast, outputs on any grid."""
    import torch

    from mslesion.models.registry import build_network
    from mslesion.models.store import ModelCard, save_model

    torch.manual_seed(0)
    params = {"features": [4, 4, 8, 8, 16, 4]}
    net = build_network("unet", 2, params)
    card = ModelCard(
        architecture="unet", contrasts=["FLAIR", "T1"], params=params, patch_size=(32, 32, 32), threshold=0.5, min_lesion_mm3=3.0
    )
    return save_model(net.state_dict(), card, tmp_path / "model")
