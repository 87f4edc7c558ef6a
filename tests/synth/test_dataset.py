"""Datasets on disk: folder and BIDS layouts, manifests the toolkit reads back."""

from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest

from mslesion.errors import InputError
from mslesion.io.manifest import read_manifest
from mslesion.synth import make_dataset, make_sites, make_subject, subject_seed


@pytest.fixture(scope="module")
def folder_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth_folders")
    calls = []
    manifest = make_dataset(out, 3, seed=5, n_sites=2, resolution_mm=3, progress=lambda i, n: calls.append((i, n)))
    return out, manifest, calls


def test_folder_layout_reads_back(folder_dataset):
    out, manifest, calls = folder_dataset
    assert manifest == out / "manifest.csv" and calls == [(1, 3), (2, 3), (3, 3)]
    cases = read_manifest(manifest)
    assert [c.case_id for c in cases] == ["synth-0000", "synth-0001", "synth-0002"]
    for case in cases:
        assert case.contrasts == ["FLAIR", "T1", "T2", "PD"]
        case.check_same_grid()
        assert case.lesion is not None and case.brain is not None
        assert case.images["FLAIR"].array.dtype == np.float32
        assert set(np.unique(case.lesion.array)) <= {0, 1}
        assert case.lesion.array.dtype == np.uint8 and case.brain.array.dtype == np.uint8
        assert np.all(case.brain.array[case.lesion.array > 0] == 1)
        assert (out / case.case_id / "phantom.json").is_file()
    assert [c.meta.site for c in cases] == ["site0", "site1", "site0"]
    assert cases[0].meta.field_strength in (1.5, 3.0) and cases[0].meta.scanner
    synth = json.loads((out / "synth.json").read_text())
    assert synth["seed"] == 5 and len(synth["sites"]) == 2


def test_written_files_match_the_in_memory_phantom(folder_dataset):
    out, _, _ = folder_dataset
    site = make_sites(2, 5)[1]
    phantom = make_subject(np.random.default_rng(subject_seed(5, 1)), site, resolution_mm=3)
    img = nib.load(out / "synth-0001" / "FLAIR.nii.gz")
    assert np.array_equal(np.asarray(img.dataobj), phantom.images["FLAIR"])
    np.testing.assert_allclose(img.affine, phantom.affine)
    assert np.array_equal(np.asarray(nib.load(out / "synth-0001" / "lesion.nii.gz").dataobj), phantom.lesion)


def test_growing_a_dataset_keeps_earlier_cases(folder_dataset, tmp_path):
    out, _, _ = folder_dataset
    make_dataset(tmp_path, 2, seed=5, n_sites=2, resolution_mm=3)
    for cid in ("synth-0000", "synth-0001"):
        a = np.asarray(nib.load(out / cid / "T2.nii.gz").dataobj)
        b = np.asarray(nib.load(tmp_path / cid / "T2.nii.gz").dataobj)
        assert np.array_equal(a, b)


def test_bids_layout(tmp_path):
    manifest = make_dataset(tmp_path, 2, seed=1, resolution_mm=3, layout="bids", n_sites=2)
    for i in (0, 1):
        sub = f"sub-{i:04d}"
        anat = tmp_path / sub / "ses-01" / "anat"
        for suffix in ("FLAIR", "T1w", "T2w", "PD"):
            assert (anat / f"{sub}_ses-01_{suffix}.nii.gz").is_file()
            assert json.loads((anat / f"{sub}_ses-01_{suffix}.json").read_text())["MagneticFieldStrength"] in (1.5, 3.0)
        deriv = tmp_path / "derivatives" / "mslesion-synth" / sub / "ses-01" / "anat"
        assert (deriv / f"{sub}_ses-01_label-lesion_mask.nii.gz").is_file()
        assert (deriv / f"{sub}_ses-01_label-brain_mask.nii.gz").is_file()
    description = json.loads((tmp_path / "dataset_description.json").read_text())
    assert description["BIDSVersion"] and description["Name"]
    deriv_description = json.loads((tmp_path / "derivatives" / "mslesion-synth" / "dataset_description.json").read_text())
    assert deriv_description["DatasetType"] == "derivative"
    with open(tmp_path / "participants.tsv", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert [r["participant_id"] for r in rows] == ["sub-0000", "sub-0001"]
    assert [r["site"] for r in rows] == ["site0", "site1"] and all(r["field_strength"] for r in rows)
    cases = read_manifest(manifest)
    assert [c.contrasts for c in cases] == [["FLAIR", "T1", "T2", "PD"]] * 2
    assert cases[1].meta.subject == "sub-0001" and cases[1].meta.session == "ses-01"


def test_longitudinal_folder_layout(tmp_path):
    manifest = make_dataset(tmp_path, 2, seed=2, longitudinal=True, resolution_mm=3)
    with open(manifest, newline="") as fh:
        rows = list(csv.DictReader(fh))
    expected = {
        "case_id",
        "site",
        "baseline_FLAIR",
        "followup_FLAIR",
        "baseline_T1",
        "followup_T1",
        "lesion",
        "brain",
        "baseline_lesion",
        "followup_lesion",
    }
    assert expected <= set(rows[0])
    folder = tmp_path / "synth-0001"
    for name in (
        "baseline_FLAIR",
        "followup_FLAIR",
        "baseline_T1",
        "followup_T1",
        "baseline_lesion",
        "followup_lesion",
        "new_lesion",
        "brain",
    ):
        assert (folder / f"{name}.nii.gz").is_file()
    assert rows[1]["lesion"] == "synth-0001/new_lesion.nii.gz"
    # pair 1 is a stable pair by construction: no new lesion
    assert np.asarray(nib.load(folder / "new_lesion.nii.gz").dataobj).sum() == 0
    pair_meta = json.loads((folder / "pair.json").read_text())["pair"]
    assert pair_meta["n_new_lesions"] == 0
    cases = read_manifest(manifest)
    assert cases[0].lesion is not None and cases[0].lesion.path.name == "new_lesion.nii.gz"
    assert cases[0].brain is not None
    assert cases[0].contrasts == ["baseline_FLAIR", "baseline_T1", "followup_FLAIR", "followup_T1"]
    assert sorted(cases[0].extra_masks) == ["baseline_lesion", "followup_lesion"]


def test_longitudinal_bids_layout(tmp_path):
    make_dataset(tmp_path, 1, seed=2, longitudinal=True, resolution_mm=3, layout="bids")
    deriv = tmp_path / "derivatives" / "mslesion-synth" / "sub-0000"
    assert (tmp_path / "sub-0000" / "ses-02" / "anat" / "sub-0000_ses-02_FLAIR.nii.gz").is_file()
    assert (deriv / "ses-02" / "anat" / "sub-0000_ses-02_label-newlesion_mask.nii.gz").is_file()
    assert (deriv / "ses-01" / "anat" / "sub-0000_ses-01_label-lesion_mask.nii.gz").is_file()


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(n=0),
        dict(n_sites=0),
        dict(layout="nifti"),
        dict(resolution_mm=0.2),
        dict(lesion_masks_dir="/nonexistent"),
        dict(seed=-1),
        dict(dawm=-0.1),
    ],
)
def test_bad_arguments_are_input_errors(tmp_path, kwargs):
    args = dict(out_dir=tmp_path, n=1, seed=0, resolution_mm=3) | kwargs
    with pytest.raises(InputError):
        make_dataset(**args)
    assert not (tmp_path / "manifest.csv").exists()
