"""Lesion locations: hand-made blobs in known places of the MNI atlas get the McDonald class they should."""

from __future__ import annotations

import numpy as np
import pytest

from mslesion.postprocess.lesions import lesion_table, ranked_labels
from mslesion.postprocess.locations import (
    annotate_locations,
    classify_lesions,
    load_atlas,
    locate_lesions,
    location_summary,
)
from mslesion.space.grid import FSL_MNI_AFFINE, FSL_MNI_SHAPE


def _blob_at(voxel: np.ndarray, radius: int = 1) -> np.ndarray:
    mask = np.zeros(FSL_MNI_SHAPE, np.uint8)
    i, j, k = (int(v) for v in voxel)
    mask[i - radius : i + radius + 1, j - radius : j + radius + 1, k - radius : k + radius + 1] = 1
    return mask


def _voxel_where(condition: np.ndarray) -> np.ndarray:
    """The voxel of `condition` nearest the centre of its voxels (deterministic)."""
    idx = np.argwhere(condition)
    return idx[np.argmin(np.linalg.norm(idx - idx.mean(axis=0), axis=1))]


def _mni_voxel(xyz: tuple[float, float, float]) -> np.ndarray:
    return np.rint(np.linalg.inv(FSL_MNI_AFFINE) @ np.append(xyz, 1.0))[:3].astype(int)


def _atlas_places() -> dict[str, np.ndarray]:
    a = load_atlas()
    supra = a.brain & ~a.infratentorial
    far = (a.ventricle_dist >= 8) & (a.cortex_dist >= 8)
    return {
        "periventricular": _voxel_where(supra & (a.ventricle_dist >= 1.9) & (a.ventricle_dist <= 2.1) & (a.cortex_dist >= 8)),
        "juxtacortical": _voxel_where(
            supra & (a.cortex_dist >= 0.9) & (a.cortex_dist <= 1.1) & (a.ventricle_dist >= 8) & (np.indices(a.brain.shape)[2] > 120)
        ),
        "deep_white_matter": _voxel_where(supra & far & (np.indices(a.brain.shape)[2] > 100)),
        "infratentorial": _mni_voxel((0.0, -60.0, -35.0)),  # cerebellar vermis
    }


@pytest.mark.parametrize("expected", ["periventricular", "juxtacortical", "deep_white_matter", "infratentorial"])
def test_blob_in_known_place_gets_its_class(expected: str) -> None:
    labels, n = ranked_labels(_blob_at(_atlas_places()[expected]))
    assert n == 1
    assert classify_lesions(labels, FSL_MNI_AFFINE) == {1: expected}


def test_brainstem_blob_is_infratentorial_and_ventricle_touching_blob_is_periventricular() -> None:
    a = load_atlas()
    mask = _blob_at(_mni_voxel((0.0, -28.0, -35.0)), 2)  # pons
    inside_ventricle = _voxel_where((a.ventricle_dist == 0) & ~a.infratentorial)
    mask |= _blob_at(inside_ventricle)
    labels, _ = ranked_labels(mask)
    assert sorted(classify_lesions(labels, FSL_MNI_AFFINE).values()) == ["infratentorial", "periventricular"]


def test_ranked_labels_number_lesions_like_lesion_table(rng: np.random.Generator) -> None:
    mask = np.zeros((30, 30, 30), np.uint8)
    mask[2:4, 2:4, 2:4] = 1
    mask[10:15, 10:15, 10:15] = 1
    mask[20:23, 20:23, 20:23] = 1
    labels, n = ranked_labels(mask)
    table = lesion_table(mask, np.eye(4))
    assert n == 3 == len(table)
    for les in table:
        assert labels[int(round(les.centroid_i)), int(round(les.centroid_j)), int(round(les.centroid_k))] == les.lesion_id


def test_world_lookup_works_on_a_flipped_grid() -> None:
    """The same blob on an LPS-stored copy of the grid gets the same class (lookup goes through world mm)."""
    mask = _blob_at(_atlas_places()["periventricular"])
    flipped = mask[::-1, ::-1].copy()
    affine = FSL_MNI_AFFINE @ np.array([[-1, 0, 0, FSL_MNI_SHAPE[0] - 1], [0, -1, 0, FSL_MNI_SHAPE[1] - 1], [0, 0, 1, 0], [0, 0, 0, 1]])
    labels, _ = ranked_labels(flipped)
    assert classify_lesions(labels, affine) == {1: "periventricular"}


def test_not_mni_input_gives_unknown_with_a_warning(small_scan) -> None:
    flair, lesion, affine = small_scan
    labels, n = ranked_labels(lesion)
    locations, qc, warnings = locate_lesions(labels, flair > 0, affine)
    assert set(locations.values()) == {"unknown"} and len(locations) == n
    assert len(warnings) == 1 and "not in MNI space" in warnings[0]
    straight = np.diag([1.0, 1.0, 1.0, 1.0])
    _, qc, warnings = locate_lesions(labels, flair > 0, straight)
    assert warnings and "scale 4.3" in warnings[0]  # an ellipsoid fits the template well once scaled: the scale check catches it


def test_template_brain_itself_is_accepted_and_counts_add_up() -> None:
    a = load_atlas()
    mask = _blob_at(_atlas_places()["periventricular"]) | _blob_at(_atlas_places()["deep_white_matter"], 2)
    rows = [{"lesion_id": les.lesion_id, "volume_ml": les.volume_ml} for les in lesion_table(mask, FSL_MNI_AFFINE)]
    summary, qc, warnings = annotate_locations(rows, ranked_labels(mask)[0], a.parenchyma, FSL_MNI_AFFINE)
    assert not warnings and qc["template_dice"] > 0.95
    assert [r["location"] for r in rows] == ["deep_white_matter", "periventricular"]
    assert summary["deep_white_matter"] == {"count": 1, "volume_ml": pytest.approx(0.125)}
    assert summary["periventricular"]["count"] == 1 and summary["infratentorial"]["count"] == 0
    assert "unknown" not in summary
    assert location_summary({}, {})["juxtacortical"] == {"count": 0, "volume_ml": 0.0}


@pytest.mark.slow
def test_packaged_atlas_matches_a_fresh_derivation() -> None:
    from mslesion.postprocess.locations import build_atlas_arrays

    fresh = build_atlas_arrays()
    a = load_atlas()
    assert np.array_equal(fresh["infratentorial"], a.infratentorial)
    assert np.array_equal(fresh["parenchyma"], a.parenchyma)
    np.testing.assert_allclose(fresh["ventricle_dist"] / 10.0, a.ventricle_dist, atol=1e-6)
    np.testing.assert_allclose(fresh["cortex_dist"] / 10.0, a.cortex_dist, atol=1e-6)


@pytest.mark.shared_data
def test_real_mni_patient_gets_every_supratentorial_class(shared_data) -> None:
    from mslesion.io.volume import load_volume

    flair = load_volume(shared_data / "lesjak-mni" / "patient07" / "FLAIR.nii.gz")
    lesion = load_volume(shared_data / "lesjak-mni" / "patient07" / "lesion.nii.gz")
    labels, n = ranked_labels(lesion.array > 0)
    locations, qc, warnings = locate_lesions(labels, flair.array != 0, flair.affine)
    assert not warnings and qc["template_dice"] > 0.9 and len(locations) == n
    assert {"periventricular", "juxtacortical", "deep_white_matter"} <= set(locations.values())
