"""Drawing real lesion shapes into a real-looking scan (synth/implant.py)."""

from __future__ import annotations

import numpy as np
import pytest

from mslesion.synth.implant import brain_stats, implant_lesions, measure_lesion_offsets
from mslesion.synth.library import RealComponent


def _scan(rng: np.random.Generator) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """A 40^3 'scan': WM slab at 100, GM elsewhere at 80, noise sd 2; one 5^3 lesion at +30 in FLAIR, -20 in T1."""
    shape = (40, 40, 40)
    brain = np.zeros(shape, bool)
    brain[4:36, 4:36, 4:36] = True
    wm = np.zeros(shape, bool)
    wm[10:30, 10:30, 10:30] = True
    flair = np.where(wm, 100.0, 80.0) * brain + rng.normal(0, 2, shape) * brain
    t1 = np.where(wm, 120.0, 90.0) * brain + rng.normal(0, 2, shape) * brain
    lesion = np.zeros(shape, bool)
    lesion[12:17, 12:17, 12:17] = True
    flair[lesion] += 30.0
    t1[lesion] -= 20.0
    return {"FLAIR": flair.astype(np.float32), "T1": t1.astype(np.float32)}, lesion, brain, wm


def _component(start: tuple[int, int, int], size: int = 3) -> RealComponent:
    return RealComponent(donor="donor", label=1, start=start, mask=np.ones((size, size, size), bool))


def test_offsets_are_lesion_minus_nawm_in_brain_sd(rng: np.random.Generator) -> None:
    images, lesion, brain, wm = _scan(rng)
    offsets = measure_lesion_offsets(images, lesion, brain, wm)
    for name, expected in (("FLAIR", 30.0), ("T1", -20.0)):
        sd = brain_stats(images[name], brain).sd
        assert offsets[name].shape == (1,)
        assert offsets[name][0] == pytest.approx(expected / sd, rel=0.1)


def test_small_lesions_are_not_reference(rng: np.random.Generator) -> None:
    images, lesion, brain, wm = _scan(rng)
    tiny = np.zeros_like(lesion)
    tiny[25:27, 25:27, 25:27] = True  # 8 voxels < MIN_REFERENCE_VOXELS
    assert measure_lesion_offsets(images, tiny, brain, wm)["FLAIR"].size == 0


def test_implanted_lesion_has_the_reference_contrast_and_label(rng: np.random.Generator) -> None:
    images, lesion, brain, wm = _scan(rng)
    offsets = measure_lesion_offsets(images, lesion, brain, wm)
    comp = _component((22, 22, 22), size=4)
    out, label, drawn = implant_lesions(images, lesion, brain, [comp], offsets, rng, wm, scale_range=(1.0, 1.0))
    assert drawn == 1
    box = (slice(22, 26),) * 3
    assert label[box].all() and label[lesion].all()
    assert label.sum() == lesion.sum() + 64
    assert np.median(out["FLAIR"][box] - images["FLAIR"][box]) == pytest.approx(30.0, rel=0.25)
    assert np.median(out["T1"][box] - images["T1"][box]) == pytest.approx(-20.0, rel=0.25)
    far = (slice(4, 8),) * 3  # away from the new lesion: untouched
    np.testing.assert_array_equal(out["FLAIR"][far], images["FLAIR"][far])
    assert images["FLAIR"].dtype == np.float32 and out["FLAIR"] is not images["FLAIR"]


def test_lesions_outside_white_matter_or_touching_others_are_skipped(rng: np.random.Generator) -> None:
    images, lesion, brain, wm = _scan(rng)
    offsets = measure_lesion_offsets(images, lesion, brain, wm)
    outside = _component((5, 5, 30))  # in GM
    touching = _component((17, 12, 12))  # next to the existing lesion
    _, label, drawn = implant_lesions(images, lesion, brain, [outside, touching], offsets, rng, wm)
    assert drawn == 0
    np.testing.assert_array_equal(label, lesion.astype(np.uint8))
