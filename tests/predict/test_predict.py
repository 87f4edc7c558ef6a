"""`mslesion.predict`: the geometry recorded on the way to the model's grid and its one inverse."""

from __future__ import annotations

import numpy as np

from mslesion.io.volume import Volume
from mslesion.predict.geometry import record_geometry


def _ball(shape: tuple[int, int, int], radius: float) -> np.ndarray:
    grid = np.indices(shape).transpose(1, 2, 3, 0)
    return np.linalg.norm(grid - (np.asarray(shape) - 1) / 2, axis=-1) < radius


def test_ready_input_on_the_models_voxels_is_not_moved() -> None:
    affine = np.diag([1.0, 1.0, 1.1, 1.0])
    brain = _ball((20, 22, 18), 8)
    reference = Volume.from_array(brain.astype(np.float32), affine)
    images, geometry = record_geometry(reference, {"FLAIR": reference.array}, brain, (1.0, 1.0, 1.0))
    assert images["FLAIR"] is reference.array and geometry.resampled is None and not geometry.spacing_mismatch
    assert geometry.model_spacing == reference.spacing and geometry.to_mni is None
    prob = np.full(brain.shape, 0.7, np.float32)
    back = geometry.to_input(prob)
    assert back is prob and back[~brain].max() == 0.0 and back[brain].min() == np.float32(0.7)


def test_other_voxels_go_to_the_models_size_and_come_back_on_the_input_grid() -> None:
    affine = np.array([[-0.6, 0, 0, 30], [0, 0.6, 0, -20], [0, 0, 0.6, -10], [0, 0, 0, 1]])
    brain = _ball((40, 44, 36), 15)
    reference = Volume.from_array(brain.astype(np.float32) * 100, affine)
    images, geometry = record_geometry(reference, {"FLAIR": reference.array}, brain, (1.0, 1.0, 1.0))
    assert geometry.resampled is not None and images["FLAIR"].shape == geometry.model_brain.shape == (24, 27, 22)
    np.testing.assert_allclose(geometry.model_spacing, (1.0, 1.0, 1.0))
    back = geometry.to_input(np.where(geometry.model_brain, 0.8, 0.3).astype(np.float32))
    assert back.shape == brain.shape and back[~brain].max() == 0.0
    assert abs(float(np.median(back[_ball(brain.shape, 10)])) - 0.8) < 1e-5  # inside, away from the edge: the model's value
    mask = geometry.to_input(geometry.model_brain.copy(), is_label=True)
    assert mask.dtype == bool and mask.shape == brain.shape and (mask & brain).sum() > 0.9 * brain.sum()
    _, regional = record_geometry(reference, {"FLAIR": reference.array}, brain, (1.0, 1.0, 1.0), resample=False)
    assert regional.resampled is None and regional.spacing_mismatch  # a regional model is never resampled, only warned about
