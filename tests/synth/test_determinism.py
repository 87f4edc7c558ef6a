"""Same seed, same phantom, byte for byte; other seeds differ; subjects do not depend on each other."""

from __future__ import annotations

import numpy as np

from mslesion.synth import make_subject, subject_seed


def _arrays(ph):
    return [ph.images[c] for c in sorted(ph.images)] + [ph.lesion, ph.brain]


def test_same_seed_gives_identical_arrays(sites):
    a = make_subject(42, sites[1], resolution_mm=3)
    b = make_subject(42, sites[1], resolution_mm=3)
    for x, y in zip(_arrays(a), _arrays(b)):
        assert x.tobytes() == y.tobytes()
    assert a.lesions == b.lesions


def test_different_seed_differs(sites):
    a = make_subject(42, sites[1], resolution_mm=3)
    c = make_subject(43, sites[1], resolution_mm=3)
    assert not np.array_equal(a.images["FLAIR"], c.images["FLAIR"])
    assert not np.array_equal(a.lesion, c.lesion)


def test_subject_seeds_are_independent_streams():
    a = np.random.default_rng(subject_seed(5, 0)).random(4)
    b = np.random.default_rng(subject_seed(5, 1)).random(4)
    again = np.random.default_rng(subject_seed(5, 0)).random(4)
    assert not np.allclose(a, b) and np.array_equal(a, again)


def test_fewer_contrasts_do_not_change_the_others(sites):
    full = make_subject(9, sites[2], resolution_mm=3)
    flair_only = make_subject(9, sites[2], resolution_mm=3, contrasts=("FLAIR",))
    assert list(flair_only.images) == ["FLAIR"]
    assert np.array_equal(full.images["FLAIR"], flair_only.images["FLAIR"])
    assert np.array_equal(full.lesion, flair_only.lesion)


def test_deformation_changes_anatomy_but_not_the_grid(sites):
    plain = make_subject(4, sites[0], resolution_mm=3, deform=False, n_lesions=0)
    warped = make_subject(4, sites[0], resolution_mm=3, deform=True, n_lesions=0)
    assert plain.shape == warped.shape and np.array_equal(plain.affine, warped.affine)
    changed = (plain.brain != warped.brain).mean()
    assert 0.001 < changed < 0.2
