"""Augmentation: DeepLesionBrain's image-quality transforms, modality dropout, sampling balance."""

from __future__ import annotations

import numpy as np
import pytest

from mslesion.train.augment import augment_batch, axial_mean, blur, make_transforms, unsharp
from mslesion.train.config import AugmentConfig
from mslesion.train.data import PreparedCase
from mslesion.train.sampling import choose_centre, extract_patch

OFF = dict(flip=0, affine=0, elastic=0, gamma=0, bias_field=0, noise=0, image_quality=0, modality_dropout=0)


def test_axial_mean_averages_neighbouring_slices_only() -> None:
    image = np.zeros((1, 3, 3, 6), np.float32)
    image[0, 1, 1, 3] = 3.0
    out = axial_mean(image, 3)
    # A 1x1x3 mean spreads the spike over slices 2, 3, 4 of the same in-plane voxel: 3/3 = 1 each.
    np.testing.assert_allclose(out[0, 1, 1], [0, 0, 1, 1, 1, 0], atol=1e-6)
    assert out[0, 0, 1].sum() == 0 and out[0, 1, 0].sum() == 0


def test_axial_mean_of_even_size_stays_centred() -> None:
    image = np.zeros((1, 1, 1, 7), np.float32)
    image[0, 0, 0, 3] = 4.0
    out = axial_mean(image, 2)[0, 0, 0]
    np.testing.assert_allclose(out, [0, 0, 1, 2, 1, 0, 0], atol=1e-6)  # weights 1/4, 1/2, 1/4: no half-voxel shift
    assert float((np.arange(7) * out).sum() / out.sum()) == 3.0


def test_unsharp_undoes_part_of_the_blur_it_inverts() -> None:
    rng = np.random.default_rng(0)
    image = rng.normal(size=(1, 16, 16, 16)).astype(np.float32)
    blurred = blur(image, 1.0)
    # 2x - G(x) sharpens: high frequencies grow, so the variance goes up, not down.
    assert unsharp(image, 1.0).std() > image.std() > blurred.std()
    np.testing.assert_allclose(unsharp(image, 1.0) + blurred, 2 * image, atol=1e-5)


def test_image_quality_changes_image_never_label() -> None:
    transforms = make_transforms(AugmentConfig(**{**OFF, "image_quality": 1.0}), n_channels=2)
    rng = np.random.default_rng(1)
    item = {"image": rng.normal(size=(2, 16, 16, 16)).astype(np.float32), "label": (rng.random((1, 16, 16, 16)) > 0.9).astype(np.float32)}
    (out,) = augment_batch(transforms, [item], seed=5)
    assert not np.allclose(out["image"], item["image"])
    np.testing.assert_array_equal(out["label"], item["label"])


def test_modality_dropout_keeps_flair_and_never_drops_all() -> None:
    transforms = make_transforms(AugmentConfig(**{**OFF, "modality_dropout": 1.0}), n_channels=4)
    item = {"image": np.ones((4, 16, 16, 16), np.float32), "label": np.zeros((1, 16, 16, 16), np.float32)}
    dropped = []
    for seed in range(40):
        (out,) = augment_batch(transforms, [item], seed=seed)
        kept = out["image"].reshape(4, -1).max(axis=1) > 0
        assert kept[0]  # FLAIR is always there
        assert not kept[1:].all()  # at least one other contrast dropped
        dropped.append(tuple(kept))
    assert len(set(dropped)) > 3  # different subsets, FLAIR alone among them
    assert (True, False, False, False) in dropped


def test_same_seed_same_augmentation() -> None:
    transforms = make_transforms(AugmentConfig(), n_channels=2)
    rng = np.random.default_rng(2)
    item = {"image": rng.normal(size=(2, 32, 32, 32)).astype(np.float32), "label": np.zeros((1, 32, 32, 32), np.float32)}
    a = augment_batch(transforms, [item], seed=11)[0]["image"]
    b = augment_batch(transforms, [item], seed=11)[0]["image"]
    np.testing.assert_array_equal(a, b)


def test_lesion_first_sampling_balances_small_and_large_lesions() -> None:
    big = np.argwhere(np.ones((10, 10, 10), bool)) + 5  # 1000 voxels
    small = np.array([[30, 30, 30]])  # 1 voxel
    case = PreparedCase(
        "c",
        np.zeros((1, 40, 40, 40), np.float32),
        np.zeros((40, 40, 40), np.uint8),
        np.ones((40, 40, 40), bool),
        np.array([True]),
        [big, small],
        np.argwhere(np.ones((40, 40, 40), bool)),
        (1.0, 1.0, 1.0),
    )
    rng = np.random.default_rng(0)
    centres = np.array([choose_centre(case, rng, 1.0, (4, 4, 4)) for _ in range(2000)])
    near_small = np.all(np.abs(centres - 30) <= 1, axis=1).mean()
    # Lesion first: the 1-voxel lesion gets about half of the draws, not 1/1001 of them.
    assert near_small == pytest.approx(0.5, abs=0.05)


def test_extract_patch_zero_pads_at_borders() -> None:
    array = np.arange(27, dtype=np.float32).reshape(1, 3, 3, 3)
    patch = extract_patch(array, np.array([0, 0, 0]), (2, 2, 2))
    assert patch.shape == (1, 2, 2, 2)
    assert patch[0, 0, 0, 0] == 0 and patch[0, 1, 1, 1] == array[0, 0, 0, 0]


def test_dataset_weights_set_the_share_of_each_dataset() -> None:
    from mslesion.train.data import case_probabilities

    def case(index: int) -> PreparedCase:
        return PreparedCase(
            "c",
            np.zeros((1, 2, 2, 2)),
            np.zeros((2, 2, 2)),
            np.ones((2, 2, 2), bool),
            np.array([True]),
            [],
            np.zeros((1, 3), int),
            (1.0, 1.0, 1.0),
            dataset_index=index,
        )

    cases = [case(0)] * 9 + [case(1)]
    p = case_probabilities(cases, [0.7, 0.3])
    assert p[:9].sum() == pytest.approx(0.7) and p[9] == pytest.approx(0.3)
    np.testing.assert_allclose(case_probabilities(cases, []), 0.1)


def test_thick_slices_average_each_slab_and_interpolate_back() -> None:
    from mslesion.train.augment import thick_slices

    rng = np.random.default_rng(0)
    image = rng.normal(size=(2, 4, 4, 40)).astype(np.float32)
    np.testing.assert_allclose(thick_slices(image, 1.0, 0.0), image, atol=1e-5)  # 1 mm slices: nothing changes
    np.testing.assert_allclose(thick_slices(np.full((1, 2, 2, 30), 3.0, np.float32), 4.4, 1.3), 3.0)
    spike = np.zeros((1, 1, 1, 30), np.float32)
    spike[..., 15] = 1.0
    spread = thick_slices(spike, 5.0, 0.0)[0, 0, 0]
    assert spread.max() < 0.25 and np.count_nonzero(spread > 1e-6) >= 8  # a 1 mm detail is smeared over 2 slices
    assert spread.sum() == pytest.approx(1.0, abs=1e-5)  # and nothing is lost


def test_thick_slice_augmentation_changes_image_never_label() -> None:
    cfg = AugmentConfig(flip=0, affine=0, elastic=0, gamma=0, bias_field=0, noise=0, image_quality=0, modality_dropout=0, thick_slices=1.0)
    transforms = make_transforms(cfg, n_channels=1)
    item = {
        "image": np.random.default_rng(1).normal(size=(1, 16, 16, 16)).astype(np.float32),
        "label": (np.random.default_rng(2).random((1, 16, 16, 16)) > 0.9).astype(np.float32),
    }
    out = augment_batch(transforms, [item], seed=3)[0]
    assert not np.allclose(out["image"], item["image"])
    np.testing.assert_array_equal(out["label"], item["label"])


def test_histogram_shift_is_monotone_per_channel_and_keeps_the_background_zero() -> None:
    from mslesion.train.augment import histogram_shift

    image = np.zeros((2, 10, 10, 10), np.float32)
    image[:, 2:8, 2:8, 2:8] = np.random.default_rng(0).normal(size=(2, 6, 6, 6))
    out = histogram_shift(image, np.random.RandomState(1))
    assert np.all(out[image == 0] == 0)  # outside the brain stays 0
    for c in range(2):
        inside = image[c] != 0
        order = np.argsort(image[c][inside])
        assert np.all(np.diff(out[c][inside][order]) >= -1e-6)  # monotone: lesions stay brighter than white matter
        assert out[c][inside].min() == pytest.approx(image[c][inside].min()) and out[c][inside].max() == pytest.approx(
            image[c][inside].max()
        )
    assert not np.allclose(out, image)


def test_transforms_pickle_so_dataloader_workers_can_use_them() -> None:
    import pickle

    cfg = AugmentConfig(thick_slices=0.5, histogram_shift=0.5, carvemix=0.0)
    transforms = pickle.loads(pickle.dumps(make_transforms(cfg, n_channels=2)))
    item = {
        "image": np.random.default_rng(1).normal(size=(2, 16, 16, 16)).astype(np.float32),
        "label": np.zeros((1, 16, 16, 16), np.float32),
    }
    np.testing.assert_array_equal(
        augment_batch(transforms, [item], seed=5)[0]["image"], augment_batch(make_transforms(cfg, n_channels=2), [item], seed=5)[0]["image"]
    )
