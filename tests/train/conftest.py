"""Fixtures shared by the training tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from mslesion.space.grid import FSL_MNI_AFFINE, FSL_MNI_SHAPE
from mslesion.train.data import PreparedCase


@pytest.fixture
def mni_prepared_case() -> Callable[..., PreparedCase]:
    """Factory: a PreparedCase whose brain box (`image`'s shape) starts at `origin` on the FSL MNI 1 mm grid
    (brain = the first channel's non-zero voxels; one lesion component from `label`)."""

    def make(
        case_id: str, image: np.ndarray, label: np.ndarray, origin: tuple[int, int, int], affine: np.ndarray = FSL_MNI_AFFINE
    ) -> PreparedCase:
        return PreparedCase(
            case_id,
            image,
            label,
            image[0] != 0,
            np.ones(image.shape[0], dtype=bool),
            [np.argwhere(label)],
            np.argwhere(image[0] != 0),
            (1.0, 1.0, 1.0),
            origin=origin,
            grid_shape=FSL_MNI_SHAPE,
            affine=affine,
        )

    return make
