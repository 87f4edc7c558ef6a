"""Brain masks. For now only the one skull-stripped input implies; extraction from raw scans comes later."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def nonzero_brain_mask(image: np.ndarray) -> np.ndarray:
    """Brain of a skull-stripped image: its non-zero voxels, holes filled (lesions, ventricles)."""
    return ndimage.binary_fill_holes(np.abs(image) > 1e-6)
