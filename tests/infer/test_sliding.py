"""Sliding-window inference and postprocessing on crafted inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mslesion.infer.sliding import predict_probability
from mslesion.postprocess.lesions import binarise, lesion_table
from mslesion.space.boxes import brain_bbox


class Identity(nn.Module):
    """Returns its first channel as logits: the probability is sigmoid(image)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :1]


def test_sliding_window_reproduces_a_pointwise_network_everywhere_in_the_brain() -> None:
    rng = np.random.default_rng(0)
    image = rng.normal(size=(2, 30, 37, 26)).astype(np.float32)
    brain = np.zeros((30, 37, 26), bool)
    brain[3:27, 4:33, 2:24] = True
    for blend in ("gaussian", "constant"):
        for flips in (1, 2, 4):
            prob = predict_probability(Identity(), image, brain, (16, 16, 16), overlap=0.5, blend=blend, flips=flips)
            expected = 1 / (1 + np.exp(-image[0]))
            np.testing.assert_allclose(prob[brain], expected[brain], atol=1e-5)


def test_brain_bbox_grows_to_one_patch_and_stays_inside() -> None:
    brain = np.zeros((40, 40, 40), bool)
    brain[18:21, 18:21, 0:3] = True
    box = brain_bbox(brain, margin=2, patch_size=(16, 16, 16))
    assert all(s.stop - s.start == 16 for s in box)
    assert all(0 <= s.start and s.stop <= 40 for s in box)
    assert box[2].start == 0


def test_binarise_removes_lesions_of_at_most_min_volume() -> None:
    prob = np.zeros((20, 20, 20), np.float32)
    prob[2:4, 2:4, 2] = 0.9  # 4 voxels of 0.5 mm^3 = 2 mm^3 -> removed (<= 3 mm^3)
    prob[10:14, 10:14, 10] = 0.9  # 16 voxels = 8 mm^3 -> kept
    prob[15, 15, 15] = 0.4  # below threshold
    mask = binarise(prob, threshold=0.5, min_lesion_mm3=3.0, voxel_volume_mm3=0.5)
    assert mask.sum() == 16 and mask[10, 10, 10] == 1 and mask[2, 2, 2] == 0


def test_binarise_drops_lesions_of_low_mean_probability_and_keeps_the_extent_of_the_rest() -> None:
    prob = np.zeros((20, 20, 20), np.float32)
    prob[2:5, 2:5, 2:5] = 0.55  # faint everywhere: mean 0.55 -> dropped
    prob[10:13, 10:13, 10:13] = 0.55
    prob[11, 11, 11] = 0.99  # a confident core with a faint rim: mean 0.57 -> kept at 0.55, dropped at 0.6
    prob[15:18, 15:18, 15:18] = 0.95  # confident: kept
    mask = binarise(prob, 0.5, 0.0, 1.0, min_mean_probability=0.56)
    assert mask[3, 3, 3] == 0 and mask[10, 10, 10] == 1 and mask[16, 16, 16] == 1
    assert mask.sum() == 54  # the kept lesions whole, rims included: not a higher voxel threshold
    assert binarise(prob, 0.5, 0.0, 1.0, min_mean_probability=0.6).sum() == 27
    assert binarise(prob, 0.5, 0.0, 1.0).sum() == 81  # off by default


def test_lesion_table_volumes_and_world_centroids() -> None:
    mask = np.zeros((10, 10, 10), np.uint8)
    mask[1:3, 1:3, 1:3] = 1  # 8 voxels, centroid (1.5, 1.5, 1.5)
    mask[6, 6, 6:9] = 1  # 3 voxels, centroid (6, 6, 7)
    affine = np.array([[-2.0, 0, 0, 10], [0, 1, 0, 0], [0, 0, 3, -5], [0, 0, 0, 1]])
    first, second = lesion_table(mask, affine)
    assert (first.voxels, second.voxels) == (8, 3)
    assert first.volume_ml == pytest.approx(8 * 6 / 1000)
    assert (first.centroid_x_mm, first.centroid_y_mm, first.centroid_z_mm) == pytest.approx((7.0, 1.5, -0.5))
    assert (second.centroid_i, second.centroid_j, second.centroid_k) == pytest.approx((6, 6, 7))
