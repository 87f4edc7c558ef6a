"""EmptyPolicy: explicit defaults, validation, dict round trip, F1 convention."""

from __future__ import annotations

import json
import math

import pytest

from mslesion.evaluate import EmptyPolicy, f1_score


def test_defaults_are_nan_except_f1_both_zero() -> None:
    d = EmptyPolicy().to_dict()
    assert d.pop("f1_both_zero") == 0.0
    assert set(d.values()) == {"nan"}


def test_to_dict_is_json_safe_and_round_trips() -> None:
    policy = EmptyPolicy(dice_both_empty=1.0, surface_one_empty=math.inf, ppv_pred_empty=0.0)
    d = policy.to_dict()
    assert d["dice_both_empty"] == 1.0
    assert d["surface_one_empty"] == "inf"
    assert d["tpr_ref_empty"] == "nan"
    text = json.dumps(d, allow_nan=False)  # no bare NaN/Infinity tokens
    back = EmptyPolicy.from_dict(json.loads(text))
    assert back.dice_both_empty == 1.0
    assert back.surface_one_empty == math.inf
    assert math.isnan(back.tpr_ref_empty)
    assert back.to_dict() == d
    assert policy.as_dict() == d


def test_from_dict_rejects_unknown_fields_and_non_numbers() -> None:
    with pytest.raises(ValueError, match="unknown EmptyPolicy field"):
        EmptyPolicy.from_dict({"dice_empty": 1.0})
    with pytest.raises(ValueError, match="dice_both_empty"):
        EmptyPolicy(dice_both_empty="one")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dice_both_empty"):
        EmptyPolicy(dice_both_empty=True)  # type: ignore[arg-type]


def test_ints_are_coerced_to_float() -> None:
    assert EmptyPolicy(dice_both_empty=1).dice_both_empty == 1.0
    assert isinstance(EmptyPolicy(dice_both_empty=1).dice_both_empty, float)


def test_perfect_when_both_empty_preset() -> None:
    p = EmptyPolicy.perfect_when_both_empty()
    assert (p.dice_both_empty, p.jaccard_both_empty, p.surface_both_empty) == (1.0, 1.0, 0.0)
    assert p.surface_one_empty == math.inf
    assert (p.ltpr_no_ref, p.lfpr_no_pred) == (1.0, 0.0)
    assert math.isnan(p.ppv_pred_empty)


def test_f1_score_conventions() -> None:
    # 2 * 0.5 * 1.0 / 1.5 = 2/3
    assert f1_score(0.5, 1.0) == pytest.approx(2 / 3)
    assert f1_score(0.0, 0.0) == 0.0
    assert math.isnan(f1_score(0.0, 0.0, EmptyPolicy(f1_both_zero=math.nan)))
    assert math.isnan(f1_score(math.nan, 1.0))
    assert math.isnan(f1_score(1.0, math.nan))
