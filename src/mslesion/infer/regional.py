"""Inference with a regional ensemble (DeepLesionBrain): grid check, then majority vote.

The regions live on the grid the model was trained on (the FSL MNI152 1 mm grid for the
paper's models), so input must be on exactly that grid: no sliding window, no cropping.
"""

from __future__ import annotations

import numpy as np
import torch

from mslesion.errors import InputError
from mslesion.io.volume import Volume
from mslesion.models.dlb import RegionalEnsemble
from mslesion.space.grid import FSL_MNI_SHAPE

AFFINE_TOLERANCE_MM = 1e-3


def grid_name(shape: tuple[int, ...]) -> str:
    """How to name a model's grid in messages."""
    return "the FSL MNI152 1 mm grid (182x218x182)" if tuple(shape) == FSL_MNI_SHAPE else "x".join(map(str, shape))


def check_grid(model: RegionalEnsemble, volume: Volume) -> None:
    """InputError (one line) unless `volume` is on the model's grid: same shape, same affine."""
    same_shape = tuple(volume.shape) == tuple(model.grid_shape)
    same_affine = model.grid_affine is None or np.allclose(volume.affine, model.grid_affine, atol=AFFINE_TOLERANCE_MM)
    if not (same_shape and same_affine):
        got = "x".join(map(str, volume.shape)) + ("" if same_affine else ", another affine")
        raise InputError(
            volume.path,
            f"not on the model's grid ({got}): this DeepLesionBrain model needs input in MNI space on "
            f"{grid_name(model.grid_shape)}; register to MNI first",
        )


def predict_regional(model: RegionalEnsemble, image: np.ndarray, threshold: float, flips: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(mean probability float32, majority-vote mask bool) of a (C, D, H, W) normalised image;
    `flips` >= 2 adds the left-right mirrored image to the vote (`RegionalEnsemble.predict_volume`)."""
    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    mask, probability = model.predict_volume(tensor, threshold, flips=flips)
    return probability.cpu().numpy(), mask.cpu().numpy()
