"""Draw-and-Erase training pairs for new-lesion segmentation from one real single-visit scan.

Kamraoui et al.'s idea: copy one real scan into a "baseline" and a "follow-up" visit,
then make lesions that exist only at follow-up, so the pair has a known new-lesion label
and real anatomy, texture and lesions everywhere else:

- ERASE: some of the scan's own lesions (often none, sometimes 1-5 small or medium ones)
  are inpainted with normal-appearing tissue in the baseline copy only, so they appear new.
- DRAW: real lesion shapes (small ones, as new lesions usually are) are drawn into the
  white matter of the follow-up copy, away from every existing lesion, by a follow-up /
  baseline intensity ratio (FLAIR and T2 brighter, T1 mildly darker) applied through a
  slightly blurred mask: fu = bl * (1 + (ratio - 1) * soft_mask).
- Pairs with no new lesion are common (`p_stable`): no erase, no draw.
- Both copies are then degraded independently (blur, thick slices, noise, intensity
  scale and gamma), and the baseline copy alone is moved by a small rigid motion, so the
  label stays exact in follow-up space.

The label is the voxels of lesions present only at follow-up: erased ∪ drawn. The scan's
other lesions stay in both copies (`baseline_lesion`, `followup_lesion`, both in
follow-up space). All work is done in the brain's bounding box (scans are skull-stripped:
zero outside the brain), which is what keeps a 1 mm pair to a few seconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from mslesion.components import label_components
from mslesion.space.boxes import bounding_box
from mslesion.synth.implant import brain_stats
from mslesion.synth.library import LesionLibrary, RealComponent

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]
Spacing = float | Sequence[float] | np.ndarray

# Follow-up / baseline intensity ratio ranges of a new lesion, per contrast (see `ratio_range`).
DEFAULT_RATIOS: dict[str, tuple[float, float]] = {
    "FLAIR": (1.15, 1.5),
    "T2": (1.15, 1.5),
    "PD": (1.05, 1.3),
    "T1": (0.85, 0.97),
}
SLICE_SIZES = (1, 2, 3)
INPAINT_SIGMAS = (1.0, 2.0, 4.0, 8.0)  # voxels; the fill uses the smallest with enough valid neighbours
MIN_SUPPORT = 0.2  # fraction of the Gaussian's weight that must fall on valid neighbours
CROP_MARGIN = 6  # voxels around the brain: room for blur and a <= 1 degree / 1 mm motion
PLACEMENT_TRIES = 40
CUBE = np.ones((3, 3, 3), dtype=bool)  # 26-neighbourhood: 2 iterations keep the edge blur (radius 2) off other lesions
SUMMARY_KEYS = ("stable", "n_new_lesions", "new_lesion_volume_mm3")
LABEL_RULE = "lesions present only at follow-up: erased baseline lesions and drawn ones (follow-up space)"


@dataclass(frozen=True)
class DrawEraseOptions:
    """How a pair is drawn; ranges are (low, high) of a uniform draw unless said otherwise."""

    p_stable: float = 0.3  # pairs with no new lesion: no erase, no draw, only degradations
    p_erase: float = 0.5  # chance that a changed pair erases some of the scan's lesions
    max_erase: int = 5
    erase_volume_mm3: tuple[float, float] = (4.0, 1500.0)  # erasable lesions (small/medium, favoured by 1/sqrt(vol))
    max_draw: int = 6
    draw_volume_mm3: tuple[float, float] = (4.0, 400.0)  # shapes drawn as new lesions
    ratios: Mapping[str, tuple[float, float]] = field(default_factory=lambda: dict(DEFAULT_RATIOS))
    min_in_white_matter: float = 0.7
    degrade: bool = True
    blur_sigma: tuple[float, float] = (0.0, 1.0)  # voxels
    noise_fraction: tuple[float, float] = (0.0, 0.03)  # of the brain's mean intensity
    slice_sizes: tuple[int, ...] = SLICE_SIZES  # axial mean filter size (last axis)
    intensity_scale: tuple[float, float] = (0.9, 1.1)
    gamma: tuple[float, float] = (0.9, 1.1)
    misregister: bool = True
    max_rotation_deg: float = 1.0
    max_translation_mm: float = 1.0


@dataclass
class DrawErasePair:
    """One synthetic pair; every mask is in follow-up space (the baseline images alone are moved)."""

    baseline_images: dict[str, np.ndarray]
    followup_images: dict[str, np.ndarray]
    new_lesion: np.ndarray  # uint8: erased ∪ drawn
    brain: np.ndarray
    baseline_lesion: np.ndarray  # uint8: the scan's lesions less the erased ones
    followup_lesion: np.ndarray  # uint8: the scan's lesions plus the drawn ones
    meta: dict[str, Any] = field(default_factory=dict)


def ratio_range(contrast: str, options: DrawEraseOptions) -> tuple[float, float]:
    """The new-lesion ratio range of a contrast: its own, T1-like for T1* names, else FLAIR's."""
    if contrast in options.ratios:
        return options.ratios[contrast]
    key = "T1" if contrast.upper().startswith("T1") else "FLAIR"
    return options.ratios.get(key, DEFAULT_RATIOS[key])


def _spacing3(spacing_mm: Spacing) -> np.ndarray:
    s = np.broadcast_to(np.asarray(spacing_mm, dtype=float), (3,)).copy()
    if (s <= 0).any():
        raise ValueError(f"spacing must be positive, got {spacing_mm}")
    return s


def _box_of(comp: RealComponent, start: Sequence[int], shape: tuple[int, ...]) -> tuple[slice, ...] | None:
    """Where the component's box lands when its first voxel is at `start`; None if it leaves the array."""
    stop = [s + n for s, n in zip(start, comp.mask.shape)]
    if min(start) < 0 or any(e > n for e, n in zip(stop, shape)):
        return None
    return tuple(slice(int(s), int(e)) for s, e in zip(start, stop))


def _streams(rng: np.random.Generator, names: Sequence[str]) -> dict[str, np.random.Generator]:
    """Independent generators per step, so changing one step's draws leaves the others alone."""
    seeds = rng.integers(0, 2**63, size=len(names))
    return {name: np.random.default_rng(int(s)) for name, s in zip(names, seeds)}


# ---------------------------------------------------------------- erase


def inpaint(images: dict[str, np.ndarray], region: np.ndarray, valid: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Copies of `images` with `region` refilled from the `valid` voxels around it.

    Written by hand on purpose: the off-the-shelf choices (scikit-image's biharmonic
    inpainting, OpenCV's 2D methods) solve a global smooth problem, are slow in 3D and
    leave a fill without texture that a network spots at once. Normalized convolution
    (the Gaussian-weighted mean of valid neighbours, sigma growing from 1 to 8 voxels
    until each voxel has enough of them) is local, costs a few small filters, and the
    image's own noise level, measured on the neighbours, is added back.
    """
    margin = int(3 * INPAINT_SIGMAS[-1]) + 1
    sl = bounding_box(region, margin)
    reg = region[sl]
    w = (valid[sl] & ~reg).astype(np.float32)
    out = {c: img.astype(np.float32, copy=True) for c, img in images.items()}
    if not w.any():
        log.warning("no valid tissue around an erased lesion; left as is")
        return out
    estimate = {c: np.zeros(reg.shape, np.float32) for c in images}
    noise_sd: dict[str, float] = {}
    filled = np.zeros(reg.shape, bool)
    for i, sigma in enumerate(INPAINT_SIGMAS):
        den = ndi.gaussian_filter(w, sigma, truncate=3.0)
        last = i == len(INPAINT_SIGMAS) - 1
        take = reg & ~filled & (den > 1e-6 if last else den >= MIN_SUPPORT)
        for c, img in images.items():
            local = img[sl].astype(np.float32)
            smooth = ndi.gaussian_filter(local * w, sigma, truncate=3.0) / np.maximum(den, 1e-6)
            if c not in noise_sd:  # residual of the sigma-1 fit on valid voxels: the local noise level
                resid = (local - smooth)[w > 0]
                noise_sd[c] = float(1.4826 * np.median(np.abs(resid - np.median(resid))))
            estimate[c][take] = smooth[take]
        filled |= take
        if filled[reg].all():
            break
    for c in images:
        local = images[c][sl]
        if not filled[reg].all():  # only when the box holds almost no valid tissue
            estimate[c][reg & ~filled] = float(np.median(local[w > 0]))
        noise = rng.standard_normal(reg.shape, dtype=np.float32) * noise_sd[c]
        box = out[c][sl]
        box[reg] = (estimate[c] + noise)[reg]
    return out


def _normal_neighbours(images: dict[str, np.ndarray], candidates: np.ndarray, region: np.ndarray, z_max: float = 3.0) -> np.ndarray:
    """`candidates` near `region` without intensity outliers (CSF, vessels) in any contrast."""
    valid = candidates.copy()
    sl = bounding_box(region, int(3 * INPAINT_SIGMAS[-1]) + 1)
    local = valid[sl]
    for img in images.values():
        values = img[sl][local]
        if values.size < 20:
            break
        med = np.median(values)
        mad = 1.4826 * np.median(np.abs(values - med)) + 1e-6
        local &= np.abs(img[sl] - med) <= z_max * mad
    valid[sl] = local
    return valid


def choose_erasable(
    lesion: np.ndarray, rng: np.random.Generator, n: int, volume_mm3: tuple[float, float], voxel_mm3: float
) -> tuple[np.ndarray, list[int]]:
    """Labels of the lesion's components and `n` of them to erase (small/medium ones favoured)."""
    labels, count = label_components(lesion, connectivity=26)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:] * voxel_mm3
    eligible = np.flatnonzero((sizes >= volume_mm3[0]) & (sizes <= volume_mm3[1])) + 1
    n = min(n, len(eligible))
    if n == 0:
        return labels, []
    weights = 1.0 / np.sqrt(sizes[eligible - 1])
    chosen = rng.choice(eligible, size=n, replace=False, p=weights / weights.sum())
    return labels, sorted(int(k) for k in chosen)


def erase_lesions(
    images: dict[str, np.ndarray],
    labels: np.ndarray,
    chosen: Sequence[int],
    brain: np.ndarray,
    rng: np.random.Generator,
    white_matter: np.ndarray | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Inpaint each chosen component (dilated by one voxel, never over another lesion); return images and erased mask.

    Neighbours are brain voxels at least one voxel from every lesion, in `white_matter`
    when it holds enough of them, without intensity outliers.
    """
    lesion = labels > 0
    erased = np.isin(labels, np.asarray(chosen, dtype=labels.dtype)) if len(chosen) else np.zeros(lesion.shape, bool)
    out = {c: img.astype(np.float32, copy=True) for c, img in images.items()}
    if not erased.any():
        return out, erased
    clean = brain & ~ndi.binary_dilation(lesion, iterations=1)
    for k in chosen:
        comp = labels == k
        region = ndi.binary_dilation(comp, iterations=1) & brain & (~lesion | comp)
        sl = bounding_box(region, int(3 * INPAINT_SIGMAS[-1]) + 1)
        candidates = clean
        if white_matter is not None and (clean[sl] & white_matter[sl]).sum() >= 50:
            candidates = clean & white_matter
        valid = _normal_neighbours(out, candidates, region)
        out = inpaint(out, region, valid, rng)
    return out, erased


# ---------------------------------------------------------------- draw


def _shape_pool(library: LesionLibrary | Sequence[RealComponent], volume_mm3: tuple[float, float], voxel_mm3: float) -> list[RealComponent]:
    comps = [c for group in library.components for c in group] if isinstance(library, LesionLibrary) else list(library)
    return [c for c in comps if volume_mm3[0] <= c.volume_mm3 * voxel_mm3 <= volume_mm3[1]]


def _placement(
    comp: RealComponent,
    rng: np.random.Generator,
    allowed: np.ndarray,
    allowed_idx: np.ndarray,
    occupied: np.ndarray,
    brain: np.ndarray,
    min_inside: float,
) -> tuple[tuple[slice, ...], bool] | None:
    """Where the shape fits: its own position first (a real lesion location on the library's grid),
    else a random white-matter voxel as its centre; None when no try fits."""
    for attempt in range(PLACEMENT_TRIES):
        if attempt == 0:
            start = comp.start
        else:
            centre = np.unravel_index(allowed_idx[int(rng.integers(len(allowed_idx)))], allowed.shape)
            start = tuple(int(c) - n // 2 for c, n in zip(centre, comp.mask.shape))
        sl = _box_of(comp, start, allowed.shape)
        if sl is None:
            continue
        m = comp.mask
        if brain[sl][m].all() and allowed[sl][m].mean() >= min_inside and not occupied[sl][m].any():
            return sl, attempt == 0
    return None


def draw_lesions(
    images: dict[str, np.ndarray],
    lesion: np.ndarray,
    brain: np.ndarray,
    shapes: Sequence[RealComponent],
    n: int,
    rng: np.random.Generator,
    options: DrawEraseOptions,
    white_matter: np.ndarray | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray, list[dict[str, Any]]]:
    """Draw up to `n` shapes into copies of `images`; return images, the drawn mask and one record per lesion.

    A shape is placed where at least `min_in_white_matter` of it lies in `white_matter`
    (else the brain eroded by 2 voxels), inside the brain, at least 2 voxels from every
    existing or drawn lesion in every direction (so it is new, not an enlarging lesion, and
    its blurred edge leaves the other lesions untouched). One draw u in [0, 1]
    sets every contrast's ratio (a brighter FLAIR lesion is also a darker T1 one); a mild
    smooth heterogeneity varies it inside the lesion, clipped to the contrast's range.
    """
    out = {c: img.astype(np.float32, copy=True) for c, img in images.items()}
    drawn = np.zeros(lesion.shape, bool)
    records: list[dict[str, Any]] = []
    if n <= 0 or not shapes:
        return out, drawn, records
    allowed = white_matter & brain if white_matter is not None else ndi.binary_erosion(brain, iterations=2)
    occupied = ndi.binary_dilation(lesion > 0, structure=CUBE, iterations=2)
    allowed_idx = np.flatnonzero(allowed & ~occupied)
    if allowed_idx.size == 0:
        return out, drawn, records
    for _ in range(n):
        for _shape_try in range(10):
            comp = shapes[int(rng.integers(len(shapes)))]
            placed = _placement(comp, rng, allowed, allowed_idx, occupied, brain, options.min_in_white_matter)
            if placed is not None:
                break
        else:
            continue
        box, own = placed
        records.append(_draw_one(out, comp, box, brain, rng, options))
        records[-1]["at_own_position"] = own
        drawn[box] |= comp.mask
        occupied[box] |= comp.mask
        grown = tuple(slice(max(s.start - 2, 0), s.stop + 2) for s in box)
        occupied[grown] = ndi.binary_dilation(drawn[grown], structure=CUBE, iterations=2) | occupied[grown]
    return out, drawn, records


def _draw_one(
    out: dict[str, np.ndarray],
    comp: RealComponent,
    box: tuple[slice, ...],
    brain: np.ndarray,
    rng: np.random.Generator,
    options: DrawEraseOptions,
) -> dict[str, Any]:
    """Multiply one shape into every contrast of `out` in place; return its record."""
    sl = tuple(slice(max(s.start - 2, 0), min(s.stop + 2, n)) for s, n in zip(box, brain.shape))
    local: np.ndarray = np.zeros(tuple(s.stop - s.start for s in sl), np.float32)
    inner = tuple(slice(b.start - s.start, b.stop - s.start) for b, s in zip(box, sl))
    local[inner] = comp.mask
    soft = np.maximum(np.clip(ndi.gaussian_filter(local, 0.6), 0.0, 1.0), local) * brain[sl]
    texture = 1.0 + 0.5 * ndi.gaussian_filter(rng.standard_normal(local.shape).astype(np.float32), 1.0)
    u = float(rng.uniform())
    ratios = {}
    for c in out:
        lo, hi = ratio_range(c, options)
        ratio = lo + u * (hi - lo) if hi > 1.0 else hi - u * (hi - lo)
        per_voxel = np.clip(1.0 + (ratio - 1.0) * texture, lo, hi)
        out[c][sl] *= 1.0 + (per_voxel - 1.0) * soft
        ratios[c] = round(ratio, 4)
    return {
        "donor": comp.donor,
        "component": comp.label,
        "volume_voxels": comp.volume_mm3,
        "start": [int(s.start) for s in box],
        "ratio": ratios,
    }


# ---------------------------------------------------------------- degrade and move


def degrade(
    image: np.ndarray, brain: np.ndarray, scale: float, rng: np.random.Generator, options: DrawEraseOptions
) -> tuple[np.ndarray, dict[str, float]]:
    """One acquisition's image quality: blur, thick slices, noise in the brain, global scale and gamma.

    `scale` is the brain's mean intensity (noise and gamma are relative to it).
    """
    from mslesion.train.augment import axial_mean, blur

    sigma = float(rng.uniform(*options.blur_sigma))
    size = int(rng.choice(options.slice_sizes))
    noise = float(rng.uniform(*options.noise_fraction))
    factor = float(rng.uniform(*options.intensity_scale))
    gamma = float(rng.uniform(*options.gamma))
    out = image.astype(np.float32, copy=True)
    if sigma > 0.05:
        out = blur(out[None], sigma)[0]
    out = axial_mean(out, size)
    if noise > 0:
        out += rng.standard_normal(out.shape, dtype=np.float32) * np.float32(noise * scale) * brain
    ref = np.float32(max(scale, 1e-6))
    out = np.float32(factor) * ref * np.sign(out) * np.abs(out / ref) ** np.float32(gamma)
    params = {"blur_sigma": sigma, "slice_size": size, "noise_fraction": noise, "scale": factor, "gamma": gamma}
    return out.astype(np.float32, copy=False), {k: round(v, 4) for k, v in params.items()}


def rigid_move(array: np.ndarray, rigid: dict[str, list[float]], spacing_mm: Spacing, order: int = 1) -> np.ndarray:
    """Move an image by a rigid motion (degrees, mm) about the array's centre; zeros come in from outside.

    As `synth.fields.apply_rigid`, with anisotropic voxels: rotations act in mm.
    """
    from mslesion.synth.fields import rotation_matrix

    s = _spacing3(spacing_mm)
    rot_t = rotation_matrix(np.radians(rigid["rotation_deg"])).T
    matrix = (rot_t * s[None, :]) / s[:, None]  # S^-1 R^T S
    centre = (np.asarray(array.shape, dtype=float) - 1.0) / 2.0
    shift = rot_t @ np.asarray(rigid["translation_mm"], dtype=float) / s
    offset = centre - matrix @ centre - shift
    out_dtype = np.float32 if order > 0 else array.dtype
    return ndi.affine_transform(array, matrix, offset, order=order, mode="constant", cval=0.0, output=out_dtype)


# ---------------------------------------------------------------- the pair


def _counts(rng: np.random.Generator, options: DrawEraseOptions) -> tuple[bool, int, int]:
    """Stable or not, how many lesions to erase and to draw (at least one of the two when not stable)."""
    if rng.random() < options.p_stable:
        return True, 0, 0
    n_erase = int(rng.integers(1, options.max_erase + 1)) if rng.random() < options.p_erase else 0
    n_draw = min(int(rng.geometric(0.4)), options.max_draw)  # 1, 2, ... small counts favoured
    if n_erase and rng.random() < 0.3:
        n_draw = 0
    return False, n_erase, n_draw


def make_draw_erase_pair(
    images: dict[str, np.ndarray],
    lesion: np.ndarray,
    brain: np.ndarray,
    library: LesionLibrary | Sequence[RealComponent],
    rng: np.random.Generator,
    spacing_mm: Spacing = 1.0,
    *,
    white_matter: np.ndarray | None = None,
    options: DrawEraseOptions | None = None,
) -> DrawErasePair:
    """A baseline/follow-up pair from one real scan: erase in the baseline, draw in the follow-up, degrade both.

    `library` gives lesion shapes as voxel boxes (used voxel for voxel; its positions
    are tried first, so they should be on the scan's grid, e.g. the FSL MNI 1 mm grid).
    `white_matter` is where new lesions may go (else the brain eroded by 2 voxels).
    Scans must be zero outside the brain: the work is done in the brain's bounding box.
    """
    options = options or DrawEraseOptions()
    lesion = np.asarray(lesion) > 0
    brain = np.asarray(brain) > 0
    if not brain.any():
        raise ValueError("empty brain mask")
    if any(img.shape != lesion.shape for img in images.values()) or brain.shape != lesion.shape:
        raise ValueError("images, lesion and brain must share one grid")
    spacing = _spacing3(spacing_mm)
    voxel_mm3 = float(np.prod(spacing))
    streams = _streams(rng, ["counts", "erase", "draw", "motion", "baseline", "followup"])
    crop = bounding_box(brain, CROP_MARGIN)
    imgs = {c: np.asarray(img, dtype=np.float32)[crop] for c, img in images.items()}
    les, br = lesion[crop], brain[crop]
    wm = None if white_matter is None else np.asarray(white_matter, dtype=bool)[crop]

    stable, n_erase, n_draw = _counts(streams["counts"], options)
    labels, chosen = choose_erasable(les, streams["erase"], n_erase, options.erase_volume_mm3, voxel_mm3)
    baseline, erased = erase_lesions(imgs, labels, chosen, br, streams["erase"], wm)
    shapes = _shape_pool(library, options.draw_volume_mm3, voxel_mm3)
    if n_draw and not shapes:
        log.warning("no lesion shape of %s mm^3 in the library; nothing drawn", options.draw_volume_mm3)
    shifted = [_shifted(c, crop) for c in shapes] if n_draw else []
    followup, drawn, records = draw_lesions(imgs, les, br, shifted, n_draw, streams["draw"], options, wm)

    motion = None
    if options.misregister:
        from mslesion.synth.fields import random_rigid

        motion = random_rigid(streams["motion"], options.max_rotation_deg, options.max_translation_mm)
        baseline = {c: rigid_move(img, motion, spacing) for c, img in baseline.items()}
    quality: dict[str, dict[str, Any]] = {"baseline": {}, "followup": {}}
    if options.degrade:
        scales = {c: brain_stats(img, br).mean for c, img in imgs.items()}
        for visit, visit_images in (("baseline", baseline), ("followup", followup)):
            for c in visit_images:
                visit_images[c], quality[visit][c] = degrade(visit_images[c], br, scales[c], streams[visit], options)

    new = erased | drawn
    meta = {
        "stable": stable,
        "n_erase_asked": n_erase,
        "n_draw_asked": n_draw,
        "erased": _erased_records(labels, chosen, voxel_mm3, crop),
        "drawn": [_uncrop_record(r, crop) for r in records],
        "n_new_lesions": len(chosen) + len(records),
        "new_lesion_volume_mm3": round(float(new.sum()) * voxel_mm3, 2),
        "degradations": quality,
        "misregistration": None if motion is None else {**motion, "moved": "baseline", "about": "brain bounding-box centre"},
        "label_rule": LABEL_RULE,
    }
    return DrawErasePair(
        baseline_images={c: _paste(images[c], baseline[c], crop) for c in images},
        followup_images={c: _paste(images[c], followup[c], crop) for c in images},
        new_lesion=_paste_mask(new, crop, lesion.shape),
        brain=brain.astype(np.uint8),
        baseline_lesion=_paste_mask(les & ~erased, crop, lesion.shape),
        followup_lesion=_paste_mask(les | drawn, crop, lesion.shape),
        meta=meta,
    )


def _shifted(comp: RealComponent, crop: tuple[slice, ...]) -> RealComponent:
    start = tuple(int(s) - c.start for s, c in zip(comp.start, crop))
    return RealComponent(donor=comp.donor, label=comp.label, start=start, mask=comp.mask)


def _uncrop_record(record: dict[str, Any], crop: tuple[slice, ...]) -> dict[str, Any]:
    return {**record, "start": [s + c.start for s, c in zip(record["start"], crop)]}


def _erased_records(labels: np.ndarray, chosen: Sequence[int], voxel_mm3: float, crop: tuple[slice, ...]) -> list[dict[str, Any]]:
    out = []
    for k in chosen:
        idx = np.argwhere(labels == k)
        centre = idx.mean(axis=0) + [c.start for c in crop]
        centroid = [round(float(v), 1) for v in centre]
        out.append({"volume_mm3": round(len(idx) * voxel_mm3, 2), "centroid_voxel": centroid})
    return out


def _paste(full: np.ndarray, part: np.ndarray, crop: tuple[slice, ...]) -> np.ndarray:
    out = np.asarray(full, dtype=np.float32).copy()
    out[crop] = part
    return out


def _paste_mask(part: np.ndarray, crop: tuple[slice, ...], shape: tuple[int, ...]) -> np.ndarray:
    out = np.zeros(shape, np.uint8)
    out[crop] = part
    return out


# ---------------------------------------------------------------- dataset


def _load_source(case_dir: Path, contrasts: Sequence[str]) -> tuple[Any, dict[str, Any]]:
    """The case folder's Case and its volumes of `contrasts`, or InputError."""
    from mslesion.errors import InputError
    from mslesion.io.dataset import read_labelled_case_folder

    case = read_labelled_case_folder(case_dir)
    missing = [c for c in contrasts if c not in case.images]
    if missing:
        raise InputError(case_dir, f"has no {', '.join(missing)} image (has {', '.join(sorted(case.images))})")
    return case, {c: case.images[c] for c in contrasts}


def write_pair(pair: DrawErasePair, like: Any, root: Path, cid: str, subject: str, site: str) -> dict[str, Any]:
    """Write one pair under root/cid in `write_pair_folder`'s layout; return its manifest row."""
    from mslesion.io.atomic import write_json_atomic
    from mslesion.io.volume import save_like

    folder = root / cid
    row: dict[str, Any] = {"case_id": cid, "subject": subject, "site": site}
    for visit, images in (("baseline", pair.baseline_images), ("followup", pair.followup_images)):
        for c, arr in images.items():
            path = save_like(arr, like, folder / f"{visit}_{c}.nii.gz", dtype=np.float32)
            row[f"{visit}_{c}"] = path.relative_to(root).as_posix()
    for column, name, arr in (
        ("lesion", "new_lesion", pair.new_lesion),
        ("brain", "brain", pair.brain),
        ("baseline_lesion", "baseline_lesion", pair.baseline_lesion),
        ("followup_lesion", "followup_lesion", pair.followup_lesion),
    ):
        row[column] = save_like(arr, like, folder / f"{name}.nii.gz", dtype=np.uint8).relative_to(root).as_posix()
    write_json_atomic(folder / "pair.json", {"pair": pair.meta, "site": site, "source": subject})
    return row


def write_draw_erase_pairs(
    case_dir: Path,
    masks_dir: Path,
    out: Path,
    n: int,
    seed: int,
    contrasts: Sequence[str] = ("FLAIR", "T1"),
    *,
    options: DrawEraseOptions | None = None,
    progress: ProgressCallback | None = None,
) -> Path:
    """Write `n` Draw-and-Erase pairs of one real case on the FSL MNI 1 mm grid; return the manifest path.

    The layout and manifest columns are `synth.dataset.write_pair_folder`'s
    (`<out>/<case>-de-0000/{baseline,followup}_<contrast>.nii.gz, new_lesion, brain,
    baseline_lesion, followup_lesion .nii.gz + pair.json`, `manifest.csv`, `pairs.json`),
    so `load_dataset(out)` gives cases with images `baseline_FLAIR`, `followup_FLAIR`, ...
    and the new-lesion mask as `lesion`. Pair i is drawn from SeedSequence(seed, (i,)):
    growing `n` keeps the pairs already made. New lesion shapes come from the masks of
    `masks_dir`, the case's own mask (a file named after the case) excluded.
    """
    from mslesion.errors import InputError
    from mslesion.io.atomic import write_json_atomic
    from mslesion.io.manifest import write_manifest
    from mslesion.space.grid import FSL_MNI_SHAPE, on_mni_grid
    from mslesion.space.priors import mni_tissues_1mm
    from mslesion.synth.library import load_lesion_library
    from mslesion.synth.phantom import subject_seed

    if int(n) != n or n < 1:
        raise InputError(None, f"number of pairs must be a positive integer, got {n}")
    if int(seed) != seed or seed < 0:
        raise InputError(None, f"seed must be a non-negative integer, got {seed}")
    contrasts = tuple(dict.fromkeys(["FLAIR", *contrasts]))
    case, vols = _load_source(case_dir, contrasts)
    like = vols["FLAIR"]
    if not on_mni_grid(like.shape, like.affine):
        raise InputError(case_dir, f"grid {like.shape} is not the FSL MNI152 1 mm grid {FSL_MNI_SHAPE} of the lesion masks")
    library = load_lesion_library(masks_dir)
    shapes = [c for donor, comps in zip(library.donors, library.components) if not donor.startswith(case.case_id) for c in comps]
    images = {c: v.array.astype(np.float32) for c, v in vols.items()}
    lesion = case.lesion.array > 0
    brain = case.brain.array > 0 if case.brain is not None else ndi.binary_fill_holes(images["FLAIR"] > 0)
    white_matter = (mni_tissues_1mm()["wm"] > 0.5) & ndi.binary_erosion(brain, iterations=2)
    root = Path(out)
    site = f"drawerase-{case.case_id}"
    rows, summary = [], []
    for i in range(n):
        t0 = time.perf_counter()
        rng = np.random.default_rng(subject_seed(seed, i))
        pair = make_draw_erase_pair(images, lesion, brain, shapes, rng, like.spacing, white_matter=white_matter, options=options)
        cid = f"{case.case_id}-de-{i:04d}"
        rows.append(write_pair(pair, like, root, cid, case.case_id, site))
        summary.append({"case_id": cid, **{k: pair.meta[k] for k in SUMMARY_KEYS}})
        log.info(
            "%s: %d new lesions, %.0f mm^3 (%.1f s)",
            cid,
            pair.meta["n_new_lesions"],
            pair.meta["new_lesion_volume_mm3"],
            time.perf_counter() - t0,
        )
        if progress is not None:
            progress(i + 1, n)
    write_json_atomic(
        root / "pairs.json",
        {
            "generator": "mslesion.synth.draw_erase",
            "method": "Draw and Erase (Kamraoui et al.)",
            "source_case": str(Path(case_dir).resolve()),
            "lesion_masks_dir": str(library.folder),
            "n": n,
            "seed": seed,
            "contrasts": list(contrasts),
            "options": _options_dict(options or DrawEraseOptions()),
            "label_rule": LABEL_RULE,
            "pairs": summary,
        },
    )
    return write_manifest(rows, root / "manifest.csv")


def _options_dict(options: DrawEraseOptions) -> dict[str, Any]:
    from dataclasses import asdict

    d = asdict(options)
    d["ratios"] = {k: list(v) for k, v in options.ratios.items()}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


__all__ = [
    "DEFAULT_RATIOS",
    "DrawEraseOptions",
    "DrawErasePair",
    "degrade",
    "draw_lesions",
    "erase_lesions",
    "inpaint",
    "make_draw_erase_pair",
    "ratio_range",
    "rigid_move",
    "write_draw_erase_pairs",
    "write_pair",
]
