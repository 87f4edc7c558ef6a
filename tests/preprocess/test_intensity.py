"""N4 removes a known bias field; WM-peak and Nyul normalisation have the properties they promise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mslesion.errors import InputError
from mslesion.preprocess.bias import n4_array
from mslesion.preprocess.normalize import Normalisation, NyulStandardiser, normalise, wm_peak, wm_peak_normalise


def test_n4_reduces_a_known_bias(head) -> None:
    image, brain, affine = head
    ijk = np.meshgrid(*[np.linspace(-1, 1, n) for n in image.shape], indexing="ij")
    bias = np.exp(0.25 * ijk[0] + 0.15 * ijk[2]).astype(np.float32)  # about +-30 % across the head
    biased = image * bias
    wm = np.zeros(image.shape, bool)
    wm[np.abs(image - 100) < 10] = True
    wm &= brain

    def cv(a: np.ndarray) -> float:
        return float(a[wm].std() / a[wm].mean())

    corrected = n4_array(biased, affine, shrink_mm=4.0)
    assert cv(corrected) < 0.6 * cv(biased)


def _two_tissues(rng: np.random.Generator, wm_mean: float, gm_mean: float, n_wm: int = 60000, n_gm: int = 30000) -> np.ndarray:
    values = np.concatenate([rng.normal(wm_mean, 0.05 * wm_mean, n_wm), rng.normal(gm_mean, 0.05 * gm_mean, n_gm)])
    return rng.permutation(values).astype(np.float32).reshape(30, 30, 100)


def test_wm_peak_finds_white_matter(rng: np.random.Generator) -> None:
    flair = _two_tissues(rng, 300.0, 380.0)  # FLAIR: WM is the largest (mode)
    t1 = _two_tissues(rng, 500.0, 350.0, n_wm=30000, n_gm=60000)  # T1: WM is the brightest peak, even if smaller
    brain = np.ones(flair.shape, bool)
    assert wm_peak(flair, brain, "FLAIR") == pytest.approx(300.0, rel=0.03)
    assert wm_peak(t1, brain, "T1") == pytest.approx(500.0, rel=0.03)
    out = wm_peak_normalise(flair * 7.0, brain, "FLAIR")
    assert np.median(out[np.abs(flair - 300) < 10]) == pytest.approx(1.0, abs=0.04)


def test_nyul_maps_landmarks_and_round_trips_json(rng: np.random.Generator, tmp_path: Path) -> None:
    brain = np.ones((20, 20, 20), bool)
    train = [rng.gamma(4.0, 20.0 * s, brain.shape).astype(np.float32) for s in (0.5, 1.0, 2.0)]
    nyul = NyulStandardiser().fit(train, [brain] * 3)
    assert np.all(np.diff(nyul.landmarks_) > 0)
    assert nyul.landmarks_[0] == pytest.approx(0.0) and nyul.landmarks_[-1] == pytest.approx(100.0)
    # The same anatomy on another scale lands on the same standard scale.
    a, b = nyul.transform(train[1], brain), nyul.transform(train[1] * 3.0 + 50.0, brain)
    assert np.allclose(a, b, atol=1e-3)
    assert np.percentile(a, 50) == pytest.approx(nyul.landmarks_[5], abs=0.5)
    path = nyul.save(tmp_path / "nyul.json")
    again = NyulStandardiser.load(path)
    assert np.allclose(again.landmarks_, nyul.landmarks_)
    assert np.allclose(normalise(train[0], brain, Normalisation.NYUL, nyul=again), nyul.transform(train[0], brain))


def test_nyul_bad_inputs_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not fitted"):
        NyulStandardiser().transform(np.ones((2, 2, 2)), np.ones((2, 2, 2), bool))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="not a Nyul landmarks"):
        NyulStandardiser.load(bad)
    with pytest.raises(InputError, match="not found"):
        NyulStandardiser.load(tmp_path / "missing.json")
    with pytest.raises(InputError, match="landmarks"):
        normalise(np.ones((2, 2, 2)), np.ones((2, 2, 2), bool), "nyul")


def test_normalised_channels_uses_each_contrasts_wm_peak(rng: np.random.Generator) -> None:
    from mslesion.preprocess.normalize import normalised_channels

    t1 = _two_tissues(rng, 500.0, 350.0, n_wm=30000, n_gm=60000)
    brain = np.ones(t1.shape, bool)
    x = normalised_channels({"T1": t1}, brain, ["FLAIR", "T1"], "wm_peak")
    assert x.shape == (2, *t1.shape) and not x[0].any()
    assert np.median(x[1][np.abs(t1 - 500) < 10]) == pytest.approx(1.0, abs=0.04)
