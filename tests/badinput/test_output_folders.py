"""Output folders are ours or refused; an older run is replaced whole; a killed run's staging goes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mslesion import __version__
from mslesion.errors import InputError
from mslesion.io.outdir import is_mslesion_run, prepare_out, staged_output


def visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _old_run(folder: Path) -> Path:
    """A previous mslesion run: its summary, a mask, a brain mask of another grid and a staging folder of a killed run."""
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({"lesion_count": 3, "mslesion_version": "0.0.1"}))
    (folder / "lesion_mask.nii.gz").write_bytes(b"old mask")
    (folder / "brain_mask.nii.gz").write_bytes(b"old brain mask, another grid")
    (folder / "figures").mkdir()
    (folder / "figures" / "old.png").write_bytes(b"png")
    (folder / ".staging-deadbeef").mkdir()
    (folder / ".staging-deadbeef" / "lesion_mask.nii.gz").write_bytes(b"half written")
    return folder


def _publish(out: Path) -> None:
    prepare_out(out)
    with staged_output(out) as staging:
        staging.mkdir()
        (staging / "lesion_mask.nii.gz").write_bytes(b"new mask")
        (staging / "summary.json").write_text(json.dumps({"lesion_count": 1, "mslesion_version": __version__}))


def test_foreign_folder_is_refused_by_segment(tmp_path: Path, tiny_model: Path, ready_scan: Path, refused) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    refused(["segment", "--flair", ready_scan, "--out", out, "--model", tiny_model], out, message="holds no previous mslesion run")
    assert visible(out) == ["notes.txt"] and (out / "notes.txt").read_text() == "my notes"


def test_a_file_as_output_folder_is_refused(tmp_path: Path, tiny_model: Path, ready_scan: Path, refused) -> None:
    out = tmp_path / "result.nii.gz"
    out.write_bytes(b"a file")
    refused(["segment", "--flair", ready_scan, "--out", out, "--model", tiny_model], out, message="is a file")
    assert out.read_bytes() == b"a file"


def test_foreign_folder_is_refused_by_preprocess_before_the_work(tmp_path: Path, ready_scan: Path, refused) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "data.csv").write_text("a,b\n")
    refused(["preprocess", "--flair", ready_scan, "--out", out], out, message="holds no previous mslesion run")
    assert visible(out) == ["data.csv"]


def test_an_input_inside_a_previous_run_is_refused_not_deleted(tmp_path: Path, tiny_model: Path, ready_scan: Path, refused) -> None:
    out = _old_run(tmp_path / "out")
    flair = out / "flair.nii.gz"
    flair.write_bytes(ready_scan.read_bytes())
    refused(["segment", "--flair", flair, "--out", out, "--model", tiny_model], flair, message="lies inside the output folder")
    assert flair.read_bytes() == ready_scan.read_bytes() and (out / "brain_mask.nii.gz").is_file()


def test_previous_run_is_replaced_whole(tmp_path: Path) -> None:
    out = _old_run(tmp_path / "out")
    _publish(out)
    assert visible(out) == ["lesion_mask.nii.gz", "summary.json"]  # no stale brain mask, figures or staging
    assert (out / "lesion_mask.nii.gz").read_bytes() == b"new mask"
    assert json.loads((out / "summary.json").read_text())["mslesion_version"] == __version__


def test_run_killed_while_publishing_into_a_new_folder_is_cleaned(tmp_path: Path) -> None:
    out = tmp_path / "out"
    staging = out / ".staging-0badc0de"
    staging.mkdir(parents=True)  # killed mid-publish: the record, moved last, is still in staging
    (staging / "summary.json").write_text(json.dumps({"mslesion_version": __version__}))
    (out / "lesion_mask.nii.gz").write_bytes(b"moved before the kill")
    prepare_out(out)
    assert visible(out) == []  # its half-published files went with it
    prepare_out(out)
    _publish(out)
    assert visible(out) == ["lesion_mask.nii.gz", "summary.json"]


def test_run_killed_before_publishing_leaves_only_its_staging(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / ".staging-0badc0de").mkdir(parents=True)
    (out / ".staging-0badc0de" / "lesion_mask.nii.gz").write_bytes(b"half written")
    prepare_out(out)
    assert visible(out) == []


def test_a_staging_like_folder_does_not_make_a_foreign_folder_ours(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / ".staging-0badc0de").mkdir(parents=True)  # no record in it: not a half-published run
    (out / "thesis.tex").write_text("mine")
    with pytest.raises(InputError, match="holds no previous mslesion run"):
        prepare_out(out)
    assert visible(out) == [".staging-0badc0de", "thesis.tex"]


def test_a_failing_run_leaves_the_previous_one_untouched(tmp_path: Path) -> None:
    out = _old_run(tmp_path / "out")
    prepare_out(out)  # removes the killed run's staging
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with pytest.raises(InputError), staged_output(out) as staging:
        staging.mkdir()
        (staging / "lesion_mask.nii.gz").write_bytes(b"new")
        raise InputError(None, "failed halfway")
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_a_run_is_recognised_only_by_an_mslesion_record(tmp_path: Path) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps({"accuracy": 0.9}))  # someone else's summary
    assert not is_mslesion_run(folder)
    with pytest.raises(InputError, match="holds no previous mslesion run"):
        prepare_out(folder)
    (folder / "summary.json").write_text("{not json")
    assert not is_mslesion_run(folder)
    (folder / "qc.json").write_text(json.dumps({"mslesion_version": "1"}))  # a preprocess run
    assert is_mslesion_run(folder)
    prepare_out(folder)


@pytest.mark.slow
def test_segment_rerun_replaces_the_older_run(tmp_path: Path, tiny_model: Path, ready_scan: Path, nifti_writer) -> None:
    import nibabel as nib
    from typer.testing import CliRunner

    from mslesion.cli import app

    out = tmp_path / "out"
    args = ["segment", "--flair", str(ready_scan), "--out", str(out), "--model", str(tiny_model), "--flips", "1"]
    assert CliRunner().invoke(app, args).exit_code == 0
    assert (out / "brain_mask.nii.gz").is_file()  # computed by the first run
    brain = nifti_writer(tmp_path / "in" / "brain.nii.gz", (nib.load(str(ready_scan)).get_fdata() > 0).astype("uint8"))
    result = CliRunner().invoke(app, args + ["--brain-mask", str(brain)])
    assert result.exit_code == 0, result.output
    assert not (out / "brain_mask.nii.gz").exists()  # the older run's file did not stay beside the new ones
    assert json.loads((out / "summary.json").read_text())["brain_mask"] == str(brain)
