"""The template anatomy: grid, tissue maps and lesion-location regions."""

from __future__ import annotations

import numpy as np
import pytest

from mslesion.errors import InputError
from mslesion.space.grid import FSL_MNI_AFFINE, FSL_MNI_SHAPE
from mslesion.space.priors import mni_tissues_1mm
from mslesion.synth import LesionKind, load_anatomy
from mslesion.synth.anatomy import classify_location
from mslesion.synth.grid import coarse_affine, downsample, downsample_box


def test_templates_land_on_the_fsl_mni_grid():
    tissues = mni_tissues_1mm()
    assert all(a.shape == FSL_MNI_SHAPE for a in tissues.values())
    gm, wm, brain = tissues["gm"], tissues["wm"], tissues["brain"]
    assert 0.9e6 < gm.sum() < 1.2e6 and 0.5e6 < wm.sum() < 0.8e6  # mm^3: adult GM ~ 1 L, WM ~ 0.7 L
    assert np.all(gm + wm <= 1.0 + 1e-5)
    assert np.all(gm[brain == 0] == 0)
    # left-right is mirrored between the nilearn and FSL grids: WM must be near-symmetric about x = 0 (voxel 90)
    assert np.corrcoef(wm[:90].ravel(), wm[91:181][::-1].ravel())[0, 1] > 0.9


@pytest.mark.parametrize("resolution", [2.0, 3.0])
def test_coarse_grid_keeps_the_field_of_view(resolution):
    anatomy = load_anatomy(resolution)
    assert anatomy.shape == tuple(int(np.ceil(n / resolution)) for n in FSL_MNI_SHAPE)
    np.testing.assert_allclose(np.abs(np.diag(anatomy.affine)[:3]), resolution)
    # outer edge of voxel 0 stays where the 1 mm grid's edge is
    corner = np.full(3, -0.5)
    edge_1mm = FSL_MNI_AFFINE[:3, :3] @ corner + FSL_MNI_AFFINE[:3, 3]
    edge_coarse = anatomy.affine[:3, :3] @ corner + anatomy.affine[:3, 3]
    np.testing.assert_allclose(edge_coarse, edge_1mm)


def test_downsample_averages_blocks_exactly():
    a = np.zeros((6, 6, 6), dtype=np.float32)
    a[:2, :2, :2] = 1.0
    a[2, 2, 2] = 1.0
    out = downsample(a, 2.0)
    assert out.shape == (3, 3, 3)
    assert out[0, 0, 0] == 1.0 and out[1, 1, 1] == pytest.approx(1 / 8)
    box, start = downsample_box(np.ones((2, 2, 2)), (3, 3, 3), 2.0)  # straddles four blocks per axis pair
    assert start == (1, 1, 1) and box.shape == (2, 2, 2) and box.sum() == pytest.approx(1.0)
    odd = downsample(a, 1.5)  # non-integer factors interpolate
    assert odd.shape == (4, 4, 4) and 0 < odd.max() <= 1.0
    np.testing.assert_allclose(coarse_affine(np.eye(4), 3.0)[:3, 3], 1.0)


def test_regions_are_where_anatomy_puts_them():
    anatomy = load_anatomy(2.0)
    world = lambda mask: anatomy.crop_to_world(np.argwhere(mask))  # noqa: E731
    ventricles = world(anatomy.ventricles)
    assert 15_000 < len(ventricles) * 8 < 60_000  # mm^3
    assert abs(ventricles[:, 0].mean()) < 5 and np.all(np.abs(ventricles[:, 0]) < 40)
    infra = world(anatomy.infratentorial)
    assert np.all(infra[:, 2] < -20) and np.all(infra[:, 1] < -15)
    for kind in LesionKind:
        assert len(anatomy.candidates[kind]) > 100, kind
    pv = tuple(anatomy.candidates[LesionKind.PERIVENTRICULAR].T)
    assert anatomy.vent_dist[pv].max() <= 6.0 and anatomy.wm[pv].min() > 0.5
    dwm = tuple(anatomy.candidates[LesionKind.DEEP_WHITE_MATTER].T)
    assert anatomy.vent_dist[dwm].min() > 6.0 and anatomy.cortex_dist[dwm].min() > 4.0
    it = anatomy.candidates[LesionKind.INFRATENTORIAL]
    assert classify_location(it[:5], anatomy) == LesionKind.INFRATENTORIAL


def test_anatomy_is_cached_and_read_only():
    a, b = load_anatomy(3.0), load_anatomy(3)
    assert a is b
    with pytest.raises(ValueError):
        a.gm[0, 0, 0] = 1.0


@pytest.mark.parametrize("resolution", [0.5, 9, float("nan")])
def test_bad_resolution_is_an_input_error(resolution):
    with pytest.raises(InputError):
        load_anatomy(resolution)
