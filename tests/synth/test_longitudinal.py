"""Longitudinal pairs: new lesions, enlarging and shrinking ones, different acquisitions, misregistration."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from mslesion.synth import make_longitudinal_pair, new_lesion_mask

CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)


def _components_absent_at_baseline(baseline: np.ndarray, followup: np.ndarray) -> np.ndarray:
    """Written independently of the code under test: follow-up components with no baseline voxel."""
    labels, n = ndi.label(followup > 0, structure=CONNECTIVITY)
    out = np.zeros(followup.shape, dtype=bool)
    for k in range(1, n + 1):
        comp = labels == k
        if not (baseline[comp] > 0).any():
            out |= comp
    return out


@pytest.fixture(scope="module")
def pairs(sites):
    return [make_longitudinal_pair(seed, sites[0], sites[1] if seed % 2 else None, resolution_mm=2, n_lesions=30) for seed in range(4)]


def test_new_lesion_label_is_components_absent_at_baseline(pairs):
    for pair in pairs:
        expected = _components_absent_at_baseline(pair.baseline.lesion, pair.followup.lesion)
        assert np.array_equal(pair.new_lesion > 0, expected)
        assert np.array_equal(new_lesion_mask(pair.baseline.lesion, pair.followup.lesion), pair.new_lesion)
        assert not (pair.new_lesion & pair.baseline.lesion).any()
        assert pair.new_lesion.dtype == np.uint8


def test_pairs_have_new_enlarging_and_shrinking_lesions(pairs):
    assert sum(p.meta["n_new_lesions"] for p in pairs) > 0
    assert sum(p.meta["n_enlarging"] for p in pairs) > 0 and sum(p.meta["n_shrinking"] for p in pairs) > 0
    for pair in pairs:
        n = ndi.label(pair.new_lesion, structure=CONNECTIVITY)[1]
        assert n == pair.meta["n_new_lesions"] <= pair.meta["n_new_drawn"]
    # enlarging lesions grow the follow-up mask beyond the baseline outside the new-lesion label
    grown = [((p.followup.lesion > 0) & (p.baseline.lesion == 0) & (p.new_lesion == 0)).sum() for p in pairs]
    assert max(grown) > 0


def test_zero_new_lesions_when_asked(sites):
    pair = make_longitudinal_pair(3, sites[0], resolution_mm=2, n_lesions=40, n_new=0)
    assert pair.new_lesion.sum() == 0 and pair.meta["n_new_lesions"] == 0
    assert pair.followup.lesion.sum() > 0


def test_visits_share_anatomy_but_not_acquisition(pairs, sites):
    pair = pairs[1]  # follow-up acquired at another site
    assert np.array_equal(pair.baseline.brain, pair.followup.brain)
    assert pair.meta["followup_site"] == sites[1].name and pair.followup.meta["site"] == sites[1].name
    degraded = pairs[0]  # same site, degraded
    assert degraded.meta["followup_degraded"]
    assert degraded.followup.meta["site_profile"]["noise_sd"] > degraded.baseline.meta["site_profile"]["noise_sd"]
    assert set(pair.baseline.images) == set(pair.followup.images) == {"FLAIR", "T1"}


def test_followup_is_slightly_misregistered(sites):
    kwargs = dict(resolution_mm=2, n_lesions=5, n_new=0, deform=False)
    moved = make_longitudinal_pair(8, sites[2], sites[2], misregistration=(2.0, 2.0), **kwargs)
    still = make_longitudinal_pair(8, sites[2], sites[2], misregistration=None, **kwargs)
    rigid = moved.meta["misregistration"]
    assert all(abs(a) <= 2.0 for a in rigid["rotation_deg"]) and all(abs(t) <= 2.0 for t in rigid["translation_mm"])
    assert still.meta["misregistration"] is None
    # the follow-up image's brain no longer sits exactly on the common brain mask
    outside = lambda p: (p.followup.images["FLAIR"][p.brain == 0] > 0).sum()  # noqa: E731
    assert outside(still) == 0 and outside(moved) > 0
    assert np.array_equal(moved.followup.lesion, still.followup.lesion)  # labels stay in common space
