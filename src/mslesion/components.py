"""Connected components of lesion masks: the one labelling used by postprocessing and evaluation."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

RANK_OF_CONNECTIVITY = {6: 1, 18: 2, 26: 3}


def label_components(mask: np.ndarray, connectivity: int = 26) -> tuple[np.ndarray, int]:
    """Label the connected components of a 3D mask: (labels 1..n, background 0; n).

    connectivity: 6 (faces), 18 (faces + edges) or 26 (faces + edges + corners),
    i.e. scipy.ndimage.generate_binary_structure(3, 1 / 2 / 3).
    """
    if connectivity not in RANK_OF_CONNECTIVITY:
        raise ValueError(f"connectivity must be 6, 18 or 26, got {connectivity}")
    m = np.asarray(mask) != 0
    if m.ndim != 3:
        raise ValueError(f"a 3D mask is needed, got shape {m.shape}")
    structure = ndimage.generate_binary_structure(3, RANK_OF_CONNECTIVITY[connectivity])
    labels, n = ndimage.label(m, structure=structure)
    return labels.astype(np.int32, copy=False), int(n)


def touched_components(labels: np.ndarray, n: int, region: np.ndarray) -> np.ndarray:
    """(n + 1,) bool: which components of `labels` (1..n) have a voxel in `region`; index 0 (background) is False."""
    out = np.zeros(n + 1, bool)
    out[np.unique(labels[np.asarray(region, bool) & (labels > 0)])] = True
    return out


def min_voxels_above(volume_mm3: float, voxel_volume_mm3: float) -> int:
    """Fewest voxels of a lesion strictly larger than `volume_mm3`: floor(volume / voxel) + 1.

    The MSSEG-2 rule (Anima): at 1 mm iso, lesions of at most 3 mm^3 go, 4 voxels stay.
    """
    if not math.isfinite(volume_mm3) or volume_mm3 < 0:
        raise ValueError(f"volume must be >= 0 mm^3, got {volume_mm3}")
    return math.floor(volume_mm3 / voxel_volume_mm3) + 1
