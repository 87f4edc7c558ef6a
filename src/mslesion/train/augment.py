"""Patch augmentation: MONAI's spatial and intensity transforms, plus two it lacks.

Hand-written (MONAI has no equivalent):
- `RandImageQualityd`: DeepLesionBrain's image-quality augmentation (Kamraoui et al. 2022):
  at each draw one of Gaussian blur (sigma in [0.5, 1.75]), unsharp masking with the inverse
  of that blur (x + (x - blur(x))), or an axial mean filter of 1x1xsz voxels (sz in 2, 3, 4:
  thick-slice simulation); the label is unchanged.
- `RandModalityDropoutd`: zero whole input channels (never all of them, FLAIR kept when
  `keep_first`), so one model accepts any subset of its contrasts, FLAIR alone included.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
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


def _monai_base():
    from monai.transforms import MapTransform, RandomizableTransform

    return MapTransform, RandomizableTransform


def make_transforms(cfg: AugmentConfig, n_channels: int):
    """A MONAI Compose over {'image', 'label'} dicts of numpy (C, D, H, W) patches."""
    from monai.transforms import (
        Compose,
        RandAdjustContrastd,
        RandAffined,
        RandBiasFieldd,
        RandFlipd,
        RandGaussianNoised,
        Rand3DElasticd,
    )

    MapTransform, RandomizableTransform = _monai_base()

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

    keys = ["image", "label"]
    steps = [RandFlipd(keys, prob=cfg.flip, spatial_axis=axis) for axis in range(3)] if cfg.flip > 0 else []
    if cfg.affine > 0:
        steps.append(
            RandAffined(keys, prob=cfg.affine, rotate_range=(0.26, 0.26, 0.26), scale_range=(0.1, 0.1, 0.1),
                        mode=("bilinear", "nearest"), padding_mode="zeros")
        )
    if cfg.elastic > 0:
        steps.append(
            Rand3DElasticd(keys, prob=cfg.elastic, sigma_range=(6, 8), magnitude_range=(50, 120),
                           mode=("bilinear", "nearest"), padding_mode="zeros")
        )
    if cfg.image_quality > 0:
        steps.append(RandImageQualityd(cfg.image_quality))
    if cfg.gamma > 0:
        steps.append(RandAdjustContrastd(["image"], prob=cfg.gamma, gamma=(0.7, 1.5)))
    if cfg.bias_field > 0:
        steps.append(RandBiasFieldd(["image"], prob=cfg.bias_field, coeff_range=(0.0, 0.3)))
    if cfg.noise > 0:
        steps.append(RandGaussianNoised(["image"], prob=cfg.noise, std=0.1))
    if cfg.modality_dropout > 0 and n_channels > 1:
        steps.append(RandModalityDropoutd(cfg.modality_dropout))
    return Compose(steps, map_items=False)


def augment_batch(transforms, items: list[dict[str, np.ndarray]], seed: int) -> list[dict[str, np.ndarray]]:
    """Apply `transforms` to each patch; randomness comes only from `seed` (exact resume)."""
    transforms.set_random_state(seed=seed % (2**32))
    out = []
    for item in items:
        d = transforms({k: item[k] for k in ("image", "label")})
        out.append({**item, **{k: np.asarray(d[k], dtype=np.float32) for k in ("image", "label")}})
    return out
