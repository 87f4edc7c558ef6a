"""The anatomy phantoms are built on: MNI152 2009a tissue maps on the project's FSL MNI152 grid.

nilearn ships the MNI152 2009a T1 template, its GM/WM probability maps and its brain mask
(nothing is downloaded). They are moved once onto the FSL MNI152 1 mm grid of the real
data (182x218x182), averaged onto coarser grids when asked, and turned into the regions
lesion placement needs: ventricles, cortex, the infratentorial compartment, and distance
maps to them. Everything is cached per process and returned read-only.
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
from mslesion.synth.grid import (
    check_resolution,
    coarse_affine,
    coarse_shape,
    downsample,
)

log = logging.getLogger(__name__)

# Crop margin around the brain (mm): room for the deformation and for blurring.
CROP_MARGIN_MM = 12.0
# Depth below the brain-mask surface (mm) within which GM counts as cortex.
CORTEX_MAX_DEPTH_MM = 22.0


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
        return self.gm.shape  # type: ignore[return-value]

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


def _to_fsl_grid(img) -> np.ndarray:  # noqa: ANN001 - nibabel image
    """Resample a nilearn MNI152 2009a image onto the FSL MNI152 1 mm grid (exact when voxels align)."""
    from scipy import ndimage as ndi

    data = np.asarray(img.get_fdata(dtype=np.float32), dtype=np.float32)
    voxel_map = np.linalg.inv(np.asarray(img.affine, dtype=float)) @ FSL_MNI_AFFINE
    lin, off = voxel_map[:3, :3], voxel_map[:3, 3]
    aligned = np.allclose(np.abs(lin), np.eye(3)) and np.allclose(off, np.round(off))
    if aligned:
        idx = [np.round(lin[a, a] * np.arange(n) + off[a]).astype(int) for a, n in enumerate(FSL_MNI_SHAPE)]
        if all(i.min() >= 0 and i.max() < data.shape[a] for a, i in enumerate(idx)):
            return np.ascontiguousarray(data[np.ix_(*idx)])
    return ndi.affine_transform(data, lin, off, output_shape=FSL_MNI_SHAPE, order=1, output=np.float32)


@functools.lru_cache(maxsize=1)
def mni_tissues_1mm() -> dict[str, np.ndarray]:
    """GM, WM and brain maps of MNI152 2009a on the FSL 1 mm grid (GM/WM zero outside the brain)."""
    from nilearn import datasets

    log.info("loading the MNI152 2009a templates shipped with nilearn")
    brain = (_to_fsl_grid(datasets.load_mni152_brain_mask(resolution=1)) > 0.5).astype(np.float32)
    gm = np.clip(_to_fsl_grid(datasets.load_mni152_gm_template(resolution=1)), 0, 1) * brain
    wm = np.clip(_to_fsl_grid(datasets.load_mni152_wm_template(resolution=1)), 0, 1) * brain
    total = gm + wm
    over = total > 1.0
    gm[over] /= total[over]
    wm[over] /= total[over]
    out = {"gm": gm.astype(np.float32), "wm": wm.astype(np.float32), "brain": brain}
    for a in out.values():
        a.setflags(write=False)
    return out


def _world_axes(shape: tuple[int, ...], affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Broadcastable world x, y, z coordinates of an axis-aligned grid."""
    axes = []
    for a, n in enumerate(shape):
        coord = np.arange(n) * affine[a, a] + affine[a, 3]
        axes.append(coord.reshape([-1 if b == a else 1 for b in range(3)]))
    return axes[0], axes[1], axes[2]


def infratentorial_box(shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
    """The posterior fossa, roughly: brainstem (medial, below z=-22 mm) and cerebellum (behind y=-38, below z=-28)."""
    x, y, z = _world_axes(shape, affine)
    brainstem = (y < -15) & (z < -22) & (np.abs(x) < 16)
    cerebellum = (y < -38) & (z < -28)
    return brainstem | cerebellum


@functools.lru_cache(maxsize=1)
def mni_regions_1mm() -> dict[str, np.ndarray]:
    """Binary lesion-location regions at 1 mm: ventricles, cortex, infratentorial, allowed zones."""
    from scipy import ndimage as ndi

    t = mni_tissues_1mm()
    gm, wm, brain = t["gm"], t["wm"], t["brain"]
    crop = bounding_box(brain > 0, 2)
    b = brain[crop] > 0
    csf = np.clip(brain[crop] - gm[crop] - wm[crop], 0, 1)
    depth = ndi.distance_transform_edt(b)
    # Ventricles: deep CSF, opened to cut thin sulci and fissures, kept where wide and near the midline.
    deep_csf = ndi.binary_opening((csf > 0.5) & (depth > 10), iterations=1)
    labels, n = ndi.label(deep_csf)
    ventricles = np.zeros_like(b)
    full_affine = FSL_MNI_AFFINE.copy()
    full_affine[:3, 3] = FSL_MNI_AFFINE[:3, :3] @ [s.start for s in crop] + FSL_MNI_AFFINE[:3, 3]
    for k, sl in enumerate(ndi.find_objects(labels), start=1):
        comp = labels[sl] == k
        width_mm = sl[0].stop - sl[0].start
        centre_x = full_affine[0, 0] * (ndi.center_of_mass(comp)[0] + sl[0].start) + full_affine[0, 3]
        if comp.sum() >= 500 and width_mm >= 15 and abs(centre_x) < 15:
            ventricles[sl] |= comp
    infra = infratentorial_box(b.shape, full_affine) & b
    cortex = (gm[crop] > 0.5) & (depth <= CORTEX_MAX_DEPTH_MM) & ~infra
    allowed_wm = ndi.binary_dilation(wm[crop] > 0.5, iterations=1) & b
    allowed_parenchyma = (gm[crop] + wm[crop] > 0.5) & b
    regions = {
        "ventricles": ventricles,
        "infratentorial": infra,
        "cortex": cortex,
        "allowed_wm": allowed_wm,
        "allowed_parenchyma": allowed_parenchyma,
    }
    out = {}
    for name, region in regions.items():
        full = np.zeros(FSL_MNI_SHAPE, dtype=bool)
        full[crop] = region
        full.setflags(write=False)
        out[name] = full
    log.debug("ventricles %.1f mL, infratentorial %.1f mL", ventricles.sum() / 1e3, infra.sum() / 1e3)
    return out


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
