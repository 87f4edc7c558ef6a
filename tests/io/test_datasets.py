"""Reading datasets: manifest tables, BIDS folders, nnU-Net raw folders; grid checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mslesion.errors import InputError
from mslesion.io.case import canonical_contrast
from mslesion.io.dataset import DatasetFormat, detect_format, load_dataset
from mslesion.io.manifest import read_manifest, write_manifest


def test_manifest_round_trip_with_relative_paths(tiny_case_dir: Path) -> None:
    rows = [
        {
            "case_id": "case01",
            "site": "A",
            "field_strength": 3,
            "FLAIR": "case01/FLAIR.nii.gz",
            "T1": "case01/T1.nii.gz",
            "lesion": "case01/lesion.nii.gz",
            "brain": "case01/brain.nii.gz",
        },
    ]
    manifest = write_manifest(rows, tiny_case_dir / "manifest.csv")
    assert manifest.read_text().splitlines()[0] == "case_id,site,field_strength,FLAIR,T1,lesion,brain"
    (case,) = read_manifest(manifest)
    assert case.case_id == "case01" and case.meta.site == "A" and case.meta.field_strength == 3.0
    assert case.contrasts == ["FLAIR", "T1"]
    assert int(case.lesion.array.sum()) == 3 * 4 * 4
    case.check_same_grid()
    assert detect_format(tiny_case_dir) is DatasetFormat.MANIFEST
    assert load_dataset(tiny_case_dir)[0].case_id == "case01"


def test_manifest_tsv_aliases_and_missing_cells(tiny_case_dir: Path) -> None:
    (tiny_case_dir / "m.tsv").write_text("id\tsite\tT1w\tflair\tmask\ncase01\t\t\tcase01/FLAIR.nii.gz\t\n")
    (case,) = read_manifest(tiny_case_dir / "m.tsv")
    assert case.contrasts == ["FLAIR"] and case.lesion is None and case.meta.site is None


def test_manifest_errors_name_the_file(tiny_case_dir: Path) -> None:
    (tiny_case_dir / "bad.csv").write_text("name,FLAIR\nx,case01/FLAIR.nii.gz\n")
    with pytest.raises(InputError, match="bad.csv: manifest has no 'case_id' column"):
        read_manifest(tiny_case_dir / "bad.csv")
    (tiny_case_dir / "missing.csv").write_text("case_id,FLAIR\nx,nowhere/FLAIR.nii.gz\n")
    with pytest.raises(InputError, match="nowhere/FLAIR.nii.gz: file not found"):
        read_manifest(tiny_case_dir / "missing.csv")


def test_contrasts_on_different_grids_are_refused(tiny_case_dir: Path, nifti_writer) -> None:
    nifti_writer(tiny_case_dir / "case01" / "T2.nii.gz", np.zeros((10, 20, 30), np.float32), np.diag([1, 1, 1, 1.0]))
    (tiny_case_dir / "m.csv").write_text("case_id,FLAIR,T2\ncase01,case01/FLAIR.nii.gz,case01/T2.nii.gz\n")
    (case,) = read_manifest(tiny_case_dir / "m.csv")
    with pytest.raises(InputError, match="T2.nii.gz: grid .* differs"):
        case.check_same_grid()


@pytest.mark.parametrize(
    ("name", "expected"),
    [("T1w", "T1"), ("flair", "FLAIR"), ("T1Gd", "T1POST"), ("t2-w", "T2"), ("DWI", "DWI")],
)
def test_contrast_names_are_canonical(name: str, expected: str) -> None:
    assert canonical_contrast(name) == expected


def _bids(root: Path, nifti_writer) -> Path:
    data = np.zeros((6, 7, 8), np.float32)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "t", "BIDSVersion": "1.8.0"}))
    (root / "participants.tsv").write_text("participant_id\tsite\nsub-01\tparis\nsub-02\tlyon\n")
    for ses in ("ses-1", "ses-2"):
        anat = root / "sub-01" / ses / "anat"
        nifti_writer(anat / f"sub-01_{ses}_FLAIR.nii.gz", data)
        nifti_writer(anat / f"sub-01_{ses}_T1w.nii.gz", data)
        nifti_writer(anat / f"sub-01_{ses}_ce-gadolinium_T1w.nii.gz", data)
        (anat / f"sub-01_{ses}_FLAIR.json").write_text(json.dumps({"MagneticFieldStrength": 3}))
    nifti_writer(root / "derivatives" / "manual" / "sub-01" / "ses-1" / "anat" / "sub-01_ses-1_label-lesion_mask.nii.gz", data)
    nifti_writer(root / "sub-02" / "anat" / "sub-02_T2w.nii.gz", data)
    return root


def test_bids_sessions_masks_and_metadata(tmp_path: Path, nifti_writer) -> None:
    root = _bids(tmp_path, nifti_writer)
    assert detect_format(root) is DatasetFormat.BIDS
    cases = {c.case_id: c for c in load_dataset(root)}
    assert sorted(cases) == ["sub-01_ses-1", "sub-01_ses-2", "sub-02"]
    first = cases["sub-01_ses-1"]
    assert first.contrasts == ["FLAIR", "T1", "T1POST"]
    assert first.lesion is not None and cases["sub-01_ses-2"].lesion is None
    assert first.meta.site == "paris" and first.meta.field_strength == 3.0 and first.meta.session == "ses-1"
    assert cases["sub-02"].contrasts == ["T2"] and cases["sub-02"].meta.site == "lyon"


def test_nnunet_folder(tmp_path: Path, nifti_writer) -> None:
    data = np.zeros((6, 7, 8), np.float32)
    (tmp_path / "dataset.json").write_text(
        json.dumps({"channel_names": {"0": "FLAIR", "1": "T1"}, "labels": {"background": 0, "lesion": 1}, "file_ending": ".nii.gz"})
    )
    for case in ("ms_001", "ms_002"):
        nifti_writer(tmp_path / "imagesTr" / f"{case}_0000.nii.gz", data)
        nifti_writer(tmp_path / "imagesTr" / f"{case}_0001.nii.gz", data)
    nifti_writer(tmp_path / "labelsTr" / "ms_001.nii.gz", data.astype(np.uint8))
    assert detect_format(tmp_path) is DatasetFormat.NNUNET
    cases = {c.case_id: c for c in load_dataset(tmp_path)}
    assert sorted(cases) == ["ms_001", "ms_002"]
    assert cases["ms_001"].contrasts == ["FLAIR", "T1"] and cases["ms_002"].lesion is None
    nifti_writer(tmp_path / "imagesTr" / "ms_003_0000.nii.gz", data)
    with pytest.raises(InputError, match=r"case ms_003 lacks channel\(s\) \['T1'\]"):
        load_dataset(tmp_path)


def test_unknown_layout(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown dataset layout"):
        load_dataset(tmp_path)


def test_longitudinal_pair_manifest(tiny_case_dir: Path) -> None:
    (tiny_case_dir / "pairs.csv").write_text(
        "case_id,site,baseline_FLAIR,followup_flair,baseline_lesion,lesion\n"
        "p1,A,case01/FLAIR.nii.gz,case01/T1.nii.gz,case01/lesion.nii.gz,case01/lesion.nii.gz\n"
    )
    (case,) = read_manifest(tiny_case_dir / "pairs.csv")
    assert case.contrasts == ["baseline_FLAIR", "followup_FLAIR"]
    assert list(case.extra_masks) == ["baseline_lesion"] and case.lesion is not None
    case.check_same_grid()
