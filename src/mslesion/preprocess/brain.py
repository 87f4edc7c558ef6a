"""Brain masks of skull-stripped input (non-zero voxels); raw scans go through `skullstrip` instead."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def nonzero_brain_mask(image: np.ndarray) -> np.ndarray:
    """Brain of a skull-stripped image: its non-zero voxels, holes filled (lesions, ventricles)."""
    return ndimage.binary_fill_holes(np.abs(image) > 1e-6)
