"""In-memory phantoms: one subject (`make_subject`) or one subject at two visits (`make_longitudinal_pair`).

Nothing here touches the disk, so tests and training code can draw phantoms directly.
Randomness comes in separate streams (anatomy, lesions, each contrast's acquisition),
so asking for fewer contrasts, or for a second visit, never changes the rest.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from nibabel.affines import voxel_sizes

from mslesion.components import touched_components
from mslesion.space.boxes import pad_to_grid
from mslesion.synth.anatomy import Anatomy, LesionKind, load_anatomy
from mslesion.synth.fields import apply_rigid, random_displacement, random_rigid, smooth_field, warp, warp_labels
from mslesion.synth.lesions import LesionModel, Raster, draw_count, evolve, paint, rasterize, sample_lesions
from mslesion.synth.library import LesionLibrary, load_lesion_library
from mslesion.synth.render import TissueMaps, lesion_means, render, tissue_maps
from mslesion.synth.sites import CONTRASTS, SiteProfile, default_site, degrade_site

log = logging.getLogger(__name__)

SeedLike = int | np.random.Generator | np.random.SeedSequence
TEXTURE_WAVELENGTH_MM = 12.0
# Dirty-appearing white matter (DAWM): diffuse, ill-defined white-matter signal change
# between normal WM and a lesion, which raters do not outline. Real FLAIR shows it (and
# bright normal tracts) all over; phantoms without it teach a network that any WM
# brightening is lesion, the false positives seen on real scans.
DAWM_WAVELENGTH_MM = 16.0
DAWM_CAP = 0.6  # never more than 60% of the way from WM to a mild lesion
# A "new lesion" is a connected component (26-connectivity) of the follow-up mask that
# shares no voxel with the baseline mask.
CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)
# New lesions are placed at least this many voxels away from every other lesion, so each is its own component.
NEW_LESION_GAP_VOXELS = 2


@dataclass
class Phantom:
    """A synthetic subject: contrasts, ground truth, brain mask and partial-volume maps on one grid.

    `images` maps contrast names (FLAIR, T1, T2, PD) to float32 arrays; `lesion` and
    `brain` are uint8 0/1; `tissues` holds GM, WM, CSF and lesion partial volumes;
    `lesions` describes each placed lesion (id, kind, source, voxels, volume, centre, change)
    and `lesion_ids` (int32) says which lesion id owns each lesion voxel (0 elsewhere).
    """

    images: dict[str, np.ndarray]
    lesion: np.ndarray
    brain: np.ndarray
    affine: np.ndarray
    tissues: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    lesion_ids: np.ndarray | None = field(default=None, repr=False)
    lesions: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Grid shape shared by every array."""
        return self.lesion.shape


@dataclass
class LongitudinalPair:
    """One subject at two visits on a common grid, with the new-lesion label.

    `new_lesion` holds the follow-up lesion components that share no voxel with the
    baseline lesions (26-connectivity). Enlarging lesions are not new: their growth
    rim is not labelled (as in MSSEG-2), nor are shrinking ones. Both visits' lesion
    masks are in the common (baseline) space; the follow-up images carry a small
    residual misregistration (`meta["misregistration"]`), as registered real pairs do.
    """

    baseline: Phantom
    followup: Phantom
    new_lesion: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def affine(self) -> np.ndarray:
        """The common grid's affine."""
        return self.baseline.affine

    @property
    def brain(self) -> np.ndarray:
        """The brain mask (the anatomy is the same at both visits)."""
        return self.baseline.brain


def as_generator(rng_or_seed: SeedLike) -> np.random.Generator:
    """A Generator from a seed, SeedSequence or Generator (a Generator is used as is)."""
    if isinstance(rng_or_seed, np.random.Generator):
        return rng_or_seed
    return np.random.default_rng(rng_or_seed)


def subject_seed(seed: int, index: int) -> np.random.SeedSequence:
    """Seed of subject `index` of a dataset: independent of how many subjects the dataset has."""
    return np.random.SeedSequence(seed, spawn_key=(index,))


def _streams(rng: np.random.Generator, names: Sequence[str]) -> dict[str, np.random.Generator]:
    """Independent child generators, one per name (same names, same order, same streams)."""
    try:
        children = rng.spawn(len(names))
    except (AttributeError, TypeError, ValueError):  # generators not built from a SeedSequence
        children = [np.random.default_rng(int(rng.integers(2**63))) for _ in names]
    return dict(zip(names, children))


def _library(lesion_masks_dir: str | Path | LesionLibrary | None) -> LesionLibrary | None:
    if lesion_masks_dir is None or isinstance(lesion_masks_dir, LesionLibrary):
        return lesion_masks_dir
    return load_lesion_library(lesion_masks_dir)


@dataclass(frozen=True)
class _Subject:
    """Warped anatomy of one subject on the crop, shared by its visits."""

    anatomy: Anatomy
    displacement: np.ndarray | None
    gm: np.ndarray
    wm: np.ndarray
    brain: np.ndarray
    texture: np.ndarray
    dawm: np.ndarray | None = None


def dawm_field(shape: tuple[int, int, int], spacing_mm: float, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Patchy DAWM map in [0, DAWM_CAP]: the fraction of the way from WM to a mild lesion.

    The positive excursions (above 0.5 sd) of a smooth unit-sd field, times `strength`:
    blotches a centimetre or more across, without the sharp edge of a lesion.
    """
    field = smooth_field(shape, spacing_mm, DAWM_WAVELENGTH_MM, rng)
    return np.clip(strength * (field - 0.5), 0.0, DAWM_CAP).astype(np.float32)


def _subject_anatomy(anatomy: Anatomy, rng: np.random.Generator, deform: bool, dawm: float = 0.0) -> _Subject:
    """Warp the anatomy for one subject; `dawm` > 0 adds DAWM of a strength drawn in [0, dawm]."""
    r = anatomy.resolution_mm
    disp = random_displacement(anatomy.crop_shape, r, rng) if deform else None
    brain = (warp(anatomy.brain, disp) >= 0.5).astype(np.float32)
    gm = warp(anatomy.gm, disp) * brain
    wm = warp(anatomy.wm, disp) * brain
    texture = smooth_field(anatomy.crop_shape, r, TEXTURE_WAVELENGTH_MM, rng)
    patches = dawm_field(anatomy.crop_shape, r, float(rng.uniform(0.0, dawm)), rng) if dawm > 0 else None
    return _Subject(anatomy, disp, gm, wm, brain, texture, patches)


def _lesion_maps(subject: _Subject, rasters: list[Raster]) -> tuple[np.ndarray, np.ndarray]:
    """Painted, then warped, lesion probability and id maps on the crop."""
    prob, ids = paint(rasters, subject.anatomy.crop_shape)
    if subject.displacement is None:
        return prob, ids
    prob_w = warp(prob, subject.displacement)
    ids_w = np.zeros_like(ids)
    points = np.nonzero(prob_w > 0)
    ids_w[points] = warp_labels(ids, prob, subject.displacement, points)
    return prob_w, ids_w


def _lesion_table(tissues: TissueMaps, rasters: list[Raster], anatomy: Anatomy, change: bool) -> list[dict[str, Any]]:
    """Per-lesion description from the final ground truth (voxels counted where the lesion wins)."""
    from scipy import ndimage as ndi

    gt = tissues.lesion >= 0.5
    n_ids = max([r.spec.id for r in rasters], default=0) + 1
    counts = np.bincount(tissues.lesion_id[gt], minlength=n_ids)
    present = [r.spec.id for r in rasters if counts[r.spec.id]]
    centres = dict(zip(present, ndi.center_of_mass(gt, tissues.lesion_id, present))) if present else {}
    voxel_mm3 = anatomy.resolution_mm**3
    rows = []
    for raster in rasters:
        spec = raster.spec
        c = np.asarray(centres.get(spec.id, spec.centre), dtype=float)
        row = {
            "id": spec.id,
            "kind": str(spec.kind),
            "source": spec.source,
            "voxels": int(counts[spec.id]),
            "volume_mm3": round(float(counts[spec.id]) * voxel_mm3, 3),
            "centre_mm": [round(float(v), 2) for v in anatomy.crop_to_world(c)[0]],
        }
        if change:
            row["change"] = spec.change
        rows.append(row)
    return rows


def _phantom(
    subject: _Subject,
    rasters: list[Raster],
    lesion_maps: tuple[np.ndarray, np.ndarray],
    site: SiteProfile,
    contrasts: Sequence[str],
    acq: dict[str, np.random.Generator],
    meta: dict[str, Any],
    rigid: dict[str, list[float]] | None = None,
    change: bool = False,
) -> Phantom:
    """Render one visit (lesion probability and id maps given) and place it on the full grid."""
    from scipy import ndimage as ndi

    anatomy = subject.anatomy
    prob, ids = lesion_maps
    tissues = tissue_maps(subject.gm, subject.wm, subject.brain, prob, ids, anatomy.resolution_mm)
    n_ids = max([r.spec.id for r in rasters], default=0) + 1
    specs = [r.spec for r in rasters]
    images = {}
    for contrast in contrasts:
        table = lesion_means(specs, site.contrasts[contrast], n_ids)
        img = render(tissues, contrast, site, table, subject.texture, acq[contrast], dawm=subject.dawm)
        if rigid is not None:
            img = np.maximum(apply_rigid(img, rigid, anatomy.resolution_mm), 0.0)
        images[contrast] = pad_to_grid(img, anatomy.crop, anatomy.shape)
    gt = tissues.lesion >= 0.5
    lesions = _lesion_table(tissues, rasters, anatomy, change)
    _, n_components = ndi.label(gt, structure=CONNECTIVITY)
    by_kind = {str(k): sum(1 for row in lesions if row["kind"] == k and row["voxels"]) for k in LesionKind}
    meta = {
        **meta,
        "site": site.name,
        "scanner": site.scanner,
        "field_strength": site.field_strength,
        "site_profile": site.to_dict(),
        "resolution_mm": anatomy.resolution_mm,
        "n_lesions": sum(1 for row in lesions if row["voxels"]),
        "n_components": int(n_components),
        "lesion_volume_ml": round(float(gt.sum()) * anatomy.resolution_mm**3 / 1000.0, 4),
        "lesions_by_kind": by_kind,
    }
    full = lambda a: pad_to_grid(a, anatomy.crop, anatomy.shape)  # noqa: E731  # a one-line shorthand for the fields below
    return Phantom(
        images=images,
        lesion=full(gt.astype(np.uint8)),
        brain=full(tissues.brain.astype(np.uint8)),
        affine=anatomy.affine.copy(),
        tissues={
            "GM": full(tissues.gm),
            "WM": full(tissues.wm),
            "CSF": full(tissues.csf),
            "lesion": full(tissues.lesion),
        },
        lesion_ids=full(np.where(gt, tissues.lesion_id, 0).astype(np.int32)),
        lesions=lesions,
        meta=meta,
    )


def _lesion_count(rng: np.random.Generator, model: LesionModel, n_lesions: int | None) -> int:
    """The given count, or one drawn from the model."""
    if n_lesions is not None:
        return int(n_lesions)
    return draw_count(rng, model.mean_count, model.count_dispersion, model.max_count)


def _check_contrasts(contrasts: Sequence[str], site: SiteProfile) -> list[str]:
    from mslesion.errors import InputError

    unknown = [c for c in contrasts if c not in site.contrasts]
    if unknown:
        raise InputError(None, f"unknown contrast(s) {unknown}; known: {list(site.contrasts)}")
    return list(contrasts)


def make_subject(
    rng_or_seed: SeedLike,
    site: SiteProfile | None = None,
    *,
    resolution_mm: float = 1.0,
    deform: bool = True,
    lesion_masks_dir: str | Path | LesionLibrary | None = None,
    lesion_model: LesionModel | None = None,
    n_lesions: int | None = None,
    jitter_mm: float = 0.0,
    contrasts: Sequence[str] = CONTRASTS,
    dawm: float = 0.0,
) -> Phantom:
    """One synthetic MS subject as `site` would scan it.

    Lesions are synthetic (periventricular, juxtacortical, deep WM, infratentorial) or,
    with `lesion_masks_dir`, real components pasted at their own positions (plus up to
    `jitter_mm`). `n_lesions` fixes the count (otherwise drawn from `lesion_model`).
    `dawm` > 0 adds unlabelled dirty-appearing white matter of strength up to `dawm`
    (`dawm_field`; 0.5 is strong).
    """
    site = site or default_site()
    model = lesion_model or LesionModel()
    contrasts = _check_contrasts(contrasts, site)
    rng = as_generator(rng_or_seed)
    streams = _streams(rng, ["anatomy", "lesions", "acquisition"])
    anatomy = load_anatomy(resolution_mm)
    library = _library(lesion_masks_dir)
    subject = _subject_anatomy(anatomy, streams["anatomy"], deform, dawm)
    lrng = streams["lesions"]
    n = _lesion_count(lrng, model, n_lesions)
    rasters = sample_lesions(lrng, anatomy, model, n, library=library, jitter_mm=jitter_mm)
    acq = _streams(streams["acquisition"], CONTRASTS)
    meta = {
        "deformed": deform,
        "lesion_source": "synthetic" if library is None else str(library.folder),
        "n_lesions_drawn": n,
    }
    phantom = _phantom(subject, rasters, _lesion_maps(subject, rasters), site, contrasts, acq, meta)
    log.debug("subject: %d lesions, %.2f mL", phantom.meta["n_lesions"], phantom.meta["lesion_volume_ml"])
    return phantom


def new_lesion_mask(baseline: np.ndarray, followup: np.ndarray) -> np.ndarray:
    """Follow-up lesion components (26-connectivity) that share no voxel with the baseline mask (uint8)."""
    from scipy import ndimage as ndi

    labels, n = ndi.label(followup > 0, structure=CONNECTIVITY)
    if n == 0:
        return np.zeros(followup.shape, dtype=np.uint8)
    old = np.unique(labels[(baseline > 0) & (labels > 0)])
    new = np.ones(n + 1, dtype=bool)
    new[0] = False
    new[old] = False
    return new[labels].astype(np.uint8)


def _evolve_all(rasters: list[Raster], anatomy: Anatomy, rng: np.random.Generator, model: LesionModel) -> list[Raster]:
    """Follow-up versions of the baseline lesions; lesions that shrink to nothing drop out."""
    out = []
    for raster in rasters:
        evolved = rasterize(evolve(raster.spec, rng, model), anatomy)
        if evolved is not None:
            out.append(evolved)
    return out


def _only_new_lesions_new(
    base_prob: np.ndarray, follow: tuple[np.ndarray, np.ndarray], new_ids: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Remove follow-up components that miss the baseline yet hold no new lesion.

    They arise when an old lesion was too thin to reach the baseline's 0.5 threshold or
    grows a detached lobe; left in, they would be labelled new. They are erased (with
    their partial-volume rim) so that the label holds exactly the new lesions.
    """
    from scipy import ndimage as ndi

    prob, ids = follow
    gt = prob >= 0.5
    labels, n = ndi.label(gt, structure=CONNECTIVITY)
    if n == 0:
        return follow
    touches_base = touched_components(labels, n, gt & (base_prob >= 0.5))
    holds_new = touched_components(labels, n, np.isin(ids, new_ids) & gt)
    spurious = ~touches_base & ~holds_new
    spurious[0] = False
    if not spurious.any():
        return follow
    erase = spurious[labels]
    rim = ndi.binary_dilation(erase, structure=CONNECTIVITY) & ~gt & ~np.isin(ids, new_ids)
    prob = prob.copy()
    prob[erase | rim] = 0.0
    ids = ids.copy()
    ids[erase | rim] = 0
    return prob, ids


def _occupied(rasters: list[Raster], shape: tuple[int, int, int], gap: int) -> np.ndarray:
    """Ground truth of `rasters`, grown by `gap` voxels: where new lesions must not land."""
    from scipy import ndimage as ndi

    prob, _ = paint(rasters, shape)
    mask = prob >= 0.5
    return ndi.binary_dilation(mask, structure=CONNECTIVITY, iterations=gap) if mask.any() and gap > 0 else mask


def _followup_lesions(
    base: list[Raster],
    anatomy: Anatomy,
    model: LesionModel,
    streams: dict[str, np.random.Generator],
    n_new: int | None,
    library: LesionLibrary | None,
    jitter_mm: float,
) -> tuple[list[Raster], list[Raster], int]:
    """Evolved baseline lesions, new lesions (kept apart from all others), and the number of new ones drawn."""
    evolved = _evolve_all(base, anatomy, streams["evolution"], model)
    rng = streams["new"]
    n_drawn = n_new if n_new is not None else draw_count(rng, model.mean_new, model.new_dispersion, 50)
    avoid = _occupied(base + evolved, anatomy.crop_shape, NEW_LESION_GAP_VOXELS)
    first_id = max([r.spec.id for r in base], default=0) + 1
    new = sample_lesions(
        rng,
        anatomy,
        model,
        n_drawn,
        library=library,
        jitter_mm=jitter_mm,
        first_id=first_id,
        avoid=avoid,
        confluent=False,
    )
    return evolved, [_with_change(r, "new") for r in new], n_drawn


def _pair_meta(
    label: np.ndarray, followup: Phantom, n_base: int, n_evolved: int, n_new_drawn: int, sites: tuple[SiteProfile, ...]
) -> dict[str, Any]:
    """What changed between the visits, and how the label was made."""
    from scipy import ndimage as ndi

    changes = [row["change"] for row in followup.lesions if row["voxels"]]
    voxel_ml = float(np.prod(voxel_sizes(followup.affine))) / 1000.0
    return {
        "baseline_site": sites[0].name,
        "followup_site": sites[1].name,
        "followup_degraded": sites[1].degraded,
        "misregistration": followup.meta.get("misregistration"),
        "n_new_drawn": n_new_drawn,
        "n_new_lesions": int(ndi.label(label, structure=CONNECTIVITY)[1]),
        "new_lesion_volume_ml": round(float(label.sum()) * voxel_ml, 4),
        "n_enlarging": changes.count("enlarging"),
        "n_shrinking": changes.count("shrinking"),
        "n_stable": changes.count("stable"),
        "n_resolved": n_base - n_evolved,
        "label_rule": "follow-up components (26-connectivity) sharing no voxel with the baseline mask; enlarging lesions are not new",
    }


def make_longitudinal_pair(
    rng_or_seed: SeedLike,
    site: SiteProfile | None = None,
    followup_site: SiteProfile | None = None,
    *,
    resolution_mm: float = 1.0,
    deform: bool = True,
    lesion_masks_dir: str | Path | LesionLibrary | None = None,
    lesion_model: LesionModel | None = None,
    n_lesions: int | None = None,
    n_new: int | None = None,
    jitter_mm: float = 0.0,
    misregistration: tuple[float, float] | None = (1.0, 1.0),
    contrasts: Sequence[str] = ("FLAIR", "T1"),
    dawm: float = 0.0,
) -> LongitudinalPair:
    """One subject at two visits: baseline lesions; at follow-up some are new, some enlarge, some shrink.

    The follow-up is acquired by `followup_site` (default: a degraded version of `site`)
    and, unless `misregistration` is None, moved by a small random rigid motion of up to
    (degrees, mm). `n_new` fixes the number of new lesions (otherwise negative binomial,
    zero in about a third of pairs). See `LongitudinalPair` for the label's definition.
    `dawm` as in `make_subject` (the same DAWM at both visits).
    """
    site = site or default_site()
    model = lesion_model or LesionModel()
    contrasts = _check_contrasts(contrasts, site)
    rng = as_generator(rng_or_seed)
    names = ["anatomy", "lesions", "acquisition", "evolution", "new", "followup_acquisition", "followup_site", "motion"]
    streams = _streams(rng, names)
    followup_site = followup_site or degrade_site(site, streams["followup_site"])
    _check_contrasts(contrasts, followup_site)
    anatomy = load_anatomy(resolution_mm)
    library = _library(lesion_masks_dir)
    subject = _subject_anatomy(anatomy, streams["anatomy"], deform, dawm)
    lrng = streams["lesions"]
    base = sample_lesions(lrng, anatomy, model, _lesion_count(lrng, model, n_lesions), library=library, jitter_mm=jitter_mm)
    base = [_with_change(r, "baseline") for r in base]
    evolved, new, n_new_drawn = _followup_lesions(base, anatomy, model, streams, n_new, library, jitter_mm)
    rigid = random_rigid(streams["motion"], *misregistration) if misregistration else None
    meta = {"deformed": deform, "lesion_source": "synthetic" if library is None else str(library.folder)}
    base_maps = _lesion_maps(subject, base)
    follow_maps = _only_new_lesions_new(base_maps[0], _lesion_maps(subject, evolved + new), [r.spec.id for r in new])
    baseline = _phantom(subject, base, base_maps, site, contrasts, _streams(streams["acquisition"], CONTRASTS), meta, change=True)
    followup = _phantom(
        subject,
        evolved + new,
        follow_maps,
        followup_site,
        contrasts,
        _streams(streams["followup_acquisition"], CONTRASTS),
        {**meta, "misregistration": rigid},
        rigid=rigid,
        change=True,
    )
    label = new_lesion_mask(baseline.lesion, followup.lesion)
    pair_meta = _pair_meta(label, followup, len(base), len(evolved), n_new_drawn, (site, followup_site))
    return LongitudinalPair(baseline=baseline, followup=followup, new_lesion=label, meta=pair_meta)


def _with_change(raster: Raster, change: str) -> Raster:
    """The same raster, its lesion marked with how it changed between visits."""
    return dataclasses.replace(raster, spec=dataclasses.replace(raster.spec, change=change))
