"""Other patients' real lesion shapes drawn into training patches, where those patients had them.

Measured on the real leave-one-out maps (benchmarks/real_accuracy.py): a model trained on
patient07 (1.3 mL of small juxtacortical and deep lesions) gives patient19's 50 mL of
confluent periventricular lesions a probability of about 0 (Dice 0.03, where a plain FLAIR
threshold reaches 0.54). One or two scans show the network one or two lesion loads and
layouts. This augmentation is the "draw" half of Kamraoui et al.'s Draw-and-Erase done per
patch: for a sampled patch, the lesions that another patient of the same database had in that
region (the expert masks of `data.lesion_locations`, on the same FSL MNI 1 mm grid as the
training cases) are added to the patch's own image, each with the contrast of one real lesion
of the training cases (`synth.implant.measure_lesion_offsets`, in units of the brain's sd, times the
patch's case's own brain sd), and are added to the label.

Unlike CarveMix (train.carvemix), which moves the training cases' own lesions, this brings
lesion shapes, sizes and loads the training cases do not have. The masks of excluded cases (test
cases) and of the patch's own case (io.case.names_case) are never drawn from.

Written by hand: MONAI and TorchIO have no lesion implantation from a mask library.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from mslesion.io.case import names_case
from mslesion.train.data import PreparedCase
from mslesion.train.sampling import extract_patch

logger = logging.getLogger(__name__)

# Where a drawn lesion may lie: the MNI white-matter prior above this, in the brain eroded by
# 2 mm, on FLAIR not darker than the brain's mean plus this many brain sd (keeps drawn lesions
# out of the recipient's own CSF, as atrophic brains have larger ventricles than the donors).
WM_PRIOR_MIN = 0.5
FLAIR_MIN_Z = -0.5
KEEP_AWAY_VOXELS = 2  # never drawn on or next to the patch's own lesions
SCALE_RANGE = (0.7, 1.3)  # each drawn lesion's contrast: a real lesion's offset times this


class LesionImplant:
    """Donor lesion masks and lesion contrasts of the training cases; `apply` draws them into patches."""

    def __init__(
        self,
        cases: Sequence[PreparedCase],
        masks_folder: Path,
        exclude: Sequence[str],
        flair_channel: int | None,
        lesion_poor: bool = False,
    ) -> None:
        """`lesion_poor`: scale each case's share of implanted patches by how far its lesion
        load lies below the donors' median (config.ImplantScaling.LESION_POOR); else 1 for every case."""
        from mslesion.space.grid import on_mni_grid
        from mslesion.space.priors import mni_tissues_1mm
        from mslesion.synth.implant import brain_stats, measure_lesion_offsets
        from mslesion.synth.library import load_lesion_library

        library = load_lesion_library(masks_folder)
        self.donors = [
            (donor, comps) for donor, comps in zip(library.donors, library.components) if comps and not names_case(donor, exclude)
        ]
        # Each donor's component boxes as (N, 3) starts and ends on the 1 mm MNI grid, for a quick overlap test.
        self.boxes = [
            (np.array([c.start for c in comps]), np.array([np.add(c.start, c.mask.shape) for c in comps])) for _, comps in self.donors
        ]
        median_load = float(np.median([sum(c.volume_mm3 for c in comps) for _, comps in self.donors])) if self.donors else 0.0
        wm = mni_tissues_1mm()["wm"]
        self.share: dict[str, float] = {}  # per case: the factor on `apply`'s probability
        self.allowed: dict[str, np.ndarray] = {}
        self.brain_sd: dict[str, np.ndarray] = {}  # per case and channel: offsets are in brain sd units
        offsets: list[np.ndarray] = []
        for case in cases:
            if not on_mni_grid(case.grid_shape, case.affine):  # donors' masks are on that grid
                continue
            # Loads in voxels = mm^3 on that grid, for donors and cases alike.
            lesion_ratio = float((case.label > 0).sum()) / median_load if lesion_poor and median_load > 0 else 0.0
            self.share[case.case_id] = max(0.0, 1.0 - lesion_ratio)
            box = tuple(slice(o, o + n) for o, n in zip(case.origin, case.label.shape))
            allowed = (wm[box] > WM_PRIOR_MIN) & ndi.binary_erosion(case.brain, iterations=2)
            stats = [brain_stats(channel, case.brain) if channel[case.brain].any() else None for channel in case.image]
            flair = stats[flair_channel] if flair_channel is not None else None
            if flair is not None:
                allowed &= case.image[flair_channel] > flair.mean + FLAIR_MIN_Z * flair.sd
            self.allowed[case.case_id] = allowed & ~ndi.binary_dilation(case.label > 0, iterations=KEEP_AWAY_VOXELS)
            self.brain_sd[case.case_id] = np.array([s.sd if s is not None else 0.0 for s in stats])
            if case.label.any():
                channels = {str(i): channel for i, channel in enumerate(case.image)}
                try:
                    measured = measure_lesion_offsets(channels, case.label > 0, case.brain, wm[box] > 0.9)
                except ValueError:  # too little white matter to measure against
                    continue
                offsets.append(np.stack([measured[str(i)] for i in range(len(channels))], axis=1))
        # (lesions, channels): each row the contrast of one real lesion in every channel.
        self.offsets = np.concatenate(offsets) if offsets else np.zeros((0, cases[0].image.shape[0]), np.float32)
        logger.info(
            "lesion implant: %d donor masks (median load %.1f mL), %d reference lesions, %d of %d cases on the MNI grid, share per case %s",
            len(self.donors),
            median_load / 1000,
            len(self.offsets),
            len(self.allowed),
            len(cases),
            {k: round(v, 2) for k, v in self.share.items()},
        )

    def apply(self, items: list[dict], rng: np.random.Generator, probability: float) -> None:
        """With `probability` (times the case's share) per item, draw one donor's lesions of the patch's region into its
        'image' and 'label' (in place); items need 'case' and 'centre' (as `sampling.sample_batch`)."""
        if not len(self.offsets) or not self.donors:
            return
        for item in items:
            case = item["case"]
            allowed = self.allowed.get(case.case_id)
            if allowed is None or rng.random() >= probability * self.share[case.case_id]:
                continue
            size = np.asarray(item["image"].shape[1:])
            start = np.asarray(item["centre"]) - size // 2  # on the case's brain box (may be negative), as extract_patch
            grid_start = start + np.asarray(case.origin)
            grid_end = grid_start + size
            hits = [
                (d, np.flatnonzero(np.all(starts < grid_end, axis=1) & np.all(ends > grid_start, axis=1)))
                for d, (starts, ends) in enumerate(self.boxes)
                if not names_case(self.donors[d][0], [case.case_id])
            ]
            hits = [(d, idx) for d, idx in hits if len(idx)]
            if not hits:
                continue
            d, idx = hits[int(rng.integers(len(hits)))]
            drawn = np.zeros(tuple(size), dtype=bool)
            for k in idx:
                paste_component(drawn, self.donors[d][1][k].mask, np.asarray(self.donors[d][1][k].start) - grid_start)
            # Also away from lesions already in the patch (CarveMix pastes exist only in the item's label).
            allowed_patch = extract_patch(allowed[None], item["centre"], item["image"].shape[1:])[0] & ~ndi.binary_dilation(
                item["label"][0] > 0, iterations=KEEP_AWAY_VOXELS
            )
            draw_into(item["image"], item["label"], drawn & allowed_patch, self.offsets * self.brain_sd[case.case_id], rng)


def paste_component(canvas: np.ndarray, mask: np.ndarray, at: np.ndarray) -> None:
    """OR a component's boolean box into `canvas` with its first voxel at `at` (clipped to the canvas)."""
    lo, hi = np.maximum(at, 0), np.minimum(at + mask.shape, canvas.shape)
    if np.any(hi <= lo):
        return
    canvas[tuple(slice(a, b) for a, b in zip(lo, hi))] |= mask[tuple(slice(a - s, b - s) for a, b, s in zip(lo, hi, at))]


def draw_into(image: np.ndarray, label: np.ndarray, drawn: np.ndarray, offsets: np.ndarray, rng: np.random.Generator) -> None:
    """Add each connected lesion of `drawn` to the (C, ...) `image` with one real lesion's
    contrast (a row of `offsets`, in the image's units, times a factor in SCALE_RANGE), through a slightly blurred mask
    with mild texture (as synth.implant); mark it in the (1, ...) `label`. Brain voxels only."""
    from mslesion.components import label_components

    components, n = label_components(drawn, connectivity=26)
    if not n:
        return
    rows = rng.integers(len(offsets), size=n + 1)
    scales = rng.uniform(*SCALE_RANGE, size=n + 1)
    per_voxel = offsets[rows] * scales[:, None]  # (n + 1, C): component k's offset vector
    per_voxel[0] = 0.0
    profile = np.maximum(np.clip(ndi.gaussian_filter(drawn.astype(np.float32), 0.6), 0.0, 1.0), drawn)
    texture = 1.0 + 0.45 * ndi.gaussian_filter(rng.standard_normal(drawn.shape).astype(np.float32), 1.0)
    # Blurred edges outside a component take its nearest component's offset.
    nearest = ndi.distance_transform_edt(components == 0, return_distances=False, return_indices=True)
    owner = components[tuple(nearest)]
    for c, channel in enumerate(image):
        inside = channel != 0  # brain only; a contrast the case lacks stays zeros
        channel[inside] += (per_voxel[owner, c] * profile * texture)[inside]
    label[0][drawn] = 1.0
