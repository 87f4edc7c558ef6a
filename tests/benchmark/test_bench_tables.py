"""Tables on hand-made per-case metrics: mean ± sd, best method, Wilcoxon p against the best (hand-checked)."""

from __future__ import annotations

import math

import pytest

from mslesion.benchmark.tables import (
    best_method,
    compare_to_best,
    markdown_method_table,
    markdown_site_table,
    method_table,
    site_table,
    stars,
)

DICE = {
    "A": [0.80, 0.70, 0.90, 0.60, 0.75, 0.85],
    "B": [0.79, 0.68, 0.87, 0.56, 0.70, 0.79],  # A minus 0.01 .. 0.06: every difference positive, distinct
    "C": [0.81, 0.68, 0.93, 0.56, 0.70, 0.79],  # A - C = -0.01, 0.02, -0.03, 0.04, 0.05, 0.06
}
LFPR = {
    "A": [0.20, 0.30, 0.10, 0.40, 0.20, 0.30],
    "B": [0.19, 0.28, 0.07, 0.36, 0.15, 0.24],  # lowest mean: best for an error metric
    "C": [0.25, 0.35, 0.20, 0.45, 0.30, 0.40],
}


def _rows() -> list[dict]:
    rows = []
    for method in DICE:
        for i in range(6):
            rows.append(
                {
                    "method": method,
                    "dataset": "d",
                    "case_id": f"c{i}",
                    "site": "s1" if i < 3 else "s2",
                    "dice": DICE[method][i],
                    "lfpr": LFPR[method][i],
                }
            )
    return rows[::-1]  # order of rows must not matter: cases pair by (dataset, case_id)


def test_wilcoxon_against_best_hand_checked() -> None:
    records = {r["method"]: r for r in compare_to_best(_rows(), ["A", "B", "C"], "dice")}
    assert records["A"]["is_best"] and records["A"]["best_method"] == "A" and math.isnan(records["A"]["p_vs_best"])
    assert records["A"]["mean"] == pytest.approx(4.6 / 6) and records["A"]["sd"] == pytest.approx(0.108012, abs=1e-6)
    assert records["C"]["mean"] == pytest.approx(4.47 / 6) and records["A"]["n"] == 6
    # A vs B: 6 positive differences, exact two-sided p = 2 / 2^6.
    assert records["B"]["p_vs_best"] == pytest.approx(2 / 64) and records["B"]["stars"] == "*"
    # A vs C: negative ranks 1 and 3, W = 4; 7 of the 64 sign patterns have W <= 4 -> p = 14/64.
    assert records["C"]["p_vs_best"] == pytest.approx(14 / 64) and records["C"]["stars"] == ""


def test_error_metric_best_is_lowest() -> None:
    records = {r["method"]: r for r in compare_to_best(_rows(), ["A", "B", "C"], "lfpr")}
    assert records["B"]["is_best"] and records["B"]["mean"] == pytest.approx(1.29 / 6)
    assert records["A"]["p_vs_best"] == pytest.approx(2 / 64) and records["C"]["p_vs_best"] == pytest.approx(2 / 64)


def test_best_method_ties_and_nans() -> None:
    assert best_method({"x": 0.5, "y": 0.5}, "dice") == "x"
    assert best_method({"x": math.nan, "y": 0.2}, "dice") == "y"
    assert best_method({"x": math.nan}, "dice") is None
    assert [stars(p) for p in (0.0005, 0.001, 0.009, 0.049, 0.05, math.nan)] == ["***", "**", "**", "*", "", ""]


def test_markdown_marks_best_bold_and_escapes_stars() -> None:
    records = method_table(_rows(), ["A", "B", "C"], ["dice", "lfpr"])
    text = markdown_method_table(records, ["A", "B", "C"])
    lines = text.splitlines()
    assert lines[0] == "| method (n=6) | Dice | LFPR | CORR | hybrid |"
    assert lines[2].startswith("| A | **0.767 ± 0.108** | 0.250 ± 0.105 \\* | n/a |")
    assert lines[3].startswith("| B | 0.732 ± 0.109 \\* | **0.215 ± 0.102** |")


def test_site_table_and_spread() -> None:
    records = site_table(_rows(), ["A"], "dice")
    by_site = {r["site"]: r for r in records}
    assert by_site["s1"]["mean"] == pytest.approx(0.8) and by_site["s2"]["mean"] == pytest.approx(2.2 / 3)
    assert by_site["mean of sites"]["mean"] == pytest.approx((0.8 + 2.2 / 3) / 2)
    assert by_site["mean of sites"]["sd"] == pytest.approx(abs(0.8 - 2.2 / 3) / math.sqrt(2))
    assert markdown_site_table(records, ["A"]).splitlines()[0] == "| method | s1 | s2 | mean of sites |"
