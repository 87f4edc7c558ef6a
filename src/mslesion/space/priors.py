"""Anatomical priors on the FSL MNI152 1 mm grid: tissue maps, lesion-location regions, the white-matter prior.

nilearn ships the MNI152 2009a T1 template, its GM/WM probability maps and its brain mask
(nothing is downloaded). They are moved once onto the FSL MNI152 1 mm grid of the real
data (182x218x182) and turned into the regions lesion locations are defined by:
ventricles, cortex, the infratentorial compartment. The phantoms (`mslesion.synth`), the
location classifier (`mslesion.postprocess.locations`) and the new-lesion baseline
(`mslesion.models.subtraction`) all read these same maps. Everything is cached per
process and returned read-only.
"""

from __future__ import annotations

import functools
import logging

import numpy as np

from mslesion.space.boxes import bounding_box
from mslesion.space.grid import FSL_MNI_AFFINE, FSL_MNI_SHAPE, WORKING_SHAPE

log = logging.getLogger(__name__)

# Depth below the brain-mask surface (mm) within which GM counts as cortex.
CORTEX_MAX_DEPTH_MM = 22.0


def _to_fsl_grid(img) -> np.ndarray:
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


@functools.lru_cache(maxsize=1)
def white_matter_prior_working_grid() -> np.ndarray:
    """White matter (MNI152 2009a WM probability > 0.5) on the FSL MNI152 1 mm working grid, read-only, cached.

    From the tissue maps nilearn ships (`mni_tissues_1mm`, no download),
    the same maps the phantoms and the location atlas are built from.
    """
    prior = mni_tissues_1mm()["wm"] > 0.5
    if prior.shape != tuple(WORKING_SHAPE):
        raise RuntimeError(f"white-matter prior has shape {prior.shape}, expected the working grid {WORKING_SHAPE}")
    prior.setflags(write=False)
    return prior
