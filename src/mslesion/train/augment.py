"""Patch augmentation: MONAI's spatial and intensity transforms, plus two it lacks.

Hand-written (MONAI has no equivalent):
- `RandImageQualityd`: DeepLesionBrain's image-quality augmentation (Kamraoui et al. 2022):
  at each draw one of Gaussian blur (sigma in [0.5, 1.75]), unsharp masking with the inverse
  of that blur (x + (x - blur(x))), or an axial mean filter of 1x1xsz voxels (sz in 2, 3, 4:
  thick-slice simulation); the label is unchanged.
- `RandThickSlicesd`: a thick-slice acquisition resampled back to 1 mm, as a clinical 2D FLAIR
  reaches the model (SynthSeg's resolution randomisation along one axis): each slice of
  thickness t (uniform in [1.5, 6] mm, random offset) is the mean of the 1 mm voxels it covers,
  and the 1 mm grid is linearly interpolated between slice centres. The axial mean filter above
  only blurs; this also removes what lies between slices, as the raw ISBI FLAIR (4.4 mm) does.
- `RandBrainHistogramShiftd`: MONAI's RandHistogramShift (a random monotone piecewise-linear
  intensity curve) applied per channel to brain voxels only: MONAI's maps the background too,
  and a brain whose outside is no longer 0 is never seen at inference. It changes the grey /
  white matter / lesion contrast, which differs between scanners (on the raw ISBI FLAIR the
  cortex is bright enough to be taken for lesions by a model trained on one scanner).
- `RandModalityDropoutd`: zero whole input channels (never all of them, FLAIR kept when
  `keep_first`), so one model accepts any subset of its contrasts, FLAIR alone included.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
from monai.transforms import MapTransform, RandomizableTransform
from scipy import ndimage

from mslesion.train.config import AugmentConfig

BLUR_SIGMA_RANGE = (0.5, 1.75)
AXIAL_SIZES = (2, 3, 4)


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of each channel of a (C, D, H, W) array."""
    return np.stack([ndimage.gaussian_filter(c, sigma) for c in image]).astype(image.dtype)


def unsharp(image: np.ndarray, sigma: float) -> np.ndarray:
    """Unsharp masking: add back the detail a blur of `sigma` removes (inverse of the blur)."""
    return (2.0 * image - blur(image, sigma)).astype(image.dtype)


def axial_mean(image: np.ndarray, size: int) -> np.ndarray:
    """Mean over `size` neighbouring axial slices (last array axis), centred: a thick-slice acquisition.

    An even size is centred too (size 2: weights 1/4, 1/2, 1/4 over slices i-1, i, i+1); a
    plain uniform filter of even size would move the image half a voxel against its label.
    """
    if size <= 1:
        return image
    weights = np.ones(size + 1 - size % 2, dtype=np.float32)
    if size % 2 == 0:
        weights[[0, -1]] = 0.5
    return ndimage.convolve1d(image, weights / weights.sum(), axis=-1, mode="nearest").astype(image.dtype)


THICKNESS_RANGE_MM = (1.5, 6.0)


def thick_slices(image: np.ndarray, thickness: float, offset: float) -> np.ndarray:
    """(C, D, H, W) `image` (1 mm voxels) acquired in slices of `thickness` voxels along the last
    axis, starting at `offset` in [0, thickness), then linearly interpolated back onto every voxel."""
    n = image.shape[-1]
    # Slice k covers [offset + (k-1) t, offset + k t): the box-profile mean of those voxels.
    edges = offset - thickness + thickness * np.arange(int(np.ceil((n - offset) / thickness)) + 2)
    centres = (edges[:-1] + edges[1:]) / 2 - 0.5
    cumulative = np.concatenate([np.zeros((*image.shape[:-1], 1), image.dtype), np.cumsum(image, axis=-1)], axis=-1)

    def integral(x: np.ndarray) -> np.ndarray:  # sum of the voxels in [0, x), linear inside a voxel
        x = np.clip(x, 0, n)
        lo = np.minimum(np.floor(x).astype(int), n - 1)
        return cumulative[..., lo] + (x - lo) * (cumulative[..., lo + 1] - cumulative[..., lo])

    lo_edge, hi_edge = np.clip(edges[:-1], 0, n), np.clip(edges[1:], 0, n)
    width = np.maximum(hi_edge - lo_edge, 1e-6)
    slices = (integral(hi_edge) - integral(lo_edge)) / width
    voxel = np.arange(n)
    k = np.clip(np.searchsorted(centres, voxel, side="right") - 1, 0, len(centres) - 2)
    w = np.clip((voxel - centres[k]) / (centres[k + 1] - centres[k]), 0.0, 1.0)
    return (slices[..., k] * (1 - w) + slices[..., k + 1] * w).astype(image.dtype)


def histogram_shift(image: np.ndarray, rng: np.random.RandomState, n_points: int = 8) -> np.ndarray:
    """Each channel's non-zero (brain) voxels through its own random monotone piecewise-linear curve
    between their min and max (MONAI's control points: each inner point moved by up to half a step)."""
    out = image.copy()
    for c, channel in enumerate(image):
        inside = channel != 0
        if inside.sum() < 2:
            continue
        values = channel[inside]
        lo, hi = float(values.min()), float(values.max())
        if hi <= lo:
            continue
        xp = np.linspace(lo, hi, n_points)
        fp = xp.copy()
        step = (hi - lo) / (n_points - 1)
        fp[1:-1] += rng.uniform(-0.5, 0.5, n_points - 2) * step
        out[c][inside] = np.interp(values, xp, np.sort(fp))
    return out


class RandImageTransformd(RandomizableTransform, MapTransform):
    """A random transform of the 'image' entry only (labels untouched), applied with `prob`."""

    def __init__(self, prob: float) -> None:
        RandomizableTransform.__init__(self, prob)
        MapTransform.__init__(self, keys=["image"])


class RandImageQualityd(RandImageTransformd):
    """DeepLesionBrain's image-quality augmentation on 'image' (see module docstring)."""

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        self.randomize(None)
        if not self._do_transform:
            return d
        kind = self.R.randint(3)
        image = np.asarray(d["image"])
        if kind == 2:
            d["image"] = axial_mean(image, int(self.R.choice(AXIAL_SIZES)))
        else:
            sigma = float(self.R.uniform(*BLUR_SIGMA_RANGE))
            d["image"] = blur(image, sigma) if kind == 0 else unsharp(image, sigma)
        return d


class RandThickSlicesd(RandImageTransformd):
    """A thick-slice acquisition along the last axis, back on 1 mm (see module docstring)."""

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        self.randomize(None)
        if not self._do_transform:
            return d
        thickness = float(self.R.uniform(*THICKNESS_RANGE_MM))
        d["image"] = thick_slices(np.asarray(d["image"]), thickness, float(self.R.uniform(0, thickness)))
        return d


class RandBrainHistogramShiftd(RandImageTransformd):
    """A random intensity curve per channel, brain voxels only (see module docstring)."""

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        self.randomize(None)
        if self._do_transform:
            d["image"] = histogram_shift(np.asarray(d["image"]), self.R)
        return d


class RandModalityDropoutd(RandImageTransformd):
    """Zero a random non-empty subset of the channels other than the first (FLAIR)."""

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        self.randomize(None)
        image = np.asarray(d["image"])
        if not self._do_transform or image.shape[0] < 2:
            return d
        drop = self.R.rand(image.shape[0] - 1) < 0.5
        if not drop.any():
            drop[self.R.randint(len(drop))] = True
        image = image.copy()
        image[1:][drop] = 0.0
        d["image"] = image
        return d


def make_transforms(cfg: AugmentConfig, n_channels: int):
    """A MONAI Compose over {'image', 'label'} dicts of numpy (C, D, H, W) patches (picklable, so
    DataLoader worker processes can run it)."""
    from monai.transforms import (
        Compose,
        Rand3DElasticd,
        RandAdjustContrastd,
        RandAffined,
        RandBiasFieldd,
        RandFlipd,
        RandGaussianNoised,
    )

    keys = ["image", "label"]
    steps: list[MapTransform] = [RandFlipd(keys, prob=cfg.flip, spatial_axis=axis) for axis in range(3)] if cfg.flip > 0 else []
    if cfg.affine > 0:
        steps.append(
            RandAffined(
                keys,
                prob=cfg.affine,
                rotate_range=(0.26, 0.26, 0.26),
                scale_range=(0.1, 0.1, 0.1),
                mode=("bilinear", "nearest"),
                padding_mode="zeros",
            )
        )
    if cfg.elastic > 0:
        steps.append(
            Rand3DElasticd(
                keys, prob=cfg.elastic, sigma_range=(6, 8), magnitude_range=(50, 120), mode=("bilinear", "nearest"), padding_mode="zeros"
            )
        )
    if cfg.image_quality > 0:
        steps.append(RandImageQualityd(cfg.image_quality))
    if cfg.thick_slices > 0:
        steps.append(RandThickSlicesd(cfg.thick_slices))
    if cfg.histogram_shift > 0:
        steps.append(RandBrainHistogramShiftd(cfg.histogram_shift))
    if cfg.gamma > 0:
        steps.append(RandAdjustContrastd(["image"], prob=cfg.gamma, gamma=(0.7, 1.5)))
    if cfg.bias_field > 0:
        steps.append(RandBiasFieldd(["image"], prob=cfg.bias_field, coeff_range=(0.0, 0.3)))
    if cfg.noise > 0:
        steps.append(RandGaussianNoised(["image"], prob=cfg.noise, std=0.1))
    if cfg.modality_dropout > 0 and n_channels > 1:
        steps.append(RandModalityDropoutd(cfg.modality_dropout))
    return Compose(steps, map_items=False)


def augment_batch(transforms, items: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """Apply `transforms` to each patch; randomness comes only from `seed` (exact resume)."""
    transforms.set_random_state(seed=seed % (2**32))
    out = []
    for item in items:
        d = transforms({k: item[k] for k in ("image", "label")})
        out.append({**item, **{k: np.asarray(d[k], dtype=np.float32) for k in ("image", "label")}})
    return out
