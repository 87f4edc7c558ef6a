"""The way from the input grid to the model's grid, recorded on the way in, and its one inverse.

As TorchIO's `Subject.get_inverse_transform`: whatever a path did to reach the model's grid
is recorded in a `Geometry` while it is done, and `Geometry.to_input` undoes it for every path:

- raw scans: preprocessed onto the MNI working grid (`preprocess.raw`, `preprocess.pair`); back
  through the registration (`Preprocessing.to_native`);
- ready scans on other voxels than the model's: resampled to the model's voxel size
  (`model_spacing_grid`), as nnU-Net does; back by the opposite resampling;
- ready scans on the model's voxels, and regional models (their regions are fixed on the model's
  MNI grid, so they are never resampled): nothing to undo.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from nibabel.affines import voxel_sizes

from mslesion.io.volume import Volume
from mslesion.space.grid import WORKING_AFFINE, on_mni_grid

# Inputs whose voxels differ from the model's by more than this (mm, any axis) are resampled to
# the model's voxel size for inference and the probabilities brought back, as nnU-Net does.
SPACING_TOLERANCE_MM = 0.2


def model_spacing_grid(
    affine: np.ndarray, shape: tuple[int, ...], spacing_mm: tuple[float, ...]
) -> tuple[np.ndarray, tuple[int, int, int]] | None:
    """The input's field of view at the model's voxel size (affine, shape); None when the voxels already match.

    Same orientation and the same outer corner of the field of view; each axis gets
    ceil(n * s / t) voxels of size t (s: input voxel size, t: the model's).
    """
    current = voxel_sizes(np.asarray(affine, float))
    if all(abs(s - t) <= SPACING_TOLERANCE_MM for s, t in zip(current, spacing_mm)):
        return None
    factor = np.asarray(spacing_mm, float) / current
    to_input_voxels = np.eye(4)
    to_input_voxels[:3, :3] = np.diag(factor)
    to_input_voxels[:3, 3] = -0.5 + 0.5 * factor  # voxel j's centre, in input voxel coordinates
    new_shape = tuple(int(np.ceil(n / f - 1e-6)) for n, f in zip(shape[:3], factor))
    return np.asarray(affine, float) @ to_input_voxels, new_shape  # type: ignore[return-value]


class Preprocessing(Protocol):
    """What the raw-scan preprocessing hands back (`preprocess.raw.Preprocessed`, `preprocess.pair.PreprocessedPair`)."""

    images: dict[str, np.ndarray]  # on the working grid
    brain: np.ndarray  # on the working grid
    qc: dict[str, Any]
    warnings: list[str]

    @property
    def native_brain(self) -> np.ndarray: ...

    @property
    def mni_to_flair(self) -> np.ndarray: ...

    def to_native(self, array: np.ndarray, is_label: bool) -> np.ndarray: ...


@dataclass(frozen=True)
class Geometry:
    """How the model's arrays were made from the input grid (`reference`), and the way back (`to_input`).

    `brain` is on the input grid, `model_brain` on the model's. At most one of `preprocessed`
    (raw scans) and `resampled` (ready scans on other voxels: the model-spacing grid's affine and
    shape) is set. `spacing_mismatch`: ready input whose voxels differ from the model's, resampled
    unless the model cannot be (a regional model: it only warns).
    """

    reference: Volume
    brain: np.ndarray
    model_brain: np.ndarray
    preprocessed: Preprocessing | None = None
    resampled: tuple[np.ndarray, tuple[int, int, int]] | None = None
    spacing_mismatch: bool = False

    @property
    def model_spacing(self) -> tuple[float, ...]:
        """The voxel size (mm) of the model's grid."""
        if self.preprocessed is not None:
            return tuple(float(s) for s in voxel_sizes(WORKING_AFFINE))
        if self.resampled is not None:
            return tuple(float(s) for s in voxel_sizes(self.resampled[0]))
        return self.reference.spacing

    @property
    def on_working_grid(self) -> bool:
        """Whether the model's grid is the MNI working grid (where the MNI priors apply)."""
        if self.preprocessed is not None:
            return True
        return self.resampled is None and on_mni_grid(self.reference.shape, self.reference.affine)

    @property
    def to_mni(self) -> np.ndarray | None:
        """World (input) -> MNI, from the registration of preprocessed scans; None for ready ones."""
        return None if self.preprocessed is None else np.linalg.inv(self.preprocessed.mni_to_flair)

    def to_input(self, array: np.ndarray, is_label: bool = False) -> np.ndarray:
        """`array` on the model's grid brought onto the input grid: the inverse of what was recorded.

        Probabilities (zeroed outside the model's brain, in place) are interpolated linearly,
        clipped to [0, 1] and zeroed outside the input brain; they are thresholded afterwards, on
        the input grid, so thin lesions survive thick slices. Labels (bool) go by nearest neighbour.
        """
        from mslesion.preprocess.resample import resample

        ref = self.reference
        if is_label:
            if self.resampled is not None:
                array = resample(array.astype(np.uint8), self.resampled[0], ref.affine, ref.shape, is_label=True) > 0
            if self.preprocessed is not None:
                array = self.preprocessed.to_native(array.astype(np.uint8), is_label=True) > 0
            return array
        array[~self.model_brain] = 0.0
        if self.resampled is not None:
            array = np.clip(resample(array, self.resampled[0], ref.affine, ref.shape), 0.0, 1.0)
            array[~self.brain] = 0.0
        if self.preprocessed is not None:
            array = np.clip(self.preprocessed.to_native(array, is_label=False), 0.0, 1.0)
            array[~self.brain] = 0.0
        return array


def record_geometry(
    reference: Volume,
    images: dict[str, np.ndarray],
    brain: np.ndarray,
    spacing_mm: tuple[float, ...] | None,
    preprocessed: Preprocessing | None = None,
    resample: bool = True,
) -> tuple[dict[str, np.ndarray], Geometry]:
    """The model's images and the `Geometry` that made them.

    With `preprocessed`, its working-grid images and brain. Else `images` and `brain` are on the
    input grid and are resampled to `spacing_mm` (None: a method without a voxel size of its own)
    when the voxels differ by more than SPACING_TOLERANCE_MM and `resample` allows it.
    """
    if preprocessed is not None:
        return preprocessed.images, Geometry(reference, preprocessed.native_brain, preprocessed.brain, preprocessed=preprocessed)
    grid = None if spacing_mm is None else model_spacing_grid(reference.affine, reference.shape, spacing_mm)
    if grid is None or not resample:
        return images, Geometry(reference, brain, brain, spacing_mismatch=grid is not None)
    from mslesion.preprocess.resample import resample as resample_array

    model_images = {name: resample_array(array, reference.affine, *grid) for name, array in images.items()}
    model_brain = resample_array(brain.astype(np.uint8), reference.affine, *grid, is_label=True) > 0
    return model_images, Geometry(reference, brain, model_brain, resampled=grid, spacing_mismatch=True)
