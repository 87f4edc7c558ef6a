"""Convolutional encoder network (CEN) of Brosch et al., with its lesion prior and threshold tuning.

Brosch, Yoo, Li, Traboulsee, Tam, "Deep convolutional encoder networks for multiple
sclerosis lesion segmentation", MICCAI 2015, and Brosch, Tang, Yoo, Li, Traboulsee, Tam,
"Deep 3D convolutional encoder networks with shortcuts for multiscale feature integration
applied to multiple sclerosis lesion segmentation", IEEE TMI 35(5):1229-1239, 2016.

The CEN is one valid 3D convolution (32 filters of 9x9x9, ReLU) followed by one full
3D deconvolution (transposed convolution, 9x9x9, one output channel): the convolution
shrinks each axis by k - 1 voxels and the full deconvolution grows it back, so the output
has the size of the input for any input of at least k voxels per axis. The papers apply a
sigmoid to the output; here the network returns logits (sigmoid applied outside, as in
every network of the toolkit) and is trained with the sensitivity-specificity loss
(`mslesion.losses.make_loss("sensitivity_specificity", r=0.05)`).

Optional extra input channel: a lesion prior in MNI space, the square root of the mean of
binary lesion masks (`lesion_prior`), and the decision threshold chosen to maximise the
Dice on the training set (`tune_threshold`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mslesion.errors import InputError

DEFAULT_THRESHOLD_GRID = np.linspace(0.05, 0.95, 19)


class ConvolutionalEncoderNetwork(nn.Module):
    """One valid convolution + ReLU, one full deconvolution: (N, C, D, H, W) -> (N, 1, D, H, W) logits.

    Parameters: in_channels * filters * k^3 + filters (convolution) + filters * k^3 + 1
    (deconvolution). Inputs need at least `kernel` voxels per axis.
    """

    def __init__(self, in_channels: int, filters: int = 32, kernel: int = 9) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("filters", filters), ("kernel", kernel)):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.kernel = int(kernel)
        self.encoder = nn.Conv3d(in_channels, filters, kernel_size=kernel, padding=0)
        self.activation = nn.ReLU()
        self.decoder = nn.ConvTranspose3d(filters, 1, kernel_size=kernel, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5:
            raise ValueError(f"input must be (N, C, D, H, W), got shape {tuple(x.shape)}")
        if min(x.shape[2:]) < self.kernel:
            raise ValueError(f"every spatial size must be at least the kernel size {self.kernel}, got {tuple(x.shape[2:])}")
        return self.decoder(self.activation(self.encoder(x)))


def build_cen(in_channels: int, filters: int = 32, kernel: int = 9) -> ConvolutionalEncoderNetwork:
    """Brosch et al.'s CEN (MICCAI 2015 / TMI 2016): 32 filters of 9x9x9, output size == input size.

    With 2 inputs (e.g. FLAIR + lesion prior) and the defaults it has
    2*32*729 + 32 + 32*729 + 1 = 70,017 parameters.
    """
    return ConvolutionalEncoderNetwork(in_channels, filters=filters, kernel=kernel)


def lesion_prior(masks: Sequence[np.ndarray]) -> np.ndarray:
    """Square root of the voxel-wise lesion frequency of binary masks on one grid (float32).

    Brosch et al. use sqrt(mean(masks)) in MNI space as an extra input channel: the square
    root lifts the rare, low frequencies of the periphery. Any non-zero voxel is lesion.
    """
    if len(masks) == 0:
        raise ValueError("lesion_prior needs at least one mask")
    total = np.zeros(np.shape(masks[0]), dtype=np.float64)
    for index, mask in enumerate(masks):
        binary = np.asarray(mask) != 0
        if binary.shape != total.shape:
            raise ValueError(f"mask {index} has shape {binary.shape}, mask 0 has {total.shape}")
        total += binary
    return np.sqrt(total / len(masks)).astype(np.float32)


def lesion_prior_from_folder(folder: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """`lesion_prior` of every `*.nii.gz` mask in `folder` (sorted by name), and their common affine.

    All masks must share one grid (shape and affine, as `Volume.same_grid`); the first file
    that differs from the first mask raises InputError. Masks are summed one at a time,
    so memory does not grow with their number.
    """
    from mslesion.io.volume import load_volume

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "not a folder of lesion masks")
    paths = sorted(folder.glob("*.nii.gz"))
    if not paths:
        raise InputError(folder, "contains no *.nii.gz lesion mask")
    first = load_volume(paths[0])
    total = np.zeros(first.shape, dtype=np.float64)
    for path in paths:
        volume = first if path == paths[0] else load_volume(path)
        if not volume.same_grid(first):
            raise InputError(
                path,
                f"grid {volume.shape} differs from {paths[0].name} {first.shape} (shape or affine); "
                "register every mask to the same (MNI) space",
            )
        total += volume.array != 0
        volume.release()
    return np.sqrt(total / len(paths)).astype(np.float32), first.affine.copy()


def _dice_per_threshold(probability: np.ndarray, reference: np.ndarray, grid: np.ndarray, empty_dice: float) -> np.ndarray:
    """Dice of `probability > t` against `reference` for every t of `grid` (both empty: `empty_dice`)."""
    lesion = np.asarray(reference) != 0
    prob = np.asarray(probability, dtype=np.float64).ravel()
    inside, outside = np.sort(prob[lesion.ravel()]), np.sort(prob[~lesion.ravel()])
    # voxels above t, counted by binary search instead of one pass over the volume per threshold
    tp = inside.size - np.searchsorted(inside, grid, side="right")
    fp = outside.size - np.searchsorted(outside, grid, side="right")
    denominator = 2 * tp + fp + (inside.size - tp)
    return np.where(denominator == 0, empty_dice, 2 * tp / np.maximum(denominator, 1))


def tune_threshold(
    probabilities: Sequence[np.ndarray],
    references: Sequence[np.ndarray],
    grid: Sequence[float] | np.ndarray = DEFAULT_THRESHOLD_GRID,
    empty_dice: float = 1.0,
) -> tuple[float, float]:
    """(threshold, mean Dice): the `grid` value whose mask `probability > threshold` maximises the
    mean per-case Dice over the cases (Brosch et al. 2016 choose it on the training set).

    A case whose reference and thresholded prediction are both empty counts `empty_dice`
    (default 1.0: predicting nothing on a lesion-free case is right). Ties go to the
    smallest threshold.
    """
    if len(probabilities) != len(references):
        raise ValueError(f"{len(probabilities)} probability maps but {len(references)} references")
    if len(probabilities) == 0:
        raise ValueError("tune_threshold needs at least one case")
    thresholds = np.asarray(grid, dtype=np.float64).ravel()
    if thresholds.size == 0 or not np.all(np.isfinite(thresholds)):
        raise ValueError("grid must hold at least one finite threshold")
    scores = np.zeros(thresholds.size)
    for index, (probability, reference) in enumerate(zip(probabilities, references, strict=True)):
        if np.shape(probability) != np.shape(reference):
            raise ValueError(f"case {index}: probability shape {np.shape(probability)} differs from reference {np.shape(reference)}")
        scores += _dice_per_threshold(probability, reference, thresholds, empty_dice)
    scores /= len(probabilities)
    best = int(np.argmax(scores))
    return float(thresholds[best]), float(scores[best])
