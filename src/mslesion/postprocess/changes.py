"""What each changed lesion is: new, enlarging, shrinking or resolved, with its volume at both visits.

A change component (26-connected, in the order of `lesions.lesion_table`: by decreasing volume)
is compared with the single-visit lesion masks of both visits: the lesions of a visit that
overlap or touch (26-neighbours) the component make up its volume at that visit. No lesion there at baseline: new; none
left at follow-up: resolved; otherwise enlarging or shrinking by the sign of the volume change.
The Lesjak change masks (the real pairs shared here) mark all four together, unsigned.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
from scipy import ndimage

from mslesion.components import label_components, touched_components
from mslesion.postprocess.lesions import ranked_labels


class ChangeKind(StrEnum):
    """How a lesion changed between the visits."""

    NEW = "new"
    ENLARGING = "enlarging"
    SHRINKING = "shrinking"
    RESOLVED = "resolved"


def _touching_volume(region: np.ndarray, visit_labels: np.ndarray, visit_sizes: np.ndarray) -> int:
    """Voxels of the visit's lesions that share a voxel with `region`."""
    touched = np.unique(visit_labels[region])
    touched = touched[touched > 0]
    return int(visit_sizes[touched].sum())


def classify_changes(
    change: np.ndarray, baseline_lesions: np.ndarray, followup_lesions: np.ndarray, voxel_ml: float, connectivity: int = 26
) -> list[dict[str, float | str]]:
    """One dict per change component (lesion_id order): `change` kind, `baseline_volume_ml`, `followup_volume_ml`.

    Labels the three masks; whoever has their labels already calls `classify_labelled_changes`.
    """
    labels, _ = ranked_labels(change > 0, connectivity)
    baseline, followup = (label_components(lesions > 0, connectivity)[0] for lesions in (baseline_lesions, followup_lesions))
    return classify_labelled_changes(labels, baseline, followup, voxel_ml)


def classify_labelled_changes(
    labels: np.ndarray, baseline_labels: np.ndarray, followup_labels: np.ndarray, voxel_ml: float
) -> list[dict[str, float | str]]:
    """`classify_changes` of change lesions labelled 1..n (`lesions.lesion_labels`: the ids of the lesion table)
    and of each visit's lesions (any labelling), without labelling anything again."""
    visits = [(visit_labels, np.bincount(visit_labels.ravel())) for visit_labels in (baseline_labels, followup_labels)]
    out = []
    ring = ndimage.generate_binary_structure(3, 3)
    for lesion_id, box in enumerate(ndimage.find_objects(labels), start=1):  # each component's box: no full-volume scan per lesion
        box = tuple(slice(max(s.start - 1, 0), min(s.stop + 1, n_vox)) for s, n_vox in zip(box, labels.shape))
        # The component and its 26-neighbours: the rim of a grown or shrunk lesion lies beside it, not on it.
        region = ndimage.binary_dilation(labels[box] == lesion_id, ring)
        before, after = (_touching_volume(region, visit_labels[box], sizes) for visit_labels, sizes in visits)
        if before == 0:
            kind = ChangeKind.NEW
        elif after == 0:
            kind = ChangeKind.RESOLVED
        else:
            kind = ChangeKind.ENLARGING if after >= before else ChangeKind.SHRINKING
        out.append(
            {"change": kind.value, "baseline_volume_ml": round(before * voxel_ml, 4), "followup_volume_ml": round(after * voxel_ml, 4)}
        )
    return out


def grow_into_lesions(seeds: np.ndarray, lesions: np.ndarray, connectivity: int = 26) -> np.ndarray:
    """The seeds, each with the whole of every lesion it touches: the connected components of
    `seeds | lesions` that hold a seed voxel.

    Why: raters of change (the Lesjak database among them) mark an enlarging lesion whole, while a
    difference image only lights its new rim; growing a change candidate into the follow-up's lesion
    gives the lesion's extent."""
    seeds = np.asarray(seeds, bool)
    labels, n = label_components(seeds | np.asarray(lesions, bool), connectivity)
    return touched_components(labels, n, seeds)[labels]


def change_counts(rows: list[dict]) -> dict[str, int]:
    """How many changed lesions of each kind (every kind listed, zeros included)."""
    return {kind.value: sum(1 for r in rows if r.get("change") == kind.value) for kind in ChangeKind}
