"""Draw real lesion shapes into a real scan: training cases with real anatomy, texture and noise.

Pure phantoms teach a network the phantom's tissue contrast; a real case teaches it what
normal-appearing white matter looks like on a real scanner, but one case has one lesion
load. Implanting the lesions of other patients (the expert masks of
`../shared/data/lesjak-mni-masks`, already on the recipient's MNI grid) into a real case
gives many real-texture cases with loads from a few small lesions to dozens, the "draw"
half of Kamraoui et al.'s Draw-and-Erase.

How a lesion is drawn, per contrast: the recipient's own lesions give, for each lesion,
its intensity offset from normal-appearing white matter in brain standard
deviations (`measure_lesion_offsets`). Each implanted lesion takes the offset vector of
one randomly chosen real lesion (contrasts stay consistent with each other), scaled by
a factor in [0.7, 1.3] (the recipient's own spread, widened), with mild internal heterogeneity, and is
added to the image through a slightly blurred mask (partial volume at the edge). The
image's own noise and texture are kept because the offset is added, not painted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from mslesion.components import label_components
from mslesion.synth.library import RealComponent

log = logging.getLogger(__name__)

# Offsets are measured on real lesions at least this large (small ones are partial-volume-diluted).
MIN_REFERENCE_VOXELS = 20
NAWM_MARGIN_MM = 3


@dataclass(frozen=True)
class BrainStats:
    """Robust mean and sd of one contrast inside the brain (the scale offsets are expressed in)."""

    mean: float
    sd: float


def brain_stats(image: np.ndarray, brain: np.ndarray) -> BrainStats:
    """Mean and sd over brain voxels within the 0.5-99.5 percentile window (as `zscore_brain`)."""
    values = image[brain].astype(np.float64)
    lo, hi = np.percentile(values, [0.5, 99.5])
    core = values[(values >= lo) & (values <= hi)]
    return BrainStats(float(core.mean()), float(max(core.std(), 1e-6)))


def measure_lesion_offsets(
    images: dict[str, np.ndarray], lesion: np.ndarray, brain: np.ndarray, white_matter: np.ndarray
) -> dict[str, np.ndarray]:
    """Per real lesion (>= MIN_REFERENCE_VOXELS), its median minus the normal-appearing white matter's, in brain sd.

    Normal-appearing white matter is `white_matter` at least 3 mm away from every lesion
    (a local shell would include the dirty-appearing tissue around lesions and understate
    their contrast). Returns one array per contrast, aligned (index i = the same lesion).
    """
    labels, n = label_components(lesion > 0, connectivity=26)
    nawm = white_matter & brain & ~ndi.binary_dilation(lesion > 0, iterations=NAWM_MARGIN_MM)
    if nawm.sum() < 100:
        raise ValueError("too little normal-appearing white matter to measure lesion contrast")
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = np.flatnonzero(sizes >= MIN_REFERENCE_VOXELS)
    keep = keep[keep > 0]
    offsets = {}
    for c, img in images.items():
        stats = brain_stats(img, brain)
        medians = np.asarray(ndi.median(img, labels, keep), dtype=np.float64) if len(keep) else np.zeros(0)
        offsets[c] = ((medians - float(np.median(img[nawm]))) / stats.sd).astype(np.float32)
    return offsets


def _fits(comp: RealComponent, allowed: np.ndarray, occupied: np.ndarray, min_inside: float) -> bool:
    sl = tuple(slice(s, s + n) for s, n in zip(comp.start, comp.mask.shape))
    inside = allowed[sl][comp.mask].mean()
    return bool(inside >= min_inside and not occupied[sl][comp.mask].any())


def implant_lesions(
    images: dict[str, np.ndarray],
    lesion: np.ndarray,
    brain: np.ndarray,
    components: list[RealComponent],
    offsets: dict[str, np.ndarray],
    rng: np.random.Generator,
    white_matter: np.ndarray | None = None,
    scale_range: tuple[float, float] = (0.7, 1.3),
) -> tuple[dict[str, np.ndarray], np.ndarray, int]:
    """Add each fitting component to copies of `images`; return images, the new label and how many were drawn.

    A component fits when at least 70% of it lies in `white_matter` (or the brain eroded by
    2 mm when none is given) and it does not touch an existing or already drawn lesion.
    """
    n_ref = len(next(iter(offsets.values())))
    if n_ref == 0:
        raise ValueError("no reference lesion large enough to measure lesion contrast")
    allowed = white_matter if white_matter is not None else ndi.binary_erosion(brain, iterations=2)
    occupied = ndi.binary_dilation(lesion > 0, iterations=2)
    stats = {c: brain_stats(img, brain) for c, img in images.items()}
    out = {c: img.astype(np.float32, copy=True) for c, img in images.items()}
    label = (lesion > 0).astype(np.uint8)
    drawn = 0
    for comp in components:
        if not _fits(comp, allowed, occupied, 0.7):
            continue
        sl = tuple(slice(max(s - 2, 0), s + n + 2) for s, n in zip(comp.start, comp.mask.shape))
        local: np.ndarray = np.zeros(tuple(x.stop - x.start for x in sl), dtype=np.float32)
        inner = tuple(slice(s - x.start, s - x.start + n) for s, x, n in zip(comp.start, sl, comp.mask.shape))
        local[inner] = comp.mask
        soft = np.clip(ndi.gaussian_filter(local, 0.6), 0.0, 1.0)
        soft = np.maximum(soft, local)  # the labelled voxels carry the full offset
        texture = 1.0 + 0.15 * ndi.gaussian_filter(rng.standard_normal(local.shape).astype(np.float32), 1.0) * 3.0
        pick = int(rng.integers(n_ref))
        scale = float(rng.uniform(*scale_range))
        for c in out:
            out[c][sl] += offsets[c][pick] * scale * stats[c].sd * soft * texture * brain[sl]
        label[sl] |= local.astype(np.uint8)
        occupied[sl] |= ndi.binary_dilation(local > 0, iterations=2)
        drawn += 1
    return out, label, drawn


def write_implanted_cases(
    recipient_dir: Path,
    masks_dir: Path,
    out: Path,
    seed: int = 0,
    contrasts: tuple[str, ...] = ("FLAIR", "T1", "T2"),
) -> list[str]:
    """One case folder per donor mask of `masks_dir`: the recipient case with that donor's lesions drawn in.

    The recipient is a case folder on the FSL MNI 1 mm grid (e.g. lesjak-mni/patient19); a
    donor whose file name starts with the recipient's name is skipped. Each case keeps a
    random 50-100% of its donor's lesions. Written as `<out>/<recipient>-<donor>/`.
    """
    from mslesion.io.dataset import read_labelled_case_folder
    from mslesion.io.volume import save_like
    from mslesion.space.priors import mni_tissues_1mm
    from mslesion.synth.library import load_lesion_library

    recipient = read_labelled_case_folder(recipient_dir)
    assert recipient.lesion is not None  # read_labelled_case_folder refuses a folder without one
    library = load_lesion_library(masks_dir)
    vols = {c: recipient.images[c] for c in contrasts if c in recipient.images}
    images = {c: v.array.astype(np.float32) for c, v in vols.items()}
    brain = ndi.binary_fill_holes(images["FLAIR"] != 0)
    lesion = recipient.lesion.array > 0
    wm_prior = mni_tissues_1mm()["wm"]
    offsets = measure_lesion_offsets(images, lesion, brain, wm_prior > 0.9)
    white_matter = (wm_prior > 0.5) & ndi.binary_erosion(brain, iterations=2)
    written = []
    for d, (donor, comps) in enumerate(zip(library.donors, library.components)):
        if donor.startswith(recipient.case_id) or not comps:
            continue
        rng = np.random.default_rng([seed, d])
        fraction = rng.uniform(0.5, 1.0)
        keep = [c for c in comps if rng.random() < fraction]
        new_images, label, drawn = implant_lesions(images, lesion, brain, keep, offsets, rng, white_matter)
        case_dir = out / f"{recipient.case_id}-{donor.removesuffix('_lesion')}"
        case_dir.mkdir(parents=True, exist_ok=True)
        for c, arr in new_images.items():
            save_like(arr, vols[c], case_dir / f"{c}.nii.gz", dtype=np.float32)
        save_like(label, recipient.lesion, case_dir / "lesion.nii.gz", dtype=np.uint8)
        written.append(case_dir.name)
        log.info("%s: %d lesions drawn from %s", case_dir.name, drawn, donor)
    return written
