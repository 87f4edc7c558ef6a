"""Subtraction baseline: a new blob is found, a shared blob and a global brightness change are not."""

from __future__ import annotations

import numpy as np
import pytest

from mslesion.models.subtraction import SubtractionParams, subtraction_probability
from mslesion.space.priors import white_matter_prior_working_grid

SHAPE = (40, 44, 30)
NEW, SHARED = (14, 22, 15), (27, 24, 15)


def _ball(centre: tuple[int, int, int], radius: float) -> np.ndarray:
    grid = np.indices(SHAPE).transpose(1, 2, 3, 0)
    return np.linalg.norm(grid - centre, axis=-1) <= radius


def _zscore(image: np.ndarray, brain: np.ndarray) -> np.ndarray:
    values = image[brain]
    return np.where(brain, (image - values.mean()) / values.std(), 0).astype(np.float32)


@pytest.fixture
def pair() -> dict[str, np.ndarray]:
    """Raw baseline/follow-up (not normalised): anatomy + noise, one shared blob, one blob new at follow-up."""
    rng = np.random.default_rng(3)
    grid = np.indices(SHAPE).transpose(1, 2, 3, 0)
    radius = np.linalg.norm((grid - [20, 22, 15]) / [17, 19, 13], axis=-1)
    brain = radius < 1
    anatomy = np.where(radius > 0.8, 0.6, 0.0) + np.where(radius < 0.25, -1.2, 0.0)  # cortex ring, dark ventricle
    shared = 1.5 * _ball(SHARED, 2.5)
    base = (anatomy + shared + rng.normal(0, 0.1, SHAPE)) * brain
    follow = (anatomy + shared + 1.5 * _ball(NEW, 2.5) + rng.normal(0, 0.1, SHAPE)) * brain
    return {"baseline": base, "followup": follow, "brain": brain}


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.9, 0.9, 3.0)])
def test_new_blob_is_found_and_shared_blob_is_not(pair, spacing) -> None:
    brain = pair["brain"]
    prob = subtraction_probability(_zscore(pair["baseline"], brain), _zscore(pair["followup"], brain), brain, spacing)
    assert prob.dtype == np.float32 and prob.shape == SHAPE
    assert prob.min() >= 0.0 and prob.max() <= 1.0 and not prob[~brain].any()
    assert prob[NEW] > 0.5 and (prob[_ball(NEW, 1.5)] > 0.5).all()
    assert prob[_ball(SHARED, 4)].max() < 0.5
    assert prob[~_ball(NEW, 4)].max() < 0.5


def test_global_brightness_change_does_not_trigger(pair) -> None:
    brain = pair["brain"]
    brighter = 1.7 * pair["followup"] + 40.0  # another scanner gain and offset, undone by the normalisation
    prob = subtraction_probability(_zscore(pair["baseline"], brain), _zscore(brighter, brain), brain, (1.0, 1.0, 1.0))
    assert prob[~_ball(NEW, 4)].max() < 0.5 and prob[NEW] > 0.5
    # A residual offset left by imperfect matching does not trigger either (the difference is median-centred).
    offset = _zscore(pair["followup"], brain) + 0.3 * brain
    assert subtraction_probability(_zscore(pair["baseline"], brain), offset, brain, (1.0, 1.0, 1.0))[~_ball(NEW, 4)].max() < 0.5


def test_smooth_intensity_drift_between_visits_is_removed(pair) -> None:
    """What bias correction leaves (a smooth field differing between visits) neither triggers nor hides the new blob."""
    brain = pair["brain"]
    x = np.linspace(-1.0, 1.0, SHAPE[0])[:, None, None]
    drifted = pair["followup"] + 1.0 * x * brain  # brighter on one side, darker on the other
    base, follow = _zscore(pair["baseline"], brain), _zscore(drifted, brain)
    keep_growth = SubtractionParams(baseline_lesion_z=None)  # so only the background removal protects the shared blob
    prob = subtraction_probability(base, follow, brain, (1.0, 1.0, 1.0), keep_growth)
    assert prob[~_ball(NEW, 4)].max() < 0.5 and prob[NEW] > 0.5
    # Without it the drift inflates the difference's spread and the new blob drowns.
    no_background = SubtractionParams(baseline_lesion_z=None, background_mm=0.0)
    assert subtraction_probability(base, follow, brain, (1.0, 1.0, 1.0), no_background)[NEW] < 0.5


def test_growth_of_a_baseline_lesion_is_not_new(pair) -> None:
    brain = pair["brain"]
    base = _zscore(pair["baseline"], brain)
    grown = _zscore(pair["followup"] + 1.5 * (_ball(SHARED, 4.5) & ~_ball(SHARED, 2.5)), brain)  # the shared blob enlarges
    prob = subtraction_probability(base, grown, brain, (1.0, 1.0, 1.0))
    assert prob[_ball(SHARED, 5.5)].max() < 0.5 and prob[NEW] > 0.5
    keep_growth = SubtractionParams(baseline_lesion_z=None)
    assert subtraction_probability(base, grown, brain, (1.0, 1.0, 1.0), keep_growth)[_ball(SHARED, 5.5)].max() > 0.5


def test_white_matter_prior_removes_candidates_outside_it(pair) -> None:
    brain = pair["brain"]
    base, follow = _zscore(pair["baseline"], brain), _zscore(pair["followup"], brain)
    away = np.zeros(SHAPE, bool)
    away[28:34, 10:16, 10:20] = True  # well over 3 mm from the new blob
    assert subtraction_probability(base, follow, brain, (1.0, 1.0, 1.0), white_matter=away).max() < 0.5
    near = np.zeros(SHAPE, bool)
    near[NEW[0] + 4, NEW[1], NEW[2]] = True  # one white-matter voxel 1.5 mm from the blob's edge: it touches
    prob = subtraction_probability(base, follow, brain, (1.0, 1.0, 1.0), white_matter=near)
    assert (prob[_ball(NEW, 1.5)] > 0.5).all()
    loose = SubtractionParams(wm_dilation_mm=0.5)
    assert subtraction_probability(base, follow, brain, (1.0, 1.0, 1.0), loose, white_matter=near).max() < 0.5


def test_brain_edge_is_eroded_and_score_is_half_at_the_decision(pair) -> None:
    brain = pair["brain"]
    base, follow = _zscore(pair["baseline"], brain), _zscore(pair["followup"], brain)
    rim = brain & ~np.roll(brain, 1, axis=0)
    follow = np.where(rim, follow + 5.0, follow)  # a bright edge, as a misregistered brain surface gives
    prob = subtraction_probability(base, follow, brain, (1.0, 1.0, 1.0))
    assert not prob[rim].any() and prob[NEW] > 0.5
    params = SubtractionParams(difference_sd=0.0, min_followup_z=-100.0, brain_erosion_mm=0.0)
    everything = subtraction_probability(base, base, brain, (1.0, 1.0, 1.0), params)
    assert ((everything > 0.5) == (everything >= 0.5)).all()


def test_params_round_trip_and_reject_unknown_keys() -> None:
    params = SubtractionParams(sigma_mm=1.0, difference_sd=4, softness=0.25)
    assert SubtractionParams.from_dict(params.to_dict()) == params
    assert SubtractionParams.from_dict({}) == SubtractionParams()
    assert SubtractionParams.from_dict(SubtractionParams(baseline_lesion_z=None).to_dict()).baseline_lesion_z is None
    with pytest.raises(ValueError, match="bogus.*typo_sd|typo_sd"):
        SubtractionParams.from_dict({"typo_sd": 3.0, "bogus": 1})
    with pytest.raises(ValueError, match="softness"):
        SubtractionParams(softness=0)


def test_rejects_mismatched_grids(pair) -> None:
    with pytest.raises(ValueError, match="one grid"):
        subtraction_probability(pair["baseline"], pair["followup"][:-1], pair["brain"], (1.0, 1.0, 1.0))


def test_white_matter_prior_is_on_the_working_grid() -> None:
    from mslesion.space.grid import WORKING_AFFINE, WORKING_SHAPE

    prior = white_matter_prior_working_grid()
    assert prior.shape == WORKING_SHAPE and prior.dtype == bool and not prior.flags.writeable
    assert prior is white_matter_prior_working_grid()
    centrum = np.rint(np.linalg.inv(WORKING_AFFINE) @ [26.0, -10.0, 30.0, 1.0])[:3].astype(int)  # right centrum semiovale
    assert prior[tuple(centrum)] and 400_000 < prior.sum() < 800_000  # 1 mm voxels: 0.4 to 0.8 L of white matter


def test_decided_keeps_the_ranking_and_puts_exactly_the_passed_voxels_above_half() -> None:
    from mslesion.models.subtraction import decided

    score = np.array([0.0, 0.3, 0.5, 0.9, 0.9, 0.2], np.float32)
    passed = np.array([False, True, False, True, False, False])
    out = decided(score, passed)
    assert out.dtype == np.float32 and np.array_equal(out > 0.5, passed) and ((out >= 0.5) == passed).all()
    assert out[3] == np.float32(0.9) and out[0] == 0.0 and out[5] == np.float32(0.2)
