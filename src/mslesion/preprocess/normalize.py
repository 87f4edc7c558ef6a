"""Intensity normalisation inside the brain, so one model sees one intensity scale.

Each function is pure: image + brain mask in, float32 image out, background set to 0.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np


class Normalisation(StrEnum):
    """Available intensity normalisations (the name is stored in each model card)."""

    ZSCORE_BRAIN = "zscore_brain"


def zscore_brain(image: np.ndarray, brain: np.ndarray, clip: float = 5.0) -> np.ndarray:
    """(x - mean) / sd over brain voxels, robust to outliers (0.5-99.5 percentile window).

    Clipped to +-`clip` sd; voxels outside the brain are 0.
    """
    inside = brain > 0
    out = np.zeros(image.shape, np.float32)
    if not inside.any():
        return out
    values = image[inside].astype(np.float64)
    lo, hi = np.percentile(values, [0.5, 99.5])
    core = values[(values >= lo) & (values <= hi)]
    mean, sd = core.mean(), core.std()
    out[inside] = np.clip((image[inside] - mean) / max(sd, 1e-6), -clip, clip)
    return out


def normalised_channels(
    images: dict[str, np.ndarray], brain: np.ndarray, contrasts: list[str], method: Normalisation | str = Normalisation.ZSCORE_BRAIN
) -> np.ndarray:
    """(C, D, H, W) model input in `contrasts` order; a contrast missing from `images` is zeros.

    Zeros are what modality dropout trains the network to read as "not acquired".
    """
    return np.stack(
        [normalise(images[name], brain, method) if name in images else np.zeros(brain.shape, np.float32) for name in contrasts]
    )


def normalise(image: np.ndarray, brain: np.ndarray, method: Normalisation | str = Normalisation.ZSCORE_BRAIN) -> np.ndarray:
    """Apply the named normalisation."""
    method = Normalisation(method)
    if method is Normalisation.ZSCORE_BRAIN:
        return zscore_brain(image, brain)
    raise ValueError(f"unknown normalisation {method!r}")  # pragma: no cover
