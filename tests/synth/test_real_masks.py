"""Lesions sampled from real expert masks (shared data): real shapes at their real positions."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from mslesion.errors import InputError
from mslesion.synth import LesionKind, load_lesion_library, make_dataset, make_subject
from mslesion.synth.grid import downsample

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def real_masks(lesion_masks_dir):
    """Each real mask, read with nibabel directly (independent of the code under test)."""
    files = sorted(lesion_masks_dir.glob("*.nii*"))
    return {f.name.split(".nii")[0]: np.asarray(nib.load(f).dataobj) > 0 for f in files}


def test_library_holds_every_component(lesion_masks_dir, real_masks):
    library = load_lesion_library(lesion_masks_dir)
    assert len(library.donors) == len(real_masks) and set(library.donors) == set(real_masks)
    assert library.n_components > 1000
    total = sum(c.volume_mm3 for comps in library.components for c in comps)
    assert total == sum(int(m.sum()) for m in real_masks.values())
    assert load_lesion_library(lesion_masks_dir) is library  # cached


def test_lesion_voxels_come_from_real_masks_at_1mm(lesion_masks_dir, real_masks, sites):
    ph = make_subject(
        3,
        sites[1],
        resolution_mm=1,
        deform=False,
        lesion_masks_dir=lesion_masks_dir,
        n_lesions=40,
        contrasts=("FLAIR",),
    )
    assert ph.meta["n_lesions"] > 20
    assert np.all(ph.lesion_ids[ph.lesion > 0] > 0)
    for row in ph.lesions:  # each lesion's voxels lie inside the mask of the patient it was taken from
        assert row["source"].startswith("real:")
        donor = row["source"][len("real:") :].split("#")[0]
        own = ph.lesion_ids == row["id"]
        assert own.sum() == row["voxels"]
        assert np.all(real_masks[donor][own])
    assert {r["kind"] for r in ph.lesions} <= {str(k) for k in LesionKind}


def test_real_lesions_on_a_coarse_grid_stay_where_real_lesions_are(lesion_masks_dir, real_masks, sites):
    ph = make_subject(5, sites[0], resolution_mm=2, deform=False, lesion_masks_dir=lesion_masks_dir, n_lesions=60)
    union = np.any(np.stack(list(real_masks.values())), axis=0).astype(np.float32)
    touched = downsample(union, 2.0) > 0  # 2 mm voxels holding any real lesion voxel
    assert ph.lesion.sum() > 0 and np.all(touched[ph.lesion > 0])
    flair = ph.images["FLAIR"]
    wm = (ph.tissues["WM"] > 0.9) & (ph.lesion == 0)
    assert flair[ph.lesion > 0].mean() > 1.2 * flair[wm].mean()


def test_jitter_moves_real_lesions(lesion_masks_dir, sites):
    kwargs = dict(resolution_mm=2, deform=False, lesion_masks_dir=lesion_masks_dir, n_lesions=30, contrasts=("FLAIR",))
    still = make_subject(6, sites[0], **kwargs)
    moved = make_subject(6, sites[0], jitter_mm=3, **kwargs)
    assert not np.array_equal(still.lesion, moved.lesion)


def test_dataset_with_real_masks(lesion_masks_dir, tmp_path):
    make_dataset(tmp_path, 1, seed=3, resolution_mm=3, lesion_masks_dir=lesion_masks_dir, deform=False)
    lesion = np.asarray(nib.load(tmp_path / "synth-0000" / "lesion.nii.gz").dataobj)
    assert lesion.shape == (61, 73, 61)


def test_bad_mask_folders_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="no lesion masks"):
        load_lesion_library(tmp_path)
    nib.save(nib.Nifti1Image(np.ones((10, 10, 10), np.uint8), np.eye(4)), str(tmp_path / "small.nii.gz"))
    with pytest.raises(InputError, match="MNI152"):
        load_lesion_library(tmp_path)
    with pytest.raises(InputError, match="not found"):
        load_lesion_library(tmp_path / "missing")
