"""CarveMix across real scans: real lesions, carved with a rim of their own tissue, pasted
elsewhere in (another) real brain.

Zhang et al., "CarveMix: a simple data augmentation method for brain lesion segmentation",
MICCAI 2021: a lesion of one labelled scan, with a margin around it, replaces the same region
of another scan, intensities and all, so a few labelled scans give many lesion/background
combinations. Here a lesion is pasted at a position drawn from real lesion masks of the same
database (`data.lesion_locations`, e.g. the 29 Lesjak consensus masks on the MNI grid), so
pasted lesions sit where MS lesions occur (periventricular, juxtacortical, deep white matter)
and never on the test case's own lesion sites (masks of excluded cases are left out).

Written by hand: MONAI and TorchIO have no cross-image lesion paste. The paste is done on
the extracted patch (the whole brain is never copied), and its edge is blended over
`BLEND_VOXELS` so no step edge tells the network where the paste is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from mslesion.errors import InputError
from mslesion.io.case import names_case
from mslesion.train.data import PreparedCase

logger = logging.getLogger(__name__)

MARGIN_VOXELS = 2  # rim of the lesion's own surrounding tissue carved with it
BLEND_VOXELS = 2  # linear blend from the carved block into the target beyond the rim
MAX_LOCATIONS = 200_000


@dataclass
class CarvedLesion:
    """One real lesion with its rim: image block (C, ...), label block, blend weight, its centre in the block."""

    image: np.ndarray
    label: np.ndarray
    alpha: np.ndarray
    centre: np.ndarray
    source: str


def carve_lesions(cases: list[PreparedCase], max_extent: int) -> list[CarvedLesion]:
    """Every lesion of `cases` whose block (lesion + rim + blend) fits in `max_extent` voxels per axis."""
    pad = MARGIN_VOXELS + BLEND_VOXELS
    bank = []
    for case in cases:
        for voxels in case.lesion_voxels:
            lo, hi = voxels.min(axis=0) - pad, voxels.max(axis=0) + 1 + pad
            if np.any(hi - lo > max_extent) or np.any(lo < 0) or np.any(hi > case.label.shape):
                continue
            box = tuple(slice(a, b) for a, b in zip(lo, hi))
            own = np.zeros(hi - lo, dtype=bool)
            own[tuple((voxels - lo).T)] = True
            distance = ndimage.distance_transform_edt(~own)
            alpha = np.clip((MARGIN_VOXELS + BLEND_VOXELS - distance) / BLEND_VOXELS, 0.0, 1.0).astype(np.float32)
            bank.append(
                CarvedLesion(
                    image=case.image[(slice(None), *box)].copy(),
                    label=case.label[box].astype(np.float32),
                    alpha=alpha,
                    centre=np.round(voxels.mean(axis=0) - lo).astype(int),
                    source=case.case_id,
                )
            )
    return bank


def lesion_locations(folder: Path, exclude: list[str], grid_shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """(N, 3) voxel positions of lesions in the masks of `folder` (NIfTI on the training grid),
    the masks of excluded cases (io.case.names_case) left out."""
    from mslesion.io.volume import load_volume

    every = sorted(folder.glob("*.nii*"))
    files = [p for p in every if not names_case(p.name, exclude)]
    if not every:
        raise InputError(folder, "data.lesion_locations is not a folder of lesion masks (*.nii / *.nii.gz) to draw positions from")
    if not files:
        raise InputError(folder, f"data.lesion_locations holds only masks of held-out cases ({', '.join(exclude)}): no positions to draw")
    union = np.zeros(grid_shape, dtype=bool)
    for path in files:
        mask = load_volume(path).array
        if mask.shape != tuple(grid_shape):
            raise InputError(path, f"lesion mask is {mask.shape}, the training cases' grid is {tuple(grid_shape)}")
        union |= mask > 0
    positions = np.argwhere(union)
    if len(positions) > MAX_LOCATIONS:
        positions = positions[np.random.default_rng(seed).choice(len(positions), MAX_LOCATIONS, replace=False)]
    logger.info("CarveMix: %d lesion positions from %d masks", len(positions), len(files))
    return positions


class CarveMix:
    """Draws CarveMix patches: a real lesion pasted at a real lesion position of a training case."""

    def __init__(self, cases: list[PreparedCase], positions: np.ndarray | None, patch_size: list[int]) -> None:
        self.bank = carve_lesions(cases, max_extent=min(patch_size) // 2)
        # Without a location folder: the training cases' own lesion positions (on their common grid).
        if positions is None:
            positions = np.concatenate([np.concatenate(c.lesion_voxels) + np.asarray(c.origin) for c in cases if c.lesion_voxels])
        self.positions = positions
        logger.info("CarveMix: %d carved lesions from %d cases", len(self.bank), len(cases))

    def position_in(self, case: PreparedCase, rng: np.random.Generator, tries: int = 20) -> np.ndarray | None:
        """A drawn lesion position inside `case`'s brain and outside its lesions, in its crop's voxels."""
        for _ in range(tries):
            at = self.positions[rng.integers(len(self.positions))] - np.asarray(case.origin)
            if np.all(at >= 0) and np.all(at < case.label.shape) and case.brain[tuple(at)] and not case.label[tuple(at)]:
                return at
        return None

    def paste(self, image: np.ndarray, label: np.ndarray, at: np.ndarray, rng: np.random.Generator) -> None:
        """Paste a random carved lesion into a (C, ...) patch and its (1, ...) label, lesion centre at `at`."""
        lesion = self.bank[rng.integers(len(self.bank))]
        start = at - lesion.centre
        lo, hi = np.maximum(start, 0), np.minimum(start + lesion.alpha.shape, label.shape[1:])
        if np.any(hi <= lo):
            return
        dst = tuple(slice(a, b) for a, b in zip(lo, hi))
        src = tuple(slice(a, b) for a, b in zip(lo - start, hi - start))
        alpha = lesion.alpha[src]
        image[(slice(None), *dst)] = alpha * lesion.image[(slice(None), *src)] + (1 - alpha) * image[(slice(None), *dst)]
        in_label: tuple[int | slice, ...] = (0, *dst)  # annotated: mypy joins a bare (0, *dst) to tuple[object, ...]
        label[in_label] = np.where(alpha >= 0.5, lesion.label[src], label[in_label])
