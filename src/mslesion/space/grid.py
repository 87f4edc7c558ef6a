"""The FSL MNI152 1 mm grid: the space of the project's real data and the model's working grid."""

from __future__ import annotations

import numpy as np

# The grid of the project's real data (../shared/data/lesjak-mni): FSL's MNI152 1 mm space.
FSL_MNI_SHAPE: tuple[int, int, int] = (182, 218, 182)
FSL_MNI_AFFINE = np.array([[-1.0, 0.0, 0.0, 90.0], [0.0, 1.0, 0.0, -126.0], [0.0, 0.0, 1.0, -72.0], [0.0, 0.0, 0.0, 1.0]])

# Models segment on this grid; preprocessing resamples scans onto it and back (preprocess.resample).
WORKING_SHAPE: tuple[int, int, int] = FSL_MNI_SHAPE
WORKING_AFFINE: np.ndarray = FSL_MNI_AFFINE


def on_mni_grid(shape: tuple[int, ...] | None, affine: np.ndarray | None, atol: float = 1e-3) -> bool:
    """Whether an image of `shape` and `affine` lies on the FSL MNI152 1 mm grid (the working grid)."""
    return shape is not None and affine is not None and tuple(shape) == FSL_MNI_SHAPE and np.allclose(affine, FSL_MNI_AFFINE, atol=atol)
