"""Lesions: counts, sizes, shapes and locations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from mslesion.synth import LesionKind, LesionModel, load_anatomy, make_subject
from mslesion.synth.lesions import draw_count, draw_synthetic, paint, rasterize, sample_lesions

CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)


def test_counts_are_heavy_tailed_with_few_zeros():
    model = LesionModel()
    rng = np.random.default_rng(0)
    counts = np.array([draw_count(rng, model.mean_count, model.count_dispersion, model.max_count) for _ in range(2000)])
    assert 0.005 < (counts == 0).mean() < 0.10  # zero allowed but not too frequent
    assert (counts > 100).mean() > 0.03  # over 100 happens
    assert 20 < np.median(counts) < 40 and counts.max() <= model.max_count


@pytest.fixture(scope="module")
def subjects(sites):
    return [make_subject(seed, sites[0], resolution_mm=2) for seed in range(4)]


def test_lesion_loads_vary_and_include_big_and_small_lesions(subjects):
    counts = [ph.meta["n_lesions"] for ph in subjects]
    assert len(set(counts)) == len(counts)
    volumes = []
    for ph in subjects:
        labels, n = ndi.label(ph.lesion, structure=CONNECTIVITY)
        volumes += list(np.bincount(labels.ravel())[1:] * 8.0)  # mm^3 at 2 mm
    assert min(volumes) <= 16 and max(volumes) >= 1000
    sizes = [r["volume_mm3"] for ph in subjects for r in ph.lesions if r["voxels"]]
    assert np.percentile(sizes, 90) > 4 * np.median(sizes)


def test_every_location_class_occurs(subjects):
    kinds = {r["kind"] for ph in subjects for r in ph.lesions if r["voxels"]}
    assert kinds == {str(k) for k in LesionKind}


def test_locations_match_their_class():
    anatomy = load_anatomy(2.0)
    rng = np.random.default_rng(3)
    model = LesionModel()
    for kind in LesionKind:
        for i in range(15):
            spec = draw_synthetic(rng, anatomy, model, i + 1, kind=kind, volume_mm3=60.0)
            raster = rasterize(spec, anatomy)
            if raster is None:
                continue
            voxels = tuple((np.argwhere(raster.prob >= 0.5) + [s.start for s in raster.box]).T)
            if kind == LesionKind.PERIVENTRICULAR:
                assert anatomy.vent_dist[voxels].min() <= 6.0
            if kind == LesionKind.JUXTACORTICAL:
                assert anatomy.cortex_dist[voxels].min() <= 4.0
            if kind == LesionKind.INFRATENTORIAL:
                assert anatomy.infratentorial[voxels].mean() > 0.5
            if kind in (LesionKind.PERIVENTRICULAR, LesionKind.DEEP_WHITE_MATTER):
                assert anatomy.allowed_wm[voxels].all()  # WM plus one voxel


def test_periventricular_lesions_point_away_from_the_ventricles():
    anatomy = load_anatomy(2.0)
    rng = np.random.default_rng(5)
    spec = draw_synthetic(rng, anatomy, LesionModel(), 1, kind=LesionKind.PERIVENTRICULAR, volume_mm3=80.0)
    axis = spec.blobs[0].rotation[:, 0]
    grad = np.gradient(anatomy.vent_dist)
    c = tuple(np.round(spec.centre).astype(int))
    normal = np.array([g[c] for g in grad])
    assert abs(axis @ normal) / np.linalg.norm(normal) > 0.9
    axes = spec.blobs[0].axes_mm
    assert axes[0] > 1.4 * axes[1]  # ovoid, long axis first


def test_rasters_have_partial_volume_edges_and_volume_near_request():
    anatomy = load_anatomy(2.0)
    rng = np.random.default_rng(11)
    model = LesionModel(roughness=(0.0, 0.0))
    ratios = []
    for i in range(20):
        spec = draw_synthetic(rng, anatomy, model, i + 1, kind=LesionKind.DEEP_WHITE_MATTER, volume_mm3=100.0)
        raster = rasterize(spec, anatomy)
        if raster is not None:
            ratios.append(raster.voxels * 8.0 / 100.0)
            assert ((raster.prob > 0) & (raster.prob < 1)).any()
    assert 0.6 < np.median(ratios) < 1.4


def test_no_lesions_gives_an_empty_mask(sites):
    ph = make_subject(1, sites[1], resolution_mm=3, n_lesions=0)
    assert ph.lesion.sum() == 0 and ph.meta["n_lesions"] == 0 and ph.tissues["lesion"].max() == 0
    assert ph.images["FLAIR"].max() > 0


def test_painting_keeps_the_most_probable_lesion():
    anatomy = load_anatomy(3.0)
    rasters = sample_lesions(np.random.default_rng(2), anatomy, LesionModel(), 30)
    prob, ids = paint(rasters, anatomy.crop_shape)
    assert prob.max() <= 1.0 and set(np.unique(ids)) <= {0} | {r.spec.id for r in rasters}
    assert np.all(ids[prob > 0] > 0)
