"""Surface distances in mm (Hausdorff, HD95, ASSD) with anisotropic voxel spacing respected.

Surface voxels of a mask = the mask minus its binary erosion by the face-connected
(6-neighbour in 3D) structuring element, voxels outside the image counting as background;
this is medpy.metric.binary's definition with connectivity=1. The distance from a voxel
to the other surface is read from `scipy.ndimage.distance_transform_edt(sampling=spacing)`,
so anisotropic voxels give distances in mm between voxel centres.

Both directed distance sets (pred surface -> ref surface and ref -> pred) are computed
once per case on the bounding box of the two masks (plus a one-voxel margin); this is
exact because every surface voxel lies inside that box.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from mslesion.evaluate.conventions import DEFAULT_POLICY, EmptyPolicy
from mslesion.evaluate.voxel import as_mask_pair
from mslesion.space.boxes import bounding_box

logger = logging.getLogger(__name__)


def _check_spacing(spacing: Sequence[float], ndim: int) -> tuple[float, ...]:
    """Spacing as a tuple of ndim positive finite floats, else ValueError."""
    values = tuple(float(s) for s in spacing)
    if len(values) != ndim or any(not math.isfinite(s) or s <= 0 for s in values):
        raise ValueError(f"spacing must be {ndim} positive finite numbers, got {tuple(spacing)}")
    return values


def surface_voxels(mask: np.ndarray) -> np.ndarray:
    """Boolean surface of a mask: mask AND NOT erosion(mask, face-connected element, border = background)."""
    m = np.asarray(mask) != 0
    structure = ndimage.generate_binary_structure(m.ndim, 1)
    return m & ~ndimage.binary_erosion(m, structure=structure, iterations=1, border_value=0)


def _crop_to_union(p: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crop both masks to the bounding box of their union plus one voxel (clipped to the image)."""
    box = bounding_box(p | r, 1)
    return p[box], r[box]


@dataclass(frozen=True)
class DirectedDistances:
    """Distances (mm) from each pred surface voxel to the ref surface, and vice versa."""

    pred_to_ref: np.ndarray
    ref_to_pred: np.ndarray

    @property
    def pooled(self) -> np.ndarray:
        """Both directions concatenated (the set HD95 and the pooled ASSD are taken over)."""
        return np.concatenate([self.pred_to_ref, self.ref_to_pred])


def directed_surface_distances(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> DirectedDistances | None:
    """Both directed surface-distance sets in mm, or None if either mask is empty."""
    p, r = as_mask_pair(pred, ref)
    sampling = _check_spacing(spacing, p.ndim)
    if not p.any() or not r.any():
        return None
    p, r = _crop_to_union(p, r)
    surf_p, surf_r = surface_voxels(p), surface_voxels(r)
    dist_to_r = ndimage.distance_transform_edt(~surf_r, sampling=sampling)
    dist_to_p = ndimage.distance_transform_edt(~surf_p, sampling=sampling)
    return DirectedDistances(pred_to_ref=dist_to_r[surf_p], ref_to_pred=dist_to_p[surf_r])


def _empty_value(pred: np.ndarray, ref: np.ndarray, policy: EmptyPolicy) -> float:
    """Policy value for the surface metrics when at least one mask is empty."""
    both = not np.any(pred) and not np.any(ref)
    return policy.surface_both_empty if both else policy.surface_one_empty


def hausdorff_distance(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float], policy: EmptyPolicy = DEFAULT_POLICY) -> float:
    """Hausdorff distance (mm): the largest directed surface distance of both directions."""
    d = directed_surface_distances(pred, ref, spacing)
    return _empty_value(pred, ref, policy) if d is None else float(d.pooled.max())


def hd95(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float], policy: EmptyPolicy = DEFAULT_POLICY) -> float:
    """95th percentile Hausdorff distance (mm).

    95th percentile (numpy linear interpolation) of the pooled directed surface distances
    of both directions, exactly as medpy.metric.binary.hd95 (which MSSEG/ISLES codes use).
    """
    d = directed_surface_distances(pred, ref, spacing)
    return _empty_value(pred, ref, policy) if d is None else float(np.percentile(d.pooled, 95))


def assd(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float], policy: EmptyPolicy = DEFAULT_POLICY) -> float:
    """Average symmetric surface distance (mm), pooled definition.

    ASSD = (sum_{a in S_P} d(a, S_R) + sum_{b in S_R} d(b, S_P)) / (|S_P| + |S_R|)
    (Heimann et al., IEEE TMI 28, 2009; Anima `animaSegPerfAnalyzer` "average surface
    distance"; medpy.metric.binary.assd since medpy 0.5). Note: medpy <= 0.4 (and many
    published numbers computed with it) instead returned the mean of the two directed
    means, (mean_a d(a, S_R) + mean_b d(b, S_P)) / 2 (loli/medpy issue #108), which
    differs whenever |S_P| != |S_R|; that variant is `assd_mean_of_means`.
    """
    d = directed_surface_distances(pred, ref, spacing)
    return _empty_value(pred, ref, policy) if d is None else float(d.pooled.mean())


def assd_mean_of_means(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float], policy: EmptyPolicy = DEFAULT_POLICY) -> float:
    """Old medpy (<= 0.4) ASSD: mean of the two directed mean surface distances (mm), for comparison.

    Equals (medpy.metric.binary.asd(P, R) + asd(R, P)) / 2 with the same spacing and
    connectivity=1.
    """
    d = directed_surface_distances(pred, ref, spacing)
    if d is None:
        return _empty_value(pred, ref, policy)
    return float((d.pred_to_ref.mean() + d.ref_to_pred.mean()) / 2.0)


def surface_metrics(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float], policy: EmptyPolicy = DEFAULT_POLICY) -> dict[str, float]:
    """hd_mm, hd95_mm and assd_mm (pooled) from a single pair of distance transforms."""
    d = directed_surface_distances(pred, ref, spacing)
    if d is None:
        value = _empty_value(pred, ref, policy)
        return {"hd_mm": value, "hd95_mm": value, "assd_mm": value}
    pooled = d.pooled
    return {
        "hd_mm": float(pooled.max()),
        "hd95_mm": float(np.percentile(pooled, 95)),
        "assd_mm": float(pooled.mean()),
    }
