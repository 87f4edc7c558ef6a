"""Contrast physics of the phantoms: what a neuroradiologist expects each sequence to show."""

from __future__ import annotations

import numpy as np
import pytest

from mslesion.synth import CONTRASTS


def test_flair_lesions_are_bright(phantom, nawm):
    lesion, wm = phantom.lesion > 0, nawm(phantom)
    flair = phantom.images["FLAIR"]
    assert lesion.sum() > 50 and wm.sum() > 1000
    assert flair[lesion].mean() / flair[wm].mean() > 1.2


def test_flair_csf_dark_and_wm_below_gm(phantom, nawm):
    flair, t = phantom.images["FLAIR"], phantom.tissues
    csf, gm, wm = t["CSF"] > 0.9, (t["GM"] > 0.9) & (phantom.lesion == 0), nawm(phantom)
    assert flair[csf].mean() < 0.6 * flair[wm].mean()
    assert flair[wm].mean() < flair[gm].mean()


def test_t1_lesions_darker_than_wm_and_wm_above_gm_above_csf(phantom, nawm):
    t1, t = phantom.images["T1"], phantom.tissues
    wm = nawm(phantom)
    assert t1[phantom.lesion > 0].mean() < t1[wm].mean()
    assert t1[wm].mean() > t1[t["GM"] > 0.9].mean() > t1[t["CSF"] > 0.9].mean()


def test_t2_csf_brightest_and_lesions_bright(phantom, nawm):
    t2, t = phantom.images["T2"], phantom.tissues
    wm = nawm(phantom)
    assert t2[t["CSF"] > 0.9].mean() > t2[wm].mean()
    assert t2[t["CSF"] > 0.9].mean() > t2[t["GM"] > 0.9].mean()
    assert t2[phantom.lesion > 0].mean() > 1.2 * t2[wm].mean()


def test_pd_lesions_bright(phantom, nawm):
    pd = phantom.images["PD"]
    assert pd[phantom.lesion > 0].mean() > 1.1 * pd[nawm(phantom)].mean()


def test_partial_volume_maps_are_probabilities(phantom, nawm):
    t = phantom.tissues
    total = t["GM"] + t["WM"] + t["CSF"] + t["lesion"]
    assert np.all(total <= 1.0 + 1e-5) and np.all(total >= 0)
    np.testing.assert_allclose(total[phantom.brain > 0], 1.0, atol=1e-5)
    assert np.array_equal(phantom.lesion > 0, t["lesion"] >= 0.5)
    edge = (t["lesion"] > 0.05) & (t["lesion"] < 0.95)
    assert edge.sum() > 0.3 * (phantom.lesion > 0).sum()  # lesions have partial-volume rims


def test_geometry_and_types(phantom, nawm):
    assert set(phantom.images) == set(CONTRASTS)
    for image in phantom.images.values():
        assert image.shape == phantom.shape and image.dtype == np.float32
        assert np.all(np.isfinite(image)) and image.min() >= 0
        assert np.all(image[phantom.brain == 0] == 0)  # skull-stripped
    assert phantom.lesion.dtype == np.uint8 and phantom.brain.dtype == np.uint8
    assert set(np.unique(phantom.lesion)) <= {0, 1}
    assert np.all(phantom.brain[phantom.lesion > 0] == 1)
    np.testing.assert_allclose(np.abs(np.diag(phantom.affine)[:3]), 2.0)


def test_lesions_stay_in_white_matter_mostly(phantom, nawm):
    t = phantom.tissues
    lesion = phantom.lesion > 0
    # what the lesion displaced was parenchyma, not ventricle or sulcal CSF
    parenchyma = (t["GM"] + t["WM"]) / np.maximum(t["GM"] + t["WM"] + t["CSF"], 1e-6)
    assert np.median(parenchyma[lesion & (t["lesion"] < 0.99)]) > 0.5


def test_metadata_lists_each_lesion(phantom, nawm):
    meta, rows = phantom.meta, phantom.lesions
    assert meta["site"] == "site0" and meta["field_strength"] in (1.5, 3.0)
    assert meta["n_lesions"] == sum(1 for r in rows if r["voxels"])
    assert sum(r["voxels"] for r in rows) == int((phantom.lesion > 0).sum())
    assert {r["kind"] for r in rows} <= {"periventricular", "juxtacortical", "deep_white_matter", "infratentorial"}
    assert meta["lesion_volume_ml"] == pytest.approx((phantom.lesion > 0).sum() * 8 / 1000)


def test_dirty_appearing_white_matter_is_unlabelled_and_between_wm_and_lesion(phantom, sites, nawm) -> None:
    """--dawm brightens FLAIR / darkens T1 in patches of white matter, never reaching a lesion, never labelled."""
    from mslesion.synth import make_subject
    from mslesion.synth.phantom import DAWM_CAP, dawm_field

    clean = phantom  # seed 7 (the conftest's SEED), 2 mm, 40 lesions
    dirty = make_subject(7, sites[0], resolution_mm=2, n_lesions=40, dawm=2.0)  # strength drawn in [0, 2]
    assert np.array_equal(clean.lesion, dirty.lesion)  # DAWM is not lesion
    wm = nawm(clean)
    flair_ratio = dirty.images["FLAIR"][wm] / np.maximum(clean.images["FLAIR"][wm], 1e-6)
    t1_ratio = dirty.images["T1"][wm] / np.maximum(clean.images["T1"][wm], 1e-6)
    assert np.percentile(flair_ratio, 99) > 1.05 and np.percentile(t1_ratio, 1) < 0.97
    assert np.median(flair_ratio) < 1.02  # patches, not a global shift
    field = dawm_field((40, 40, 40), 2.0, 5.0, np.random.default_rng(0))
    assert field.min() == 0.0 and field.max() == np.float32(DAWM_CAP) and 0.05 < (field > 0).mean() < 0.6
