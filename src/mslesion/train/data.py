"""Cases prepared for training: normalised channels cropped to the brain, label, lesion list.

Everything is held in memory (a 1 mm MNI case cropped to the brain is about 15 MB per
contrast), so patch sampling costs only array slicing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from mslesion.components import label_components
from mslesion.errors import InputError
from mslesion.io.case import Case, required_contrasts
from mslesion.preprocess.brain import nonzero_brain_mask
from mslesion.preprocess.normalize import normalised_channels
from mslesion.space.boxes import brain_bbox

logger = logging.getLogger(__name__)


@dataclass
class PreparedCase:
    """Normalised (C, D, H, W) image, 0/1 label and brain mask, on the brain's bounding box."""

    case_id: str
    image: np.ndarray
    label: np.ndarray
    brain: np.ndarray
    present: np.ndarray  # (C,) bool: which contrasts the case really has
    lesion_voxels: list[np.ndarray]  # per lesion component, its voxel indices (N, 3)
    brain_voxels: np.ndarray  # (M, 3) sample of brain voxel indices (for background patches)
    spacing: tuple[float, float, float]
    site: str | None = None
    dataset_index: int = 0
    field_strength: float | None = None
    # Where the brain box starts on the case's full grid, that grid's shape and affine:
    # crops in the grid's coordinates (DeepLesionBrain's MNI regions) need them.
    origin: tuple[int, int, int] = (0, 0, 0)
    grid_shape: tuple[int, int, int] | None = None
    affine: np.ndarray | None = None


def brain_mask_of(case: Case) -> np.ndarray:
    """The case's brain mask, or non-zero FLAIR with holes filled when it has none."""
    if case.brain is not None:
        return case.brain.array > 0
    return nonzero_brain_mask(case.reference().array)


def case_metadata(case: PreparedCase, contrasts: list[str], image: np.ndarray | None = None) -> dict:
    """Metadata of a case (or of an augmented patch `image`: dropped channels count as absent)."""
    present = case.present if image is None else image.reshape(len(contrasts), -1).any(axis=1) & case.present
    return {
        "contrasts": [c for c, p in zip(contrasts, present) if p],
        "site": case.site,
        "field_strength": case.field_strength,
        "voxel_size": list(case.spacing),
    }


def case_probabilities(cases: list[PreparedCase], dataset_weights: list[float]) -> np.ndarray:
    """Probability of drawing each case: its dataset's weight shared by the dataset's cases."""
    if not dataset_weights:
        return np.full(len(cases), 1.0 / len(cases))
    counts = np.bincount([c.dataset_index for c in cases], minlength=len(dataset_weights))
    weights = np.array([dataset_weights[c.dataset_index] / counts[c.dataset_index] for c in cases], dtype=float)
    if weights.sum() <= 0:
        raise InputError(None, "data.dataset_weights gives every training case weight 0")
    return weights / weights.sum()


def fit_nyul(cases: list[Case], contrasts: list[str]) -> dict:
    """Nyul landmarks per contrast from the training cases.

    Every 2nd voxel per axis is enough for percentiles. Each volume is released after its
    subsample is copied (prepare_case reads it again): reading twice beats holding every
    training volume in memory at once.
    """
    from mslesion.preprocess.normalize import NyulStandardiser

    fitted = {}
    for name in contrasts:
        images, brains = [], []
        for case in (c for c in cases if name in c.images):
            images.append(np.ascontiguousarray(case.images[name].array[::2, ::2, ::2]))
            brains.append(np.ascontiguousarray(brain_mask_of(case)[::2, ::2, ::2]))
            for vol in (case.images[name], case.brain, case.reference()):
                if vol is not None:
                    vol.release()
        if images:
            fitted[name] = NyulStandardiser().fit(images, brains)
    return fitted


def prepare_case(
    case: Case, contrasts: list[str], margin: int = 8, seed: int = 0, normalisation: str = "zscore_brain", nyul: dict | None = None
) -> PreparedCase:
    """Normalise the case's contrasts inside its brain and crop everything to the brain box."""
    missing = [name for name in required_contrasts(contrasts) if name not in case.images]
    if missing:
        raise InputError(None, f"case {case.case_id!r} has no {' / '.join(missing)}")
    if case.lesion is None:
        raise InputError(None, f"case {case.case_id!r} has no lesion mask to train on")
    case.check_same_grid()
    brain = brain_mask_of(case)
    box = brain_bbox(brain, margin=margin, patch_size=(0, 0, 0))
    brain_c = brain[box]
    image = normalised_channels(
        {n: v.array[box] for n, v in case.images.items() if n in contrasts}, brain_c, contrasts, normalisation, nyul
    )
    label = (case.lesion.array[box] > 0).astype(np.uint8)
    components, n = label_components(label, connectivity=26)
    # Voxel indices of each lesion, from one sort rather than one full-volume scan per lesion.
    flat = np.flatnonzero(components)
    order = np.argsort(components.ravel()[flat], kind="stable")
    coords = np.column_stack(np.unravel_index(flat[order], components.shape))
    lesion_voxels = np.split(coords, np.cumsum(np.bincount(components.ravel()[flat], minlength=n + 1)[1:])[:-1]) if n else []
    for vol in [*case.images.values(), case.lesion, case.brain]:
        if vol is not None:
            vol.release()  # the cropped copies above are all training needs
    brain_idx = np.argwhere(brain_c)
    rng = np.random.default_rng(seed)
    if len(brain_idx) > 200_000:
        brain_idx = brain_idx[rng.choice(len(brain_idx), 200_000, replace=False)]
    return PreparedCase(
        case_id=case.case_id,
        image=image.astype(np.float32, copy=False),
        label=label,
        brain=brain_c,
        present=np.array([c in case.images for c in contrasts]),
        lesion_voxels=lesion_voxels,
        brain_voxels=brain_idx,
        spacing=case.reference().spacing,
        site=case.meta.site,
        dataset_index=int(case.meta.extra.get("dataset_index", 0)),
        field_strength=case.meta.field_strength,
        origin=tuple(int(b.start) for b in box),  # type: ignore[arg-type]  # 3 axes; mypy cannot count a generator's items
        grid_shape=tuple(int(n) for n in brain.shape),  # type: ignore[arg-type]  # 3 axes; mypy cannot count a generator's items
        affine=np.asarray(case.reference().affine, dtype=float).copy(),
    )
