"""Brosch et al.'s CEN: output size, parameter count, lesion prior, threshold tuning, training signal."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mslesion.errors import InputError
from mslesion.losses import make_loss
from mslesion.models.cen import build_cen, lesion_prior, lesion_prior_from_folder, tune_threshold


@pytest.mark.parametrize("shape", [(1, 2, 23, 19, 17), (1, 2, 20, 20, 20), (2, 2, 9, 9, 9)])
def test_output_has_input_size(shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    net = build_cen(in_channels=2).eval()
    with torch.no_grad():
        out = net(torch.randn(shape))
    assert out.shape == (shape[0], 1, *shape[2:])


def test_parameter_count_matches_paper_layers() -> None:
    net = build_cen(in_channels=2)
    # conv: 2 inputs * 32 filters * 9^3 weights + 32 biases; deconv: 32 * 9^3 * 1 + 1 bias
    assert sum(p.numel() for p in net.parameters()) == 2 * 32 * 9**3 + 32 + 32 * 9**3 * 1 + 1 == 70017


def test_input_smaller_than_kernel_is_refused() -> None:
    with pytest.raises(ValueError, match="kernel size 9"):
        build_cen(1)(torch.zeros(1, 1, 8, 20, 20))


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="filters"):
        build_cen(1, filters=0)


def test_lesion_prior_is_sqrt_of_mean() -> None:
    masks = [
        np.array([[[1], [0]], [[1], [1]]], dtype=np.uint8),
        np.array([[[0], [0]], [[1], [1]]], dtype=np.uint8),
        np.array([[[0], [0]], [[5], [0]]], dtype=np.uint8),  # any non-zero is lesion
    ]
    # lesion counts [[1, 0], [3, 2]] of 3 masks -> sqrt(1/3), 0, 1, sqrt(2/3)
    expected = np.array([[[0.57735027], [0.0]], [[1.0], [0.81649658]]], dtype=np.float32)
    prior = lesion_prior(masks)
    assert prior.dtype == np.float32
    np.testing.assert_allclose(prior, expected, atol=1e-7)


def test_lesion_prior_refuses_mixed_shapes() -> None:
    with pytest.raises(ValueError, match="mask 1"):
        lesion_prior([np.zeros((2, 2, 2)), np.zeros((2, 2, 3))])
    with pytest.raises(ValueError, match="at least one"):
        lesion_prior([])


def test_lesion_prior_from_folder(tmp_path, nifti_writer) -> None:
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    a = np.zeros((3, 3, 3), np.uint8)
    a[1, 1, 1] = 1
    b = a.copy()
    b[0, 0, 0] = 1
    nifti_writer(tmp_path / "a.nii.gz", a, affine)
    nifti_writer(tmp_path / "b.nii.gz", b, affine)
    prior, prior_affine = lesion_prior_from_folder(tmp_path)
    assert prior[1, 1, 1] == 1.0
    assert prior[0, 0, 0] == pytest.approx(np.sqrt(0.5))
    assert prior[2, 2, 2] == 0.0
    np.testing.assert_array_equal(prior_affine, affine)


def test_lesion_prior_from_folder_names_first_file_off_grid(tmp_path, nifti_writer) -> None:
    mask = np.zeros((3, 3, 3), np.uint8)
    nifti_writer(tmp_path / "a.nii.gz", mask)
    nifti_writer(tmp_path / "b_shifted.nii.gz", mask, np.diag([1.0, 1.0, 1.5, 1.0]))
    nifti_writer(tmp_path / "c_bigger.nii.gz", np.zeros((4, 3, 3), np.uint8))
    with pytest.raises(InputError, match="b_shifted.nii.gz") as info:
        lesion_prior_from_folder(tmp_path)
    assert info.value.path == tmp_path / "b_shifted.nii.gz"


def test_lesion_prior_from_empty_folder(tmp_path) -> None:
    with pytest.raises(InputError, match="no \\*.nii.gz"):
        lesion_prior_from_folder(tmp_path)


def test_tune_threshold_picks_best_mean_dice() -> None:
    ref = np.array([1, 1, 0, 0])
    probabilities = [np.array([0.92, 0.62, 0.42, 0.22]), np.array([0.7, 0.33, 0.28, 0.1])]
    # case 1: t in [0.22, 0.42) -> 3 voxels, Dice 4/5; [0.42, 0.62) -> Dice 1; [0.62, 0.92) -> 2/3
    # case 2: t in [0.10, 0.28) -> 4/5; [0.28, 0.33) -> 1; [0.33, 0.70) -> 2/3
    # mean at 0.30: (0.8 + 1) / 2 = 0.9, the maximum (0.45-0.60 give (1 + 2/3) / 2 = 0.833)
    threshold, dice = tune_threshold(probabilities, [ref, ref])
    assert threshold == pytest.approx(0.30)
    assert dice == pytest.approx(0.9)


def test_tune_threshold_empty_reference_rule() -> None:
    probability, reference = np.array([0.2, 0.58]), np.array([0, 0])
    # any voxel predicted -> Dice 0; from t = 0.60 nothing is predicted -> empty_dice
    assert tune_threshold([probability], [reference]) == pytest.approx((0.60, 1.0))
    threshold, dice = tune_threshold([probability], [reference], empty_dice=0.0)
    assert (threshold, dice) == pytest.approx((0.05, 0.0))  # all tie at 0: smallest threshold


def test_tune_threshold_checks_inputs() -> None:
    with pytest.raises(ValueError, match="2 probability maps but 1"):
        tune_threshold([np.zeros(2), np.zeros(2)], [np.zeros(2)])
    with pytest.raises(ValueError, match="case 0"):
        tune_threshold([np.zeros(2)], [np.zeros(3)])


def test_a_few_steps_reduce_sensitivity_specificity_loss() -> None:
    torch.manual_seed(0)
    target = torch.zeros(1, 1, 16, 16, 16)
    target[..., 5:11, 5:11, 5:11] = 1.0
    image = 0.1 * torch.randn(1, 1, 16, 16, 16) + target  # bright cube = lesion
    net = build_cen(in_channels=1)
    loss_fn = make_loss("sensitivity_specificity", r=0.05)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        optimiser.zero_grad()
        loss = loss_fn(net(image), target)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
