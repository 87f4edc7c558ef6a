"""The viewer's embedded data: downsampling keeps geometry and small lesions, the NIfTI is fresh and compact, the bundle ships."""

from __future__ import annotations

import base64
import gzip

import nibabel as nib
import numpy as np

from mslesion.report.viewer import (
    BUNDLE,
    NIIVUE_VERSION,
    downsample,
    layers_for,
    nifti_base64,
    niivue_script,
    strides,
)


def test_strides_reach_the_working_resolution_and_a_size_cap() -> None:
    assert strides((0.5, 0.5, 3.0), (400, 400, 40)) == (2, 2, 1)
    assert strides((1.0, 1.0, 1.0), (182, 218, 182)) == (1, 1, 1)
    assert strides((0.72, 0.72, 4.0), (320, 320, 36)) == (1, 1, 1)
    big = strides((1.0, 1.0, 1.0), (512, 512, 512), max_voxels=200**3)
    assert np.prod([int(np.ceil(512 / k)) for k in big]) <= 200**3


def test_downsample_keeps_world_positions_and_single_voxel_lesions() -> None:
    affine = np.array([[-0.5, 0, 0, 90], [0, 0.5, 0.02, -120], [0, 0, 3.0, -70], [0, 0, 0, 1]])
    mask = np.zeros((21, 20, 6), np.uint8)
    mask[7, 4, 2] = 1
    small, small_affine = downsample(mask, affine, (2, 2, 1), is_mask=True)
    assert small.shape == (11, 10, 6) and small.sum() == 1
    ((i, j, k),) = np.argwhere(small > 0)
    block = np.array([[2 * i + a, 2 * j + b, k, 1] for a in (0, 1) for b in (0, 1)], float)
    np.testing.assert_allclose(small_affine @ [i, j, k, 1], (affine @ block.T).mean(axis=1))  # the block's centre
    image = np.arange(21 * 20 * 6, dtype=np.float32).reshape(21, 20, 6)
    mean, _ = downsample(image, affine, (2, 2, 1), is_mask=False)
    assert mean[0, 0, 0] == image[:2, :2, 0].mean()


def test_embedded_nifti_is_fresh_uint8_and_faithful() -> None:
    rng = np.random.default_rng(0)
    image = rng.normal(300, 40, (30, 32, 20)).astype(np.float32)
    affine = np.diag([1.0, 1.0, 1.5, 1.0])
    affine[:3, 3] = [-10, 20, 5]
    payload = gzip.decompress(base64.b64decode(nifti_base64(image, affine, is_mask=False)))
    back = nib.Nifti1Image.from_bytes(payload)
    assert back.get_data_dtype() == np.uint8 and back.header["descrip"].tobytes().strip(b"\0") == b""
    np.testing.assert_allclose(back.affine, affine, atol=1e-5)
    inside = image < np.percentile(image, 99.9)
    step = (image.max() - image.min()) / 255
    assert np.abs(back.get_fdata()[inside] - image[inside]).max() <= step


def test_layers_put_images_first_and_the_mask_last() -> None:
    affine = np.eye(4)
    layers = layers_for({"FLAIR": (np.ones((8, 8, 8)), affine), "T1": (np.ones((8, 8, 8)), affine)}, np.zeros((8, 8, 8)), affine)
    assert [(x.label, x.is_mask) for x in layers] == [("FLAIR", False), ("T1", False), ("Lesions", True)]


def test_bundle_ships_pinned_with_its_licence_and_inlines_as_ascii() -> None:
    assert BUNDLE.is_file() and NIIVUE_VERSION in BUNDLE.name and 1e6 < BUNDLE.stat().st_size < 4e6
    assert "BSD 2-Clause" in (BUNDLE.parent / "LICENSE-niivue.txt").read_text()
    script = niivue_script()
    assert script.isascii() and "</script" not in script.lower() and "niivue" in script[:400]
