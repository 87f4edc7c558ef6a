"""Unsupervised new-lesion baseline: subtract the baseline FLAIR from the follow-up and threshold.

The classic subtraction approach to new MS lesions (e.g. Battaglini et al., "Automated
identification of brain new lesions in multiple sclerosis using subtraction images",
JMRI 2014; Ganiler et al., "A subtraction pipeline for automatic detection of new
appearing multiple sclerosis lesions in longitudinal studies", Neuroradiology 2014):
both images, co-registered and intensity-matched, are lightly smoothed and subtracted;
a voxel is a new-lesion candidate when

1. the difference, minus its local mean (Gaussian of `background_mm`: what bias
   correction left differs between visits over centimetres) and then centred on its
   median and divided by its robust sd (1.4826 x MAD) inside the eroded brain, is at
   least `difference_sd`;
2. the follow-up is itself hyperintense: its z-score against the brain (mean and sd of
   the smoothed follow-up inside the brain) is at least `min_followup_z`;
3. (with a white-matter prior) its connected candidate region touches the prior dilated
   by `wm_dilation_mm`;
4. its connected candidate region does not touch a lesion present at both visits
   (baseline and follow-up z-scores >= `baseline_lesion_z` over more than 3 mm^3; None
   skips this test): such a region is the growth rim of an enlarging lesion, which
   MSSEG-2 does not count as new;
5. it lies inside the brain eroded by `brain_erosion_mm`.

`subtraction_probability` turns this into a probability-like score: the smaller of two
logistic functions (of the difference and of the follow-up z-score, width `softness`),
forced above 0.5 exactly where a voxel passes every test and below 0.5 elsewhere, so
`postprocess.lesions.binarise(score, 0.5, ...)` returns exactly the candidates. The
minimum lesion size is left to `binarise`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
from scipy import ndimage

from mslesion.components import label_components, min_voxels_above, touched_components
from mslesion.space.boxes import bounding_box_or_none

# Just below and just above 0.5 in float32: the score's two sides of the decision.
_BELOW = np.nextafter(np.float32(0.5), np.float32(0.0))
_ABOVE = np.nextafter(np.float32(0.5), np.float32(1.0))
MAD_TO_SD = 1.4826
OPTIONAL_FIELDS = {"baseline_lesion_z"}  # None switches the test off
STABLE_LESION_MM3 = 3.0  # a lesion present at both visits is larger than this (MSSEG-2's smallest counted lesion)


@dataclass(frozen=True)
class SubtractionParams:
    """Settings of the subtraction baseline (lengths in mm, thresholds in sd units)."""

    sigma_mm: float = 0.75
    background_mm: float = 10.0
    difference_sd: float = 3.5
    min_followup_z: float = 1.5
    wm_dilation_mm: float = 3.0
    baseline_lesion_z: float | None = 2.0
    brain_erosion_mm: float = 2.5
    softness: float = 0.5

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and f.name in OPTIONAL_FIELDS:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
                raise ValueError(f"SubtractionParams.{f.name} must be a finite number, got {value!r}")
            object.__setattr__(self, f.name, float(value))
        for name in ("sigma_mm", "background_mm", "wm_dilation_mm", "brain_erosion_mm"):
            if getattr(self, name) < 0:
                raise ValueError(f"SubtractionParams.{name} must be >= 0, got {getattr(self, name)}")
        if self.softness <= 0:
            raise ValueError(f"SubtractionParams.softness must be > 0, got {self.softness}")

    def to_dict(self) -> dict[str, float | None]:
        """The parameters as a JSON/YAML-safe dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SubtractionParams:
        """Inverse of `to_dict`; missing keys keep their defaults, unknown keys are a ValueError."""
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown SubtractionParams field(s): {', '.join(unknown)}")
        return cls(**data)


def _smooth(image: np.ndarray, brain: np.ndarray, sigma_vox: tuple[float, ...], truncate: float = 4.0) -> np.ndarray:
    """Gaussian smoothing inside the brain only (normalised convolution): the background does not bleed in."""
    if max(sigma_vox) <= 0:
        return image.astype(np.float32, copy=True)
    weight = ndimage.gaussian_filter(brain.astype(np.float32), sigma_vox, mode="nearest", truncate=truncate)
    smooth = ndimage.gaussian_filter(np.where(brain, image, 0).astype(np.float32), sigma_vox, mode="nearest", truncate=truncate)
    return np.where(weight > 1e-3, smooth / np.maximum(weight, 1e-3), 0).astype(np.float32)


def _robust_centre_sd(values: np.ndarray, floor: float) -> tuple[float, float]:
    """Median and robust sd (1.4826 x MAD, at least `floor`) of `values`."""
    centre = float(np.median(values))
    return centre, max(MAD_TO_SD * float(np.median(np.abs(values - centre))), floor)


def _logistic(x: np.ndarray) -> np.ndarray:
    return (0.5 * (1.0 + np.tanh(0.5 * x))).astype(np.float32)  # = 1 / (1 + exp(-x)), without overflow


def _check_inputs(
    baseline: np.ndarray, followup: np.ndarray, brain: np.ndarray, spacing_mm: tuple[float, float, float], white_matter: np.ndarray | None
) -> tuple[float, float, float]:
    shapes = {"baseline": np.shape(baseline), "followup": np.shape(followup), "brain": np.shape(brain)}
    if white_matter is not None:
        shapes["white_matter"] = np.shape(white_matter)
    if len(set(shapes.values())) != 1 or len(shapes["baseline"]) != 3:
        raise ValueError(f"3D arrays on one grid are needed, got shapes {shapes}")
    spacing = tuple(float(s) for s in spacing_mm)
    if len(spacing) != 3 or not all(np.isfinite(s) and s > 0 for s in spacing):
        raise ValueError(f"spacing_mm must be three positive voxel sizes, got {spacing_mm!r}")
    return spacing


def subtraction_probability(
    baseline: np.ndarray,
    followup: np.ndarray,
    brain: np.ndarray,
    spacing_mm: tuple[float, float, float],
    params: SubtractionParams | None = None,
    white_matter: np.ndarray | None = None,
) -> np.ndarray:
    """New-lesion score in [0, 1] (float32): >= 0.5 (in fact > 0.5) exactly where a voxel passes every test.

    `baseline` and `followup` are co-registered on one grid of voxel size `spacing_mm` and
    jointly intensity-normalised (z-scored inside the brain, follow-up matched to baseline);
    `brain` is the brain mask there and `white_matter` an optional white-matter prior on
    the same grid. The score is 0 outside the brain eroded by `params.brain_erosion_mm`.
    """
    p = params or SubtractionParams()
    spacing = _check_inputs(baseline, followup, brain, spacing_mm, white_matter)
    brain = np.asarray(brain) > 0
    out = np.zeros(brain.shape, np.float32)
    # Work inside the brain's bounding box, with room for the white-matter dilation: the
    # same result, several times faster on a whole-head grid.
    margin = [int(math.ceil(p.wm_dilation_mm / s)) + 1 for s in spacing]
    box = bounding_box_or_none(brain, margin)
    if box is None:
        return out
    wm = None if white_matter is None else np.asarray(white_matter)[box] > 0
    out[box] = _score(np.asarray(baseline)[box], np.asarray(followup)[box], brain[box], spacing, p, wm)
    return out


def _score(
    baseline: np.ndarray,
    followup: np.ndarray,
    brain: np.ndarray,
    spacing: tuple[float, float, float],
    p: SubtractionParams,
    white_matter: np.ndarray | None,
) -> np.ndarray:
    """`subtraction_probability` on arrays already checked and cropped to the brain."""
    out = np.zeros(brain.shape, np.float32)
    # Erode the brain before thresholding: at its surface a sub-voxel misregistration or a
    # slightly different skull strip moves the steep edge between bright cortex and the dark
    # (zeroed or CSF) outside, and the difference there looks exactly like a new
    # hyperintensity. New lesions in that rim (cortical) are rare and barely visible on
    # FLAIR, so the baseline trades them for not reporting a ring of false positives.
    core = ndimage.distance_transform_edt(brain, sampling=spacing) > p.brain_erosion_mm
    if not core.any():
        return out
    sigma_vox = tuple(p.sigma_mm / s for s in spacing)
    base = _smooth(baseline.astype(np.float32), brain, sigma_vox)
    follow = _smooth(followup.astype(np.float32), brain, sigma_vox)

    # Follow-up z-score against the whole brain: the input's own z-score when inputs come z-scored.
    f_mean, f_sd = float(follow[brain].mean()), float(follow[brain].std())
    f_sd = f_sd if f_sd > 0 else 1.0
    followup_z = (follow - f_mean) / f_sd

    # Difference in robust-sd units: the median removes what the intensity matching left;
    # the MAD ignores the lesions and the residual misregistration in the tails.
    diff = follow - base
    centre, sd = _robust_centre_sd(diff[core], 1e-3 * f_sd)  # floor: identical images would divide by zero
    if p.background_mm > 0:
        # What bias correction left differs between visits over centimetres: remove the
        # difference's local mean (outliers such as lesions clipped so they do not raise it).
        clipped = np.clip(diff, centre - 3 * sd, centre + 3 * sd)
        diff = diff - _smooth(clipped, core, tuple(p.background_mm / s for s in spacing), truncate=2.5)
        centre, sd = _robust_centre_sd(diff[core], 1e-3 * f_sd)
    diff_sd = (diff - centre) / sd

    score = np.minimum(_logistic((diff_sd - p.difference_sd) / p.softness), _logistic((followup_z - p.min_followup_z) / p.softness))
    passed = core & (diff_sd >= p.difference_sd) & (followup_z >= p.min_followup_z)
    if passed.any() and (white_matter is not None or p.baseline_lesion_z is not None):
        labels, n = label_components(passed, 26)
        keep = np.ones(n + 1, bool)
        if white_matter is not None:
            near_wm = ndimage.distance_transform_edt(~white_matter, sampling=spacing) <= p.wm_dilation_mm
            keep &= touched_components(labels, n, near_wm)
        if p.baseline_lesion_z is not None:
            # A candidate touching a lesion present at both visits is the growth rim of an
            # existing lesion: not new in MSSEG-2's sense (a new lesion shares no voxel with a
            # baseline lesion). "Present at both visits" (not just bright at baseline) and a
            # minimum size keep single noise voxels from vetoing everything around them.
            base_z = (base - float(base[brain].mean())) / max(float(base[brain].std()), 1e-12)
            stable = core & (base_z >= p.baseline_lesion_z) & (followup_z >= p.baseline_lesion_z)
            stable_labels, m = label_components(stable, 26)
            big = np.bincount(stable_labels.ravel(), minlength=m + 1) >= min_voxels_above(STABLE_LESION_MM3, float(np.prod(spacing)))
            big[0] = False
            if big.any():
                keep &= ~touched_components(labels, n, ndimage.binary_dilation(big[stable_labels], ndimage.generate_binary_structure(3, 3)))
        keep[0] = False
        passed = keep[labels]
    out[core] = decided(score[core], passed[core])
    return out


def decided(score: np.ndarray, passed: np.ndarray) -> np.ndarray:
    """`score` forced just above 0.5 where `passed` and just below elsewhere (float32), so that
    thresholding at 0.5 (`binarise`) returns exactly the voxels that passed while the score keeps its ranking."""
    return np.where(passed, np.maximum(score, _ABOVE), np.minimum(score, _BELOW)).astype(np.float32)
