"""evaluate_case (one flat row) and summarise (NaN-aware, overall and per site)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mslesion.evaluate import CASE_COLUMNS, EmptyPolicy, describe, evaluate_case, summarise


def test_row_has_every_column_with_plain_types(blob_pair) -> None:
    pred, ref = blob_pair(0)
    row = evaluate_case(pred, ref, (1.0, 1.0, 3.0))
    assert list(row) == list(CASE_COLUMNS)
    for key, value in row.items():
        assert type(value) in (float, int, bool), key
    json.dumps(row)  # writable as is


def test_row_by_hand(mask) -> None:
    # ref: 4-voxel line (2,2,0..3) + single voxel (6,6,6); pred: (2,2,1..4), 5x5x5 array, 1x1x2 mm.
    # TP = 3, FP = 1, FN = 2 -> Dice 6/9, PPV 3/4, TPR 3/5, Jaccard 3/6, spec = 119/120.
    # Voxel volume 2 mm^3: Vp = 8 mm^3, Vr = 10 mm^3 -> 0.008, 0.010 mL; RVD = -0.2.
    # ISBI (26-conn.): 2 ref lesions, 1 hit; 1 pred lesion, touches ref -> LTPR 0.5, LFPR 0, F1 2/3.
    # MSSEG: min voxels = floor(3/2) + 1 = 2, so the single voxel is removed: 1 ref lesion.
    #   ref: 3/4 > 0.1, pred outside 1/4 -> detected. pred: 3/4 > 0.1, ref uncovered 1/4 -> detected.
    ref = mask((5, 5, 8), [(2, 2, 0), (2, 2, 1), (2, 2, 2), (2, 2, 3), (4, 4, 6)])
    pred = mask((5, 5, 8), [(2, 2, 1), (2, 2, 2), (2, 2, 3), (2, 2, 4)])
    row = evaluate_case(pred, ref, (1.0, 1.0, 2.0))
    # 5*5*8 = 200 voxels; TN = 200 - 6 = 194 -> specificity 194/195
    expected = {
        "ref_empty": False, "pred_empty": False,
        "dice": 6 / 9, "jaccard": 0.5, "ppv": 0.75, "tpr": 0.6, "specificity": 194 / 195,
        "vol_pred_ml": 0.008, "vol_ref_ml": 0.010, "avd_ml": 0.002, "rvd": -0.2, "avd_isbi": 0.2,
        "n_ref_lesions": 2, "n_pred_lesions": 1, "isbi_tp_ref_lesions": 1, "isbi_fp_pred_lesions": 0,
        "ltpr": 0.5, "lfpr": 0.0, "lesion_f1_isbi": 2 / 3,
        "msseg_n_ref": 1, "msseg_n_pred": 1, "msseg_detected_ref": 1, "msseg_detected_pred": 1,
        "msseg_lesion_sensitivity": 1.0, "msseg_lesion_ppv": 1.0, "msseg_lesion_f1": 1.0,
        "msseg_pred_volume_ml": 0.008,
    }  # fmt: skip
    for key, value in expected.items():
        assert row[key] == pytest.approx(value), key
    # surface: pred (2,2,1..4) to ref surface {(2,2,0..3), (4,4,6)}: 0,0,0 and (2,2,4)->(2,2,3) 2 mm;
    # ref to pred: (2,2,0)->(2,2,1) 2 mm, 0, 0, 0, and (4,4,6)->(2,2,4): sqrt(4+4+16) = sqrt(24).
    # pooled [0,0,0,2, 2,0,0,0,sqrt(24)]: HD = sqrt(24), ASSD = (4 + sqrt(24)) / 9.
    assert row["hd_mm"] == pytest.approx(math.sqrt(24))
    assert row["assd_mm"] == pytest.approx((4 + math.sqrt(24)) / 9)
    # HD95: sorted [0,0,0,0,0,0,2,2,4.899], position 0.95*8 = 7.6 -> 2 + 0.6 * (4.899 - 2)
    assert row["hd95_mm"] == pytest.approx(2 + 0.6 * (math.sqrt(24) - 2))


def test_row_reference_empty(mask) -> None:
    pred = mask((8, 8, 8), [(1, 1, z) for z in range(5)])
    row = evaluate_case(pred, mask((8, 8, 8), []), (1.0, 1.0, 1.0))
    assert row["ref_empty"] is True and row["pred_empty"] is False
    assert row["lfpr"] == 1.0  # the one predicted lesion touches no reference voxel
    for key in ("dice", "jaccard", "ppv", "msseg_lesion_ppv"):
        assert row[key] == 0.0, key
    for key in ("tpr", "rvd", "avd_isbi", "hd_mm", "hd95_mm", "assd_mm", "ltpr", "lesion_f1_isbi",
                "msseg_lesion_sensitivity", "msseg_lesion_f1"):  # fmt: skip
        assert math.isnan(row[key]), key
    assert (row["msseg_n_pred"], row["msseg_pred_volume_ml"]) == (1, pytest.approx(0.005))
    policy = EmptyPolicy(surface_one_empty=math.inf, tpr_ref_empty=1.0)
    row2 = evaluate_case(pred, mask((8, 8, 8), []), (1.0, 1.0, 1.0), policy=policy)
    assert row2["hd95_mm"] == math.inf and row2["tpr"] == 1.0


def test_row_both_empty_and_parameters(mask) -> None:
    e = mask((6, 6, 6), [])
    row = evaluate_case(e, e, (1.0, 1.0, 1.0), policy=EmptyPolicy.perfect_when_both_empty())
    assert (row["dice"], row["hd95_mm"], row["ltpr"], row["lfpr"], row["lesion_f1_isbi"]) == (1.0, 0.0, 1.0, 0.0, 1.0)
    assert row["ref_empty"] and row["pred_empty"] and row["msseg_n_pred"] == 0
    # the MSSEG parameters are passed through: a 2-voxel lesion counts once the minimum is 1 mm^3
    two = mask((6, 6, 6), [(1, 1, 1), (1, 1, 2)])
    assert evaluate_case(two, two, (1.0, 1.0, 1.0))["msseg_n_ref"] == 0
    assert evaluate_case(two, two, (1.0, 1.0, 1.0), msseg_min_volume_mm3=1.0)["msseg_n_ref"] == 1


def test_describe_by_hand() -> None:
    # [0.5, 0.7, 0.9]: mean 0.7, sd = sqrt((0.04 + 0 + 0.04) / 2) = 0.2, median 0.7
    assert describe([0.5, math.nan, 0.7, 0.9]) == pytest.approx({"mean": 0.7, "sd": 0.2, "median": 0.7, "n": 3})
    one = describe([0.4])
    assert one["mean"] == 0.4 and math.isnan(one["sd"]) and one["n"] == 1
    none = describe([math.nan])
    assert none["n"] == 0 and math.isnan(none["mean"]) and math.isnan(none["median"])


ROWS = [
    {"case": "a1", "site": "A", "dice": 0.5, "ppv": 0.6, "ltpr": 0.5, "lfpr": 0.2, "vol_pred_ml": 1.0, "vol_ref_ml": 2.0, "ref_empty": False},
    {"case": "a2", "site": "A", "dice": 0.7, "ppv": 0.8, "ltpr": 1.0, "lfpr": 0.0, "vol_pred_ml": 2.0, "vol_ref_ml": 4.0, "ref_empty": False},
    {"case": "b1", "site": "B", "dice": math.nan, "ppv": math.nan, "ltpr": math.nan, "lfpr": 1.0, "vol_pred_ml": 3.0, "vol_ref_ml": 0.0, "ref_empty": True},
    {"case": "b2", "site": "B", "dice": 0.9, "ppv": 1.0, "ltpr": 1.0, "lfpr": 0.0, "vol_pred_ml": 4.0, "vol_ref_ml": 5.0, "ref_empty": False},
]  # fmt: skip


def test_summarise_by_hand() -> None:
    s = summarise(ROWS, group_key="site")
    overall = s["overall"]
    assert s["n_cases"] == 4
    assert "case" not in overall and "site" not in overall
    assert overall["dice"] == pytest.approx({"mean": 0.7, "sd": 0.2, "median": 0.7, "n": 3})
    assert overall["lfpr"]["mean"] == pytest.approx(0.3)  # (0.2 + 0 + 1 + 0) / 4
    assert overall["ref_empty"]["mean"] == pytest.approx(0.25)
    # CORR: x = [1,2,3,4], y = [2,4,0,5]: dx = [-1.5,-.5,.5,1.5], dy = [-.75,1.25,-2.75,2.25];
    # sum dx*dy = 2.5, sum dx^2 = 5, sum dy^2 = 14.75 -> r = 2.5 / sqrt(73.75) = 0.291111...
    r = 0.291111254869791
    assert s["corr"] == pytest.approx(r)
    # hybrid = 0.7/8 + 0.8/8 + (1-0.3)/4 + (2.5/3)/4 + r/4 = 0.0875 + 0.1 + 0.175 + 0.208333 + r/4
    assert s["hybrid_score"] == pytest.approx(0.0875 + 0.1 + 0.175 + 0.2083333333333333 + r / 4)
    a, b = s["per_site"]["A"], s["per_site"]["B"]
    # site A: dice [0.5, 0.7] -> mean 0.6, sd sqrt(0.02) = 0.1414...; corr of [1,2] vs [2,4] = 1
    assert a["dice"] == pytest.approx({"mean": 0.6, "sd": 0.1414213562373095, "median": 0.6, "n": 2})
    sa, sb = s["per_site_scores"]["A"], s["per_site_scores"]["B"]
    assert (sa["n_cases"], sa["corr"]) == (2, pytest.approx(1.0))
    # A hybrid: 0.6/8 + 0.7/8 + (1-0.1)/4 + 0.75/4 + 1/4 = 0.075 + 0.0875 + 0.225 + 0.1875 + 0.25
    assert sa["hybrid_score"] == pytest.approx(0.825)
    # B: dice [nan, 0.9] -> n 1, sd NaN; lfpr mean 0.5; corr of [3,4] vs [0,5] = 1
    assert b["dice"]["n"] == 1 and math.isnan(b["dice"]["sd"])
    # B hybrid: 0.9/8 + 1/8 + 0.5/4 + 1/4 + 1/4 = 0.1125 + 0.125 + 0.125 + 0.25 + 0.25
    assert sb["hybrid_score"] == pytest.approx(0.8625)
    assert s["group_key"] == "site"
    assert s["empty_policy"] == EmptyPolicy().to_dict()
    json.dumps(s)  # plain types only (NaN allowed)


def test_summarise_without_groups_and_missing_keys() -> None:
    s = summarise(ROWS, group_key=None)
    assert "per_site" not in s and s["n_cases"] == 4
    rows = [dict(ROWS[0]), {k: v for k, v in ROWS[1].items() if k != "site"}]
    s = summarise(rows, group_key="site", policy=EmptyPolicy(corr_undefined=0.0))
    assert set(s["per_site"]) == {"A", "unknown"}
    assert s["per_site_scores"]["A"]["corr"] == 0.0  # one case: undefined -> policy value
    assert s["empty_policy"]["corr_undefined"] == 0.0
    s = summarise(ROWS, group_key="case")
    assert set(s["per_case"]) == {"a1", "a2", "b1", "b2"} and "site" not in s["overall"]


def test_summarise_real_rows(blob_pair) -> None:
    rows = []
    for seed in range(3):
        pred, ref = blob_pair(seed, (24, 24, 24))
        rows.append({"site": f"S{seed % 2}", **evaluate_case(pred, ref, (1.0, 1.0, 1.0))})
    s = summarise(rows)
    assert set(s["per_site"]) == {"S0", "S1"}
    assert set(CASE_COLUMNS) <= set(s["overall"])
    assert np.isfinite(s["hybrid_score"])
