"""The anatomy phantoms are built on: MNI152 2009a tissue maps on the project's FSL MNI152 grid.

The 1 mm tissue maps and lesion-location regions come from `mslesion.space.priors`; here
they are averaged onto coarser grids when asked, cropped to the brain, and turned into what
lesion placement needs: distance maps to the ventricles and cortex, and candidate centres
per kind of lesion. Everything is cached per process and returned read-only.
"""

from __future__ import annotations

import enum
import functools
import logging
import math
from dataclasses import dataclass

import numpy as np

from mslesion.space.boxes import bounding_box
from mslesion.space.grid import FSL_MNI_AFFINE, FSL_MNI_SHAPE
from mslesion.space.priors import mni_regions_1mm, mni_tissues_1mm
from mslesion.synth.grid import (
    check_resolution,
    coarse_affine,
    coarse_shape,
    downsample,
)

log = logging.getLogger(__name__)

# Crop margin around the brain (mm): room for the deformation and for blurring.
CROP_MARGIN_MM = 12.0


class LesionKind(enum.StrEnum):
    """Where MS puts lesions (the McDonald criteria's locations)."""

    PERIVENTRICULAR = "periventricular"
    JUXTACORTICAL = "juxtacortical"
    DEEP_WHITE_MATTER = "deep_white_matter"
    INFRATENTORIAL = "infratentorial"


@dataclass(frozen=True)
class Anatomy:
    """Tissue maps and lesion-location regions on one grid, kept inside the brain's bounding box.

    Every array has the crop's shape (`crop` slices of the full `shape` grid); distances
    are in mm; `candidates[kind]` lists crop voxel indices where a lesion of that kind
    may be centred.
    """

    resolution_mm: float
    shape: tuple[int, int, int]
    affine: np.ndarray
    crop: tuple[slice, slice, slice]
    gm: np.ndarray
    wm: np.ndarray
    brain: np.ndarray
    ventricles: np.ndarray
    infratentorial: np.ndarray
    cortex: np.ndarray
    allowed_wm: np.ndarray
    allowed_parenchyma: np.ndarray
    vent_dist: np.ndarray
    cortex_dist: np.ndarray
    depth: np.ndarray
    candidates: dict[LesionKind, np.ndarray]

    @property
    def crop_shape(self) -> tuple[int, int, int]:
        """Shape of the cropped working arrays."""
        return self.gm.shape

    @property
    def crop_start(self) -> np.ndarray:
        """Full-grid voxel index of the crop's first voxel."""
        return np.array([s.start for s in self.crop])

    def crop_to_world(self, ijk: np.ndarray) -> np.ndarray:
        """World (RAS mm) coordinates of crop voxel coordinates (n, 3)."""
        full = np.atleast_2d(ijk) + self.crop_start
        return full @ self.affine[:3, :3].T + self.affine[:3, 3]

    def csf(self) -> np.ndarray:
        """CSF probability: what remains inside the brain after GM and WM."""
        return np.clip(self.brain - self.gm - self.wm, 0.0, 1.0).astype(np.float32)


def _candidates(
    wm: np.ndarray, vent_dist: np.ndarray, cortex_dist: np.ndarray, infra: np.ndarray, allowed_wm: np.ndarray, r: float
) -> dict[LesionKind, np.ndarray]:
    """Voxels where each kind of lesion may be centred (thresholds in mm, widened on coarse grids)."""
    near = max(2.5, 1.01 * r * math.sqrt(2))
    supra = ~infra
    masks = {
        LesionKind.PERIVENTRICULAR: (wm > 0.5) & (vent_dist > 0) & (vent_dist <= max(6.0, 1.5 * r)) & supra,
        LesionKind.JUXTACORTICAL: (wm > 0.4) & (cortex_dist <= near) & (vent_dist > 10.0) & supra & allowed_wm,
        LesionKind.DEEP_WHITE_MATTER: (wm > 0.85) & (vent_dist > 6.0) & (cortex_dist > 4.0) & supra,
        LesionKind.INFRATENTORIAL: (wm > 0.5) & infra,
    }
    return {kind: np.argwhere(m).astype(np.int32) for kind, m in masks.items()}


def load_anatomy(resolution_mm: float = 1.0) -> Anatomy:
    """The template anatomy on the `resolution_mm` grid (same field of view as FSL MNI152), cached."""
    return _load_anatomy(check_resolution(resolution_mm))


@functools.lru_cache(maxsize=4)
def _load_anatomy(r: float) -> Anatomy:
    from scipy import ndimage as ndi

    tissues = mni_tissues_1mm()
    regions = mni_regions_1mm()
    shape = coarse_shape(FSL_MNI_SHAPE, r)
    affine = coarse_affine(FSL_MNI_AFFINE, r)
    brain_p = downsample(tissues["brain"], r)
    brain = brain_p >= 0.5
    crop = bounding_box(brain, int(math.ceil(CROP_MARGIN_MM / r)))
    assert len(crop) == 3  # one slice per axis of the 3D brain
    b = brain[crop]

    def down(a: np.ndarray) -> np.ndarray:
        return downsample(a.astype(np.float32), r)[crop]

    gm = down(tissues["gm"]) * b
    wm = down(tissues["wm"]) * b
    binary = {name: (down(a) >= 0.5) & b for name, a in regions.items()}
    sampling = (r, r, r)
    vent_dist = ndi.distance_transform_edt(~binary["ventricles"], sampling=sampling).astype(np.float32)
    cortex_dist = ndi.distance_transform_edt(~binary["cortex"], sampling=sampling).astype(np.float32)
    depth = ndi.distance_transform_edt(b, sampling=sampling).astype(np.float32)
    candidates = _candidates(wm, vent_dist, cortex_dist, binary["infratentorial"], binary["allowed_wm"], r)
    for kind, idx in candidates.items():
        if len(idx) == 0:
            log.warning("no candidate voxels for %s lesions at %.3g mm", kind, r)
    anatomy = Anatomy(
        resolution_mm=r,
        shape=shape,
        affine=affine,
        crop=crop,
        gm=gm.astype(np.float32),
        wm=wm.astype(np.float32),
        brain=b.astype(np.float32),
        ventricles=binary["ventricles"],
        infratentorial=binary["infratentorial"],
        cortex=binary["cortex"],
        allowed_wm=binary["allowed_wm"],
        allowed_parenchyma=binary["allowed_parenchyma"],
        vent_dist=vent_dist,
        cortex_dist=cortex_dist,
        depth=depth,
        candidates=candidates,
    )
    for value in vars(anatomy).values():
        if isinstance(value, np.ndarray):
            value.setflags(write=False)
    for idx in candidates.values():
        idx.setflags(write=False)
    return anatomy


def classify_location(voxels: np.ndarray, anatomy: Anatomy) -> LesionKind:
    """Location class of a lesion from its crop voxel indices (n, 3), in McDonald's order of precedence."""
    idx = tuple(np.asarray(voxels).T)
    r = anatomy.resolution_mm
    if anatomy.infratentorial[idx].mean() >= 0.5:
        return LesionKind.INFRATENTORIAL
    if anatomy.vent_dist[idx].min() <= max(3.0, 1.01 * r):
        return LesionKind.PERIVENTRICULAR
    if anatomy.cortex_dist[idx].min() <= max(1.5, 1.01 * r * math.sqrt(2)):
        return LesionKind.JUXTACORTICAL
    return LesionKind.DEEP_WHITE_MATTER
