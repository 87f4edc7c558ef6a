"""report.html is self-contained and readable; segment writes it with locations; no identifiers leak."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from mslesion.cli import app
from mslesion.io.volume import Volume
from mslesion.postprocess.lesions import lesion_rows, lesion_table
from mslesion.report.write import write_report

runner = CliRunner()


def test_report_is_self_contained_and_holds_the_table(tmp_path: Path, small_scan) -> None:
    flair_array, lesion, affine = small_scan
    flair = Volume.from_array(flair_array, affine)
    flair.path = Path("/data/secret-folder/flair.nii.gz")
    rows = lesion_rows(lesion_table(lesion, affine))
    for row in rows:
        row["location"] = "unknown"
    summary = {
        "lesion_count": len(rows),
        "total_volume_ml": 0.2,
        "locations": {"unknown": {"count": len(rows), "volume_ml": 0.2}},
        "model": {"path": "/m/default", "architecture": "unet", "version": "1"},
        "warnings": ["locations unknown"],
        "mslesion_version": "0.1.0",
    }
    qc = {"registration": {"flair_to_mni_ncc": 0.42, "warnings": ["FLAIR to MNI registration is poor"]}}
    html_path = write_report(
        tmp_path,
        case_id="case-7",
        inputs={"FLAIR": flair},
        flair=flair,
        mask=lesion,
        brain=flair_array > 0,
        lesions_rows=rows,
        summary=summary,
        qc=qc,
        pdf=True,
    )
    text = html_path.read_text()
    assert not re.search(r"<script[^>]*\bsrc=", text)  # scripts inline only: the NiiVue bundle, the viewer's data and controller
    assert text.count("<script>") == 2 and text.count('<script type="application/json" id="mslesion-viewer-data">') == 1
    markup = re.sub(r"<script[^>]*>.*?</script>", "", text, flags=re.S)
    assert not re.search(r"(href|src)=\"(?!data:)", markup) and "http" not in markup and "<link" not in markup
    assert text.count('src="data:image/png;base64,') == 2
    assert text.count('<tr class="lesion-row" data-mm=') == len(rows) and text.index("<h2>Images</h2>") < text.index("<h2>Viewer</h2>")
    assert "case-7" in text and "flair.nii.gz" in text and "secret-folder" not in text
    assert text.count("<tr>") >= len(rows) + 1 and "Unknown (not in MNI space)" in text
    assert "FLAIR to MNI registration is poor" in text and "0.42" in text
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["lesion_count"] == len(rows) == len(data["lesions"]) == 2
    assert data["model"]["name"] == "default" and "path" not in data["model"]
    assert "FLAIR to MNI registration is poor" in data["warnings"]
    assert (tmp_path / "report.pdf").read_bytes().startswith(b"%PDF")
    assert 'class="alert"' not in text  # no QC flag, no red notice


def test_flagged_brain_mask_gets_a_red_notice_with_its_overlay(tmp_path: Path, small_scan) -> None:
    flair_array, lesion, affine = small_scan
    flair = Volume.from_array(flair_array, affine)
    summary = {"lesion_count": 0, "total_volume_ml": 0.0, "locations": {}, "model": {}, "warnings": [], "mslesion_version": "0.1.0"}
    qc = {
        "brain_volume_ml": 2108.0,
        "flags": ["brain_volume", "mni_registration_not_converged"],
        "warnings": ["brain mask volume 2108 mL is outside the usual 900-1900 mL"],
    }
    text = write_report(
        tmp_path,
        case_id="c",
        inputs={"FLAIR": flair},
        flair=flair,
        mask=lesion,
        brain=flair_array > 0,
        lesions_rows=[],
        summary=summary,
        qc=qc,
    ).read_text()
    alert = text.index('class="alert"')
    assert "brain_volume, mni_registration_not_converged" in text[alert : alert + 300]
    assert text.count('alt="Brain mask overlay"') == 2  # beside the notice, and in the QC section
    assert alert < text.index("Lesions by location")


def test_segment_writes_report_and_locations(tmp_path: Path, tiny_model: Path, small_scan, nifti_writer) -> None:
    flair, _, affine = small_scan
    path = nifti_writer(tmp_path / "in" / "flair.nii.gz", flair, affine)
    out = tmp_path / "case-12"
    result = runner.invoke(app, ["segment", "--flair", str(path), "--out", str(out), "--model", str(tiny_model), "--flips", "1"])
    assert result.exit_code == 0, result.output
    assert (out / "report.html").is_file() and (out / "report.json").is_file()
    summary = json.loads((out / "summary.json").read_text())
    rows = list(csv.DictReader((out / "lesions.csv").open()))
    assert "location" in (rows[0] if rows else csv.DictReader((out / "lesions.csv").open()).fieldnames)
    assert all(r["location"] == "unknown" for r in rows)
    assert summary["locations"]["unknown"]["count"] == len(rows) if rows else "unknown" not in summary["locations"]
    assert any("not in MNI space" in w for w in summary["warnings"]) or not rows
    assert json.loads((out / "report.json").read_text())["case_id"] == "case-12"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


IDENTIFIERS = ("DOE", "JANE", "PID-12345", "19700101", "1970-01-01")


def _viewer_niftis(text: str) -> list[bytes]:
    """The NIfTI files embedded in report.html's viewer data, decompressed."""
    import base64
    import gzip

    config = json.loads(re.search(r'<script type="application/json" id="mslesion-viewer-data">(.*?)</script>', text, re.S).group(1))
    return [gzip.decompress(base64.b64decode(layer["data"])) for panel in config["panels"] for layer in panel["layers"]]


def test_segment_reads_a_dicom_series_folder(tmp_path: Path, tiny_model: Path, small_scan, write_series, caplog) -> None:
    flair, _, _ = small_scan
    folder = tmp_path / "dicom_flair"
    write_series(
        folder, np.round(flair).transpose(2, 1, 0), (1.0, 1.0, 1.2), (0.0, 0.0, 0.0), np.eye(3), "1.2.826.0.1.3680043.2.1125.9", "AX FLAIR"
    )
    out = tmp_path / "out"
    with caplog.at_level("DEBUG"):
        result = runner.invoke(app, ["segment", "--flair", str(folder), "--out", str(out), "--model", str(tiny_model), "--flips", "1"])
    assert result.exit_code == 0, result.output
    import nibabel as nib

    assert nib.load(str(out / "lesion_mask.nii.gz")).shape == (40, 44, 36)
    for name in ("report.html", "report.json", "summary.json"):
        text = re.sub(r"base64,[A-Za-z0-9+/=]+", "", (out / name).read_text())  # images may spell anything
        assert not [i for i in IDENTIFIERS if i in text], name
    page = (out / "report.html").read_text()
    niftis = _viewer_niftis(page)
    assert len(niftis) == 2  # FLAIR and the lesion mask
    for nifti in niftis:  # a fresh NIfTI-1 header, no extensions (voxels from byte 352): no DICOM field can ride along
        assert nifti[344:348] == b"n+1\0" and np.frombuffer(nifti[108:112], "<f4")[0] == 352.0
        assert not [i for i in IDENTIFIERS if i.encode() in nifti[:352]]
    assert not [i for i in IDENTIFIERS if i in caplog.text + result.output]
