"""`mslesion segment-dataset`: BIDS derivatives per session, a cohort CSV, skip-done, failures listed."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from typer.testing import CliRunner

from mslesion.cli import app

runner = CliRunner()


def test_segment_dataset_skips_done_and_lists_failures(tmp_path: Path, tiny_model: Path, small_scan, nifti_writer) -> None:
    flair, _, affine = small_scan
    bids = tmp_path / "bids"
    (bids / "dataset_description.json").parent.mkdir(parents=True)
    (bids / "dataset_description.json").write_text('{"Name": "tiny", "BIDSVersion": "1.9.0"}')
    for ses in ("ses-01", "ses-02"):
        nifti_writer(bids / "sub-01" / ses / "anat" / f"sub-01_{ses}_FLAIR.nii.gz", flair, affine)
        nifti_writer(bids / "sub-01" / ses / "anat" / f"sub-01_{ses}_T1w.nii.gz", flair[::-1].copy(), affine)
    nifti_writer(bids / "sub-02" / "ses-01" / "anat" / "sub-02_ses-01_T1w.nii.gz", flair, affine)  # no FLAIR: fails
    out = tmp_path / "derivatives" / "mslesion"
    args = ["segment-dataset", str(bids), "--out", str(out), "--model", str(tiny_model)]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "2 segmented, 0 already done, 1 failed" in result.output
    assert "failed: sub-02_ses-01" in result.output and "FLAIR image is required" in result.output
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative" and description["GeneratedBy"][0]["Name"] == "mslesion"
    anat = out / "sub-01" / "ses-02" / "anat"
    for suffix in (
        "space-orig_label-lesion_mask.nii.gz",
        "space-orig_label-lesion_probseg.nii.gz",
        "space-orig_label-lesion_mask.json",
        "space-orig_desc-lesions_table.csv",
        "report.html",
        "report.json",
    ):
        assert (anat / f"sub-01_ses-02_{suffix}").is_file(), suffix
    sidecar = json.loads((anat / "sub-01_ses-02_space-orig_label-lesion_mask.json").read_text())
    assert sidecar["Sources"] == [
        "bids:raw:sub-01/ses-02/anat/sub-01_ses-02_FLAIR.nii.gz",
        "bids:raw:sub-01/ses-02/anat/sub-01_ses-02_T1w.nii.gz",
    ]
    assert json.loads((anat / "sub-01_ses-02_report.json").read_text())["case_id"] == "sub-01_ses-02"
    rows = list(csv.DictReader((out / "cohort.csv").open()))
    assert [(r["subject"], r["session"]) for r in rows] == [("sub-01", "ses-01"), ("sub-01", "ses-02")]
    assert "periventricular_count" in rows[0] and rows[0]["lesion_count"] == str(sidecar["lesion_count"])
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    page = (out / "cohort.html").read_text()
    links = re.findall(r'<a href="([^"]+)">report</a>', page)
    assert links == ["sub-01/ses-01/anat/sub-01_ses-01_report.html", "sub-01/ses-02/anat/sub-01_ses-02_report.html"]
    assert all((out / link).is_file() for link in links)
    assert "Failed (1)" in page and "sub-02_ses-01" in page and "FLAIR image is required" in page
    assert 'alt="Lesion volume per session"' in page and "<script" not in page

    again = runner.invoke(app, args)
    assert again.exit_code == 1 and "0 segmented, 2 already done, 1 failed" in again.output
    assert len(list(csv.DictReader((out / "cohort.csv").open()))) == 2


def test_segment_dataset_bad_folder_is_one_line(tmp_path: Path, tiny_model: Path) -> None:
    result = runner.invoke(app, ["segment-dataset", str(tmp_path / "nope"), "--out", str(tmp_path / "o"), "--model", str(tiny_model)])
    assert result.exit_code == 2 and "BIDS folder not found" in result.output


def test_cohort_page_groups_volumes_by_site_and_shows_flags(tmp_path: Path) -> None:
    from mslesion.report.cohort import write_cohort_page

    rows = [
        {
            "name": f"sub-{i:02d}",
            "lesion_count": i,
            "total_volume_ml": 0.5 * i,
            "flags": ["brain_volume"] if i == 3 else [],
            "warnings": 1,
            "report": f"sub-{i:02d}/anat/sub-{i:02d}_report.html",
            "site": "A" if i % 2 else "B",
            "scanner": None,
        }
        for i in range(1, 7)
    ]
    page = write_cohort_page(tmp_path, rows, {}).read_text()
    assert page.count('<a href="sub-') == 6 and "Failed" not in page and "1 with QC flags" in page
    assert "brain_volume" in page and "median 1.75 mL" in page and page.count("data:image/png;base64,") == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
