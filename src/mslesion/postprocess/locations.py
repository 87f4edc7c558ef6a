"""Lesion locations (McDonald 2017): periventricular, juxtacortical/cortical, infratentorial, deep white matter.

The regions come from the MNI152 2009a templates nilearn ships (no download), moved onto
the FSL MNI152 1 mm grid (182x218x182) by `mslesion.space.priors.mni_regions_1mm`, the
same regions the phantoms place their lesions in, so synthetic ground truth and this
classifier agree:

- ventricles: CSF (brain mask minus GM minus WM probability > 0.5) deeper than 10 mm
  below the brain-mask surface (which removes sulci and the cortex surface), opened by
  one voxel to cut thin fissures; of its connected pieces those of at least 500 voxels,
  at least 15 mm wide in x and centred within 15 mm of the midline are kept (the
  lateral ventricles; the third ventricle joins them when wide enough).
- cortex: GM probability > 0.5 within 22 mm of the brain surface (deep grey nuclei
  excluded), outside the infratentorial compartment.
- infratentorial: brainstem = |x| < 16 mm, y < -15 mm, z < -22 mm; cerebellum =
  y < -38 mm, z < -28 mm (MNI mm), inside the brain mask. These planes approximate
  the tentorium cerebelli on the template.

Rules, in McDonald's order of precedence (one class per lesion):
1. infratentorial: at least half of the lesion's voxels in the infratentorial compartment;
2. periventricular: some lesion voxel within 3 mm of a ventricle voxel (touching included);
3. juxtacortical/cortical: some lesion voxel within 1.5 mm of cortex (touching or inside);
4. deep white matter: the rest.
Distances are looked up at voxel centres in precomputed distance maps; on grids coarser
than 1 mm the thresholds grow by half the excess voxel size, so a thick-slice voxel's
extent is not ignored. A lesion outside the atlas field of view is "unknown".

Lookups go through world coordinates, so any grid aligned to MNI space works; the
caller decides whether its image is in MNI space (`mni_overlap` helps). The atlas is
precomputed to `mslesion/data/atlas/locations_mni152_1mm.npz` by the script beside it
(`make_atlas.py`); without the file it is rebuilt in memory (about 10 s), once per process.
"""

from __future__ import annotations

import enum
import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from nibabel.affines import voxel_sizes
from scipy import ndimage

logger = logging.getLogger(__name__)

ATLAS_FILE = "locations_mni152_1mm.npz"
PERIVENTRICULAR_MM = 3.0
JUXTACORTICAL_MM = 1.5
INFRATENTORIAL_FRACTION = 0.5
# Distances are stored as uint8 in tenths of a mm, clipped at 8 mm: the rules only look at the first few mm.
DIST_SCALE = 10.0
DIST_CLIP_MM = 8.0


class Location(enum.StrEnum):
    """Where a lesion is (McDonald 2017); UNKNOWN when the image is not in MNI space."""

    PERIVENTRICULAR = "periventricular"
    JUXTACORTICAL = "juxtacortical"
    INFRATENTORIAL = "infratentorial"
    DEEP_WHITE_MATTER = "deep_white_matter"
    UNKNOWN = "unknown"


CLASSES = [Location.PERIVENTRICULAR, Location.JUXTACORTICAL, Location.INFRATENTORIAL, Location.DEEP_WHITE_MATTER]


@dataclass(frozen=True)
class LocationAtlas:
    """Distance maps (mm) and regions on the FSL MNI152 1 mm grid."""

    affine: np.ndarray
    brain: np.ndarray
    parenchyma: np.ndarray
    infratentorial: np.ndarray
    ventricle_dist: np.ndarray
    cortex_dist: np.ndarray


def build_atlas_arrays() -> dict[str, np.ndarray]:
    """Derive the atlas from nilearn's templates (slow: used by make_atlas.py and as fallback)."""
    from mslesion.space.grid import FSL_MNI_AFFINE
    from mslesion.space.priors import mni_regions_1mm, mni_tissues_1mm

    regions = mni_regions_1mm()
    tissues = mni_tissues_1mm()
    brain = tissues["brain"] > 0.5
    parenchyma = ndimage.binary_fill_holes((tissues["gm"] + tissues["wm"] > 0.5) | regions["ventricles"])

    def dist(region: np.ndarray) -> np.ndarray:
        d = ndimage.distance_transform_edt(~region)
        return np.round(np.minimum(d, DIST_CLIP_MM) * DIST_SCALE).astype(np.uint8)

    return {
        "affine": FSL_MNI_AFFINE.astype(np.float64),
        "brain": brain,
        "parenchyma": parenchyma,
        "infratentorial": regions["infratentorial"].copy(),
        "ventricle_dist": dist(regions["ventricles"]),
        "cortex_dist": dist(regions["cortex"]),
    }


def _packaged_atlas() -> Path:
    from importlib import resources

    return Path(str(resources.files("mslesion") / "data" / "atlas" / ATLAS_FILE))


@functools.lru_cache(maxsize=1)
def load_atlas() -> LocationAtlas:
    """The location atlas: the packaged file, else derived from the templates (cached per process)."""
    path = _packaged_atlas()
    if path.is_file():
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
    else:
        logger.info("location atlas file missing; deriving it from the MNI152 templates")
        arrays = build_atlas_arrays()
    atlas = LocationAtlas(
        affine=np.asarray(arrays["affine"], dtype=float),
        brain=arrays["brain"].astype(bool),
        parenchyma=arrays["parenchyma"].astype(bool),
        infratentorial=arrays["infratentorial"].astype(bool),
        ventricle_dist=arrays["ventricle_dist"].astype(np.float32) / DIST_SCALE,
        cortex_dist=arrays["cortex_dist"].astype(np.float32) / DIST_SCALE,
    )
    for value in vars(atlas).values():
        value.setflags(write=False)
    return atlas


def _atlas_index(ijk: np.ndarray, affine: np.ndarray, atlas: LocationAtlas) -> tuple[np.ndarray, np.ndarray]:
    """Nearest atlas voxel of each input voxel (n, 3) and whether it lies inside the atlas grid."""
    vox_to_atlas = np.linalg.inv(atlas.affine) @ np.asarray(affine, dtype=float)
    idx = np.rint(ijk @ vox_to_atlas[:3, :3].T + vox_to_atlas[:3, 3]).astype(np.int64)
    inside = np.all((idx >= 0) & (idx < np.array(atlas.brain.shape)), axis=1)
    return np.clip(idx, 0, np.array(atlas.brain.shape) - 1), inside


def classify_lesions(labels: np.ndarray, affine: np.ndarray, to_mni: np.ndarray | None = None) -> dict[int, str]:
    """Location of each labelled lesion (label -> Location value).

    `affine` maps voxels to world mm; `to_mni` (4x4, world -> MNI mm; identity when None)
    is a registration or the head-size fit of `align_to_template`.
    """
    ijk = np.argwhere(labels > 0)
    if len(ijk) == 0:
        return {}
    lab = labels[tuple(ijk.T)]
    ids = np.unique(lab)
    atlas = load_atlas()
    vox_to_mni = (np.eye(4) if to_mni is None else np.asarray(to_mni, dtype=float)) @ np.asarray(affine, dtype=float)
    idx, inside = _atlas_index(ijk.astype(float), vox_to_mni, atlas)
    at = tuple(idx.T)
    spacing = voxel_sizes(vox_to_mni)
    slack = max(0.0, (float(spacing.max()) - 1.0) / 2.0)
    infra = ndimage.mean(atlas.infratentorial[at] & inside, lab, ids)
    in_fov = ndimage.maximum(inside, lab, ids)
    vent = ndimage.minimum(np.where(inside, atlas.ventricle_dist[at], np.inf), lab, ids)
    cortex = ndimage.minimum(np.where(inside, atlas.cortex_dist[at], np.inf), lab, ids)
    out: dict[int, str] = {}
    for k, lesion_id in enumerate(ids):
        if not in_fov[k]:
            where = Location.UNKNOWN
        elif infra[k] >= INFRATENTORIAL_FRACTION:
            where = Location.INFRATENTORIAL
        elif vent[k] <= PERIVENTRICULAR_MM + slack:
            where = Location.PERIVENTRICULAR
        elif cortex[k] <= JUXTACORTICAL_MM + slack:
            where = Location.JUXTACORTICAL
        else:
            where = Location.DEEP_WHITE_MATTER
        out[int(lesion_id)] = where.value
    return out


def location_summary(locations: dict[int, str], volumes_ml: dict[int, float]) -> dict[str, dict[str, float | int]]:
    """Count and volume (mL) per class; every class listed, `unknown` only when it occurs."""
    names = [c.value for c in CLASSES] + ([Location.UNKNOWN.value] if Location.UNKNOWN.value in locations.values() else [])
    summary: dict[str, dict[str, float | int]] = {name: {"count": 0, "volume_ml": 0.0} for name in names}
    for lesion_id, where in locations.items():
        summary[where]["count"] += 1
        summary[where]["volume_ml"] += volumes_ml.get(lesion_id, 0.0)
    for entry in summary.values():
        entry["volume_ml"] = round(float(entry["volume_ml"]), 4)
    return summary


def _world_samples(shape: tuple[int, ...], affine: np.ndarray, step: int) -> tuple[np.ndarray, tuple[slice, ...]]:
    """World coordinates (n, 3) of every `step`-th voxel, and the slices that pick those voxels."""
    sl = tuple(slice(0, n, step) for n in shape)
    ijk = np.stack(np.meshgrid(*[np.arange(n)[s] for n, s in zip(shape, sl)], indexing="ij"), -1).reshape(-1, 3)
    return ijk @ np.asarray(affine, dtype=float)[:3, :3].T + np.asarray(affine, dtype=float)[:3, 3], sl


@functools.lru_cache(maxsize=1)
def _template_moments() -> tuple[np.ndarray, np.ndarray]:
    atlas = load_atlas()
    xyz = np.argwhere(atlas.parenchyma) @ atlas.affine[:3, :3].T + atlas.affine[:3, 3]
    return xyz.mean(axis=0), xyz.std(axis=0)


@dataclass(frozen=True)
class TemplateFit:
    """A head-size fit to the template: world -> MNI mm, and how well and how far it moved."""

    to_mni: np.ndarray
    dice: float
    scale: tuple[float, float, float]
    shift_mm: float


def align_to_template(brain: np.ndarray, affine: np.ndarray, step: int = 2) -> TemplateFit:
    """Head-size fit of a brain already oriented like MNI: per-axis scale and shift, and its Dice.

    Matches the mean and spread of the brain mask's world coordinates to those of the
    template's parenchyma (a moment fit, not a registration): data aligned to MNI
    rigidly, such as the Lesjak images, have brains about 13 % smaller than the template.
    """
    world, sl = _world_samples(brain.shape, affine, step)
    inside_brain = np.asarray(brain)[sl].ravel() > 0
    if not inside_brain.any():
        return TemplateFit(np.eye(4), 0.0, (1.0, 1.0, 1.0), float("inf"))
    mean_t, std_t = _template_moments()
    mine = world[inside_brain]
    scale = std_t / np.maximum(mine.std(axis=0), 1e-6)
    to_mni = np.eye(4)
    to_mni[:3, :3] = np.diag(scale)
    to_mni[:3, 3] = mean_t - scale * mine.mean(axis=0)
    atlas = load_atlas()
    idx, inside = _atlas_index(world @ to_mni[:3, :3].T + to_mni[:3, 3], np.eye(4), atlas)
    template = atlas.parenchyma[tuple(idx.T)] & inside
    dice = 2.0 * int((inside_brain & template).sum()) / (int(inside_brain.sum()) + int(template.sum()))
    shift = float(np.abs(mine.mean(axis=0) - mean_t).max())
    return TemplateFit(to_mni, dice, tuple(float(v) for v in scale), shift)  # type: ignore[arg-type]  # 3 axes; mypy cannot count a generator's items


# An image counts as MNI-aligned when its grid is axis-aligned and the head-size fit is
# small and good: the Lesjak MNI images score about 0.9.
MIN_TEMPLATE_DICE = 0.85
MAX_SHIFT_MM = 20.0
SCALE_RANGE = (0.7, 1.4)


def _axis_aligned(affine: np.ndarray, tol: float = 1e-3) -> bool:
    """True when every voxel axis runs along one world axis (no obliquity)."""
    lin = np.abs(np.asarray(affine, dtype=float)[:3, :3])
    lin = lin / lin.max(axis=0, keepdims=True)
    return bool(np.all((lin > tol).sum(axis=0) == 1) and np.all((lin > tol).sum(axis=1) == 1))


def locate_lesions(
    labels: np.ndarray, brain: np.ndarray, affine: np.ndarray, to_mni: np.ndarray | None = None
) -> tuple[dict[int, str], dict[str, float | str], list[str]]:
    """Locations of labelled lesions, with QC numbers and warnings.

    With `to_mni` (a registration, world -> MNI mm) it is used as given. Without it the
    image must already be aligned to MNI (axis-aligned grid, brain matching the template
    after a head-size fit); otherwise every lesion is "unknown" and a warning says why.
    """
    ids = [int(i) for i in np.unique(labels) if i > 0]
    if to_mni is not None:
        return classify_lesions(labels, affine, to_mni), {"location_space": "registered to MNI"}, []
    qc: dict[str, float | str] = {"location_space": "not MNI"}
    if not _axis_aligned(affine):
        reason = "the image grid is oblique"
    else:
        fit = align_to_template(brain, affine)
        qc["template_dice"] = round(fit.dice, 3)
        scale_ok = SCALE_RANGE[0] <= min(fit.scale) and max(fit.scale) <= SCALE_RANGE[1]
        if fit.dice >= MIN_TEMPLATE_DICE and fit.shift_mm <= MAX_SHIFT_MM and scale_ok:
            qc["location_space"] = "MNI-aligned input (head-size fit)"
            qc["head_scale"] = round(float(np.prod(fit.scale)) ** (1 / 3), 3)
            return classify_lesions(labels, affine, fit.to_mni), qc, []
        reason = (
            f"the brain does not match the MNI template (Dice {fit.dice:.2f}, centre {fit.shift_mm:.0f} mm away, "
            f"scale {min(fit.scale):.2f}-{max(fit.scale):.2f} after a head-size fit)"
        )
    warning = f"lesion locations unknown: {reason}; the input is not in MNI space and no registration was given"
    return {i: Location.UNKNOWN.value for i in ids}, qc, [warning]


def annotate_locations(
    rows: list[dict], labels: np.ndarray, brain: np.ndarray, affine: np.ndarray, to_mni: np.ndarray | None = None
) -> tuple[dict[str, dict[str, float | int]], dict[str, float | str], list[str]]:
    """Add a `location` to each `lesion_rows` row; `labels` numbers the lesions as the rows do
    (`postprocess.lesions.lesion_labels` or `ranked_labels`). Per-class summary, QC and warnings."""
    locations, qc, warnings = locate_lesions(labels, brain, affine, to_mni)
    for row in rows:
        row["location"] = locations.get(int(row["lesion_id"]), Location.UNKNOWN.value)
    volumes = {int(row["lesion_id"]): float(row["volume_ml"]) for row in rows}
    return location_summary(locations, volumes), qc, warnings
