"""Lesion-balanced patch sampling.

Written by hand because MONAI's RandCropByPosNegLabel picks a foreground VOXEL, so a
50 mL confluent lesion is drawn thousands of times more often than a 20 mm^3 one. Here a
lesion-centred patch first picks a LESION uniformly, then a voxel in it, so small lesions
(the ones that decide lesion-wise F1) are seen as often as large ones (MSSEG-2 practice).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mslesion.train.data import PreparedCase

if TYPE_CHECKING:
    from mslesion.train.carvemix import CarveMix


def choose_centre(case: PreparedCase, rng: np.random.Generator, lesion_fraction: float, patch_size: Sequence[int]) -> np.ndarray:
    """Patch centre: in a random lesion (prob. `lesion_fraction`, jittered) or a random brain voxel."""
    if case.lesion_voxels and rng.random() < lesion_fraction:
        lesion = case.lesion_voxels[rng.integers(len(case.lesion_voxels))]
        return jittered(lesion[rng.integers(len(lesion))].astype(int), rng, patch_size)
    return case.brain_voxels[rng.integers(len(case.brain_voxels))].astype(int)


def jittered(centre: np.ndarray, rng: np.random.Generator, patch_size: Sequence[int]) -> np.ndarray:
    """`centre` moved by up to a quarter patch per axis, so a lesion is not always mid-patch."""
    return centre + rng.integers(-np.asarray(patch_size) // 4, np.asarray(patch_size) // 4 + 1)


def extract_patch(array: np.ndarray, centre: np.ndarray, patch_size: Sequence[int]) -> np.ndarray:
    """The patch of `patch_size` centred on `centre` from a (C, D, H, W) array, zero-padded at borders."""
    size = np.asarray(patch_size)
    start = centre - size // 2
    out = np.zeros((array.shape[0], *size), dtype=array.dtype)
    src_lo = np.maximum(start, 0)
    src_hi = np.minimum(start + size, array.shape[1:])
    if np.any(src_hi <= src_lo):
        return out
    dst_lo = src_lo - start
    dst_hi = dst_lo + (src_hi - src_lo)
    out[(slice(None), *(slice(a, b) for a, b in zip(dst_lo, dst_hi)))] = array[
        (slice(None), *(slice(a, b) for a, b in zip(src_lo, src_hi)))
    ]
    return out


def pick_case(cases: list[PreparedCase], rng: np.random.Generator, case_probabilities: np.ndarray | None) -> PreparedCase:
    """A random training case: uniform, or by the datasets' sampling weights when given."""
    return cases[rng.choice(len(cases), p=case_probabilities) if case_probabilities is not None else rng.integers(len(cases))]


def sample_batch(
    cases: list[PreparedCase],
    rng: np.random.Generator,
    batch_size: int,
    patch_size: Sequence[int],
    lesion_fraction: float,
    case_probabilities: np.ndarray | None = None,
    carvemix: CarveMix | None = None,
    carvemix_fraction: float = 0.0,
) -> list[dict[str, Any]]:
    """`batch_size` patches, each from a random case: {'image': (C,...), 'label': (1,...), 'case': PreparedCase,
    'centre': the patch centre on the case's arrays}.

    A share `carvemix_fraction` of them is centred on a real lesion pasted at a real lesion
    position (`train.carvemix`); the rest are lesion-first or background as above.
    """
    items = []
    for _ in range(batch_size):
        case = pick_case(cases, rng, case_probabilities)
        pasted_at = None
        if carvemix is not None and carvemix.bank and rng.random() < carvemix_fraction:
            pasted_at = carvemix.position_in(case, rng)
        if pasted_at is not None:
            centre = jittered(pasted_at, rng, patch_size)
        else:
            centre = choose_centre(case, rng, lesion_fraction, patch_size)
        image = extract_patch(case.image, centre, patch_size)
        label = extract_patch(case.label[None], centre, patch_size).astype(np.float32)
        if pasted_at is not None:
            assert carvemix is not None  # only a carvemix gives a paste position
            carvemix.paste(image, label, pasted_at - (centre - np.asarray(patch_size) // 2), rng)
        items.append({"image": image, "label": label, "case": case, "centre": centre})
    return items


def whole_case_batch(
    cases: list[PreparedCase], rng: np.random.Generator, case_probabilities: np.ndarray | None = None
) -> list[dict[str, Any]]:
    """A batch of one whole brain-cropped case (Brosch et al.'s CEN trains on whole images;
    cases differ in size, so they are not stacked)."""
    case = pick_case(cases, rng, case_probabilities)
    return [{"image": case.image.copy(), "label": case.label[None].astype(np.float32), "case": case}]
