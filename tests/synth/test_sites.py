"""Scanner sites: reproducible, and measurably different from each other."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mslesion.synth import degrade_site, make_sites, make_subject
from mslesion.synth.render import thick_slices

SEED = 7


def test_sites_are_reproducible_and_do_not_depend_on_their_number():
    a, b = make_sites(2, SEED), make_sites(5, SEED)
    assert a == b[:2]
    assert make_sites(3, SEED + 1) != make_sites(3, SEED)
    assert [s.name for s in b] == [f"site{k}" for k in range(5)]
    assert all(s.field_strength in (1.5, 3.0) for s in b)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, SEED])
def test_site_settings_are_spread_apart(seed):
    sites = make_sites(3, seed)
    for s, t in itertools.combinations(sites, 2):
        assert max(s.noise_sd, t.noise_sd) / min(s.noise_sd, t.noise_sd) > 1.4
        assert abs(s.blur_sigma_mm - t.blur_sigma_mm) > 0.2
    for s in sites:
        flair, t1, t2 = (s.contrasts[c].means for c in ("FLAIR", "T1", "T2"))
        assert flair["CSF"] < flair["WM"] < flair["GM"] < flair["lesion_mild"]
        assert t1["CSF"] < t1["GM"] < t1["WM"] and t1["lesion_mild"] < t1["WM"]
        assert t2["CSF"] == max(t2.values())


@pytest.fixture(scope="module")
def same_subject_three_sites(sites):
    return [make_subject(3, site, resolution_mm=2, n_lesions=10) for site in sites]


def test_sites_differ_measurably_in_the_images(same_subject_three_sites, nawm, noise_level):
    """Same anatomy and lesions, three scanners: noise or FLAIR contrast differ clearly."""
    stats = []
    for ph in same_subject_three_sites:
        wm, gm = nawm(ph), (ph.tissues["GM"] > 0.9) & (ph.lesion == 0)
        flair = ph.images["FLAIR"]
        stats.append((noise_level(flair, wm), float(np.median(flair[gm]) / np.median(flair[wm]))))
    for (n1, r1), (n2, r2) in itertools.combinations(stats, 2):
        assert max(n1, n2) / min(n1, n2) > 1.3 or abs(r1 - r2) > 0.08, stats
    # the measured noise follows the profile's setting
    for ph, (noise, _) in zip(same_subject_three_sites, stats):
        assert noise == pytest.approx(ph.meta["site_profile"]["noise_sd"], rel=0.3)


def test_same_subject_same_lesions_across_sites(same_subject_three_sites):
    masks = [ph.lesion for ph in same_subject_three_sites]
    assert all(np.array_equal(masks[0], m) for m in masks[1:])


def test_thick_slices_blur_along_z_only():
    img = np.zeros((8, 8, 40), dtype=np.float32)
    img[:, :, 20] = 1.0
    thick = thick_slices(img, 4.0, 1.0)
    assert thick.shape == img.shape
    profile = thick[4, 4]
    assert profile.max() < 0.5 and (profile > 0.01).sum() >= 4  # one thin line spread over a 4-voxel slice
    assert profile.sum() == pytest.approx(1.0, rel=0.05)  # signal preserved
    np.testing.assert_array_equal(thick[0], thick[5])  # nothing moved in-plane
    assert thick_slices(img, 1.0, 0.0) is img


def test_degraded_site_is_worse():
    site = make_sites(1, SEED)[0]
    worse = degrade_site(site, np.random.default_rng(0))
    assert worse.noise_sd > 1.25 * site.noise_sd and worse.blur_sigma_mm > site.blur_sigma_mm
    assert worse.degraded and worse.name == site.name
