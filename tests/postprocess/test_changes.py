"""Changed lesions classified against both visits' lesion masks: new, enlarging, shrinking, resolved."""

from __future__ import annotations

import numpy as np

from mslesion.postprocess.changes import ChangeKind, change_counts, classify_changes
from mslesion.postprocess.lesions import lesion_table, ranked_labels


def _box(shape: tuple[int, int, int], lo: tuple[int, int, int], size: tuple[int, int, int]) -> np.ndarray:
    out = np.zeros(shape, bool)
    out[tuple(slice(a, a + n) for a, n in zip(lo, size))] = True
    return out


def test_each_kind_of_change_with_its_volumes() -> None:
    shape = (40, 40, 20)
    grows_before, grows_after = _box(shape, (2, 2, 2), (3, 3, 3)), _box(shape, (2, 2, 2), (5, 5, 3))
    shrinks_before, shrinks_after = _box(shape, (20, 2, 2), (6, 6, 3)), _box(shape, (20, 2, 2), (3, 3, 3))
    appears = _box(shape, (2, 20, 10), (2, 2, 2))
    vanishes = _box(shape, (20, 20, 10), (4, 4, 4))
    baseline = grows_before | shrinks_before | vanishes
    followup = grows_after | shrinks_after | appears
    change = baseline ^ followup
    rows = classify_changes(change, baseline, followup, voxel_ml=0.001)
    # lesion_table's order (decreasing size): vanished 64, shrinking rim 81, growing rim 48, new 8 voxels
    sizes = [les.voxels for les in lesion_table(change.astype(np.uint8), np.eye(4))]
    assert sizes == [81, 64, 48, 8]
    assert [r["change"] for r in rows] == ["shrinking", "resolved", "enlarging", "new"]
    assert rows[0]["baseline_volume_ml"] == 0.108 and rows[0]["followup_volume_ml"] == 0.027
    assert rows[1]["baseline_volume_ml"] == 0.064 and rows[1]["followup_volume_ml"] == 0.0
    assert rows[2]["baseline_volume_ml"] == 0.027 and rows[2]["followup_volume_ml"] == 0.075
    assert rows[3]["baseline_volume_ml"] == 0.0 and rows[3]["followup_volume_ml"] == 0.008
    assert change_counts(rows) == {"new": 1, "enlarging": 1, "shrinking": 1, "resolved": 1}
    assert [k.value for k in ChangeKind] == ["new", "enlarging", "shrinking", "resolved"]


def test_ranked_labels_number_components_as_the_lesion_table_does() -> None:
    mask = _box((20, 20, 20), (1, 1, 1), (2, 2, 2)) | _box((20, 20, 20), (10, 10, 10), (4, 4, 4))
    labels, n = ranked_labels(mask)
    assert n == 2 and (labels == 1).sum() == 64 and (labels == 2).sum() == 8
    assert classify_changes(np.zeros((5, 5, 5)), np.zeros((5, 5, 5)), np.zeros((5, 5, 5)), 0.001) == []


def test_a_seed_grows_into_the_whole_lesion_it_touches_and_no_further() -> None:
    """grown-subtraction's extent: a candidate on the rim of a follow-up lesion takes the lesion whole (26-neighbours
    count as touching); a lesion no candidate touches stays out; a candidate outside every lesion stays as it is."""
    from mslesion.postprocess.changes import grow_into_lesions

    shape = (30, 30, 10)
    touched, untouched = _box(shape, (2, 2, 2), (6, 6, 3)), _box(shape, (20, 20, 2), (5, 5, 3))
    rim_seed = _box(shape, (8, 8, 5), (1, 1, 1))  # corner to corner with `touched`: a 26-neighbour only
    lone_seed = _box(shape, (20, 2, 2), (2, 2, 2))
    grown = grow_into_lesions(rim_seed | lone_seed, touched | untouched)
    assert np.array_equal(grown, touched | rim_seed | lone_seed)
    assert not grow_into_lesions(np.zeros(shape, bool), touched).any()
