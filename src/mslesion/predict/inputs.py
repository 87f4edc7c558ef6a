"""The scans of a run, read and checked, and whether they can go to the model as they are."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from mslesion.errors import InputError
from mslesion.io.volume import Volume, load_volume

PREPROCESS_MODES = ("auto", "yes", "no")


def check_preprocess_mode(preprocess: str) -> None:
    """InputError unless `preprocess` is one of PREPROCESS_MODES."""
    if preprocess not in PREPROCESS_MODES:
        raise InputError(None, f"preprocess must be one of {', '.join(PREPROCESS_MODES)}, not {preprocess!r}")


def needs_preprocessing(preprocess: str, reason: str | None, path: Path | None, hint: str) -> bool:
    """Whether the scans go through the raw-scan preprocessing: "yes" always, "auto" when not ready
    (`reason`), "no" never (not-ready input is then an InputError ending with `hint`)."""
    if preprocess == "no" and reason is not None:
        raise InputError(path, f"{reason}; {hint}")
    return preprocess == "yes" or reason is not None


def read_volumes(images: dict[str, Path]) -> dict[str, Volume]:
    """Open and validate every image, by contrast name."""
    return {name: load_volume(path).validate() for name, path in images.items()}


def load_inputs(images: dict[str, Path]) -> tuple[dict[str, Volume], Volume]:
    """Open and validate every input image of one visit (FLAIR required); the volumes and the FLAIR."""
    if "FLAIR" not in images:
        raise InputError(None, "a FLAIR image is required (--flair)")
    volumes = read_volumes(images)
    return volumes, volumes["FLAIR"]


def background_looks_raw(image: np.ndarray) -> bool:
    """Skull-stripped images have an exactly-zero background; raw ones do not."""
    corners = [image[:8, :8, :8], image[-8:, -8:, :8], image[:8, -8:, -8:], image[-8:, :8, -8:]]
    return float(np.mean([np.count_nonzero(c) / c.size for c in corners])) > 0.5


def brain_from_images(flair: Volume) -> np.ndarray:
    """Brain mask of skull-stripped input: voxels non-zero in FLAIR, holes filled."""
    from mslesion.preprocess.brain import nonzero_brain_mask

    mask = nonzero_brain_mask(flair.array)
    if not mask.any():
        raise InputError(flair.path, "image is empty (all zeros)")
    return mask


def preprocessing_reason(volumes: dict[str, Volume], flair: Volume, spacing_mm: tuple[float, ...], brain_mask: Path | None) -> str | None:
    """Why these inputs cannot go to the model as they are (None when they can).

    Ready means: every contrast on the FLAIR grid, skull stripped (zero background) or a
    brain mask given, and voxels no coarser than 1.5x the model's.
    """
    for name, vol in volumes.items():
        if not vol.same_grid(flair):
            return f"{name} grid {vol.shape} differs from FLAIR {flair.shape}"
    if brain_mask is None and background_looks_raw(flair.array):
        return "looks like a raw scan (non-zero background) and no --brain-mask was given"
    if any(s > 1.5 * t for s, t in zip(flair.spacing, spacing_mm)):
        return f"voxel size {tuple(round(s, 2) for s in flair.spacing)} mm is coarser than the model's {tuple(spacing_mm)}"
    return None


def brain_of_ready_input(flair: Volume, brain_mask: Path | None) -> tuple[np.ndarray, bool]:
    """The given brain mask (checked against the FLAIR grid), or non-zero FLAIR; and whether it was computed.

    A computed brain of implausible volume (an image too small for a brain, a partial scan) is a QC
    warning on the FLAIR, so it reaches summary.json, the report and the log; on the MNI grid the
    limits allow a brain normalised to the template (`mslesion preprocess` output).
    """
    if brain_mask is None:
        from mslesion.preprocess.raw import brain_ml_limits, brain_volume_ml, brain_volume_warnings

        brain = brain_from_images(flair)
        volume = brain_volume_ml(brain, flair.affine)
        flair.note(brain_volume_warnings(volume, f"{flair.path}: the brain (non-zero FLAIR)", brain_ml_limits(flair.shape, flair.affine)))
        return brain, True
    brain_vol = load_volume(brain_mask).validate()
    if not brain_vol.same_grid(flair):
        raise InputError(brain_mask, f"brain mask grid {brain_vol.shape} differs from FLAIR {flair.shape}")
    brain = brain_vol.array > 0
    if not brain.any():
        raise InputError(brain_mask, "brain mask is empty")
    return brain, False


def describe_inputs(volumes: dict[str, Volume]) -> dict[str, dict[str, object]]:
    """summary.json's record of the input images, by channel name: path, shape and voxel size."""
    return {
        name: {"path": str(v.path), "shape": list(v.shape), "spacing_mm": [round(s, 4) for s in v.spacing]} for name, v in volumes.items()
    }


def channel_warnings(given: Iterable[str], contrasts: list[str], modality_dropout: bool) -> list[str]:
    """What the model will miss (unless trained with modality dropout, which expects it) and what it will not use."""
    given = set(given)
    warnings = [] if modality_dropout else [f"model input {c} not given: treated as missing (zeros)" for c in contrasts if c not in given]
    return warnings + [f"{c} given but the model does not use it" for c in sorted(given - set(contrasts))]
