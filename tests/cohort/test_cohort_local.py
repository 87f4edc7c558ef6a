"""Cohorts on the local engine: tables, failures, resuming after a kill, partial sessions, longitudinal pairs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mslesion.cli import app
from mslesion.cohort import EngineOptions, new_lesions_dataset, segment_dataset
from mslesion.cohort.longitudinal import consecutive_pairs, session_order
from mslesion.errors import InputError

runner = CliRunner()
GOOD = ["sub-01_ses-01", "sub-01_ses-02", "sub-02_ses-01", "sub-02_ses-02", "sub-03_ses-01"]


def rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.open()))


def test_segment_dataset_lists_the_corrupt_session_and_writes_both_tables(cohort: Path, tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "deriv"
    result = runner.invoke(app, ["segment-dataset", str(cohort), "--out", str(out), "--model", str(tiny_model), "--flips", "1"])
    assert result.exit_code == 1, result.output
    assert "5 segmented, 0 already done, 1 failed" in result.output and "failures.csv" in result.output
    assert [f"{r['subject']}_{r['session']}" for r in rows(out / "cohort.csv")] == GOOD
    [failure] = rows(out / "failures.csv")
    assert (failure["subject"], failure["session"]) == ("sub-03", "ses-02") and "not a readable NIfTI image" in failure["error"]
    assert "\n" not in failure["error"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    again = runner.invoke(app, ["segment-dataset", str(cohort), "--out", str(out), "--model", str(tiny_model), "--flips", "1"])
    assert "0 segmented, 5 already done, 1 failed" in again.output


def test_interrupted_run_leaves_consistent_tables_and_resumes(cohort: Path, tiny_model: Path, tmp_path: Path, monkeypatch) -> None:
    from mslesion.cohort.tasks import SegmentSpec

    out = tmp_path / "deriv"
    real = SegmentSpec.compute

    def interrupted(self, model, task, scratch):  # noqa: ANN001, ANN202 - the spec's own signature
        if task.key == "sub-02_ses-01":
            raise KeyboardInterrupt  # Ctrl-C in the middle of the third session
        return real(self, model, task, scratch)

    monkeypatch.setattr(SegmentSpec, "compute", interrupted)
    with pytest.raises(KeyboardInterrupt):
        segment_dataset(cohort, out, model=tiny_model, checkpoint_every=1, flips=1)
    listed = [f"{r['subject']}_{r['session']}" for r in rows(out / "cohort.csv")]
    on_disk = sorted(p.name.removesuffix("_space-orig_label-lesion_mask.json") for p in out.rglob("*_label-lesion_mask.json"))
    assert listed == on_disk == ["sub-01_ses-01", "sub-01_ses-02"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]

    monkeypatch.setattr(SegmentSpec, "compute", real)
    result = segment_dataset(cohort, out, model=tiny_model, flips=1)
    assert result.skipped == ["sub-01_ses-01", "sub-01_ses-02"] and result.done == GOOD[2:]
    assert [f"{r['subject']}_{r['session']}" for r in rows(out / "cohort.csv")] == GOOD


def test_partial_session_is_redone_and_stale_files_go(cohort: Path, tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "deriv"
    segment_dataset(cohort, out, model=tiny_model, flips=1)
    anat = out / "sub-01" / "ses-02" / "anat"
    (anat / "sub-01_ses-02_space-orig_label-lesion_mask.json").unlink()  # killed before its sidecar: partial
    (anat / "sub-01_ses-02_space-orig_label-lesion_probseg.nii.gz").write_bytes(b"half")
    (out / ".work-0badf00d" / "sub-01_ses-02").mkdir(parents=True)  # a killed worker's scratch
    result = segment_dataset(cohort, out, model=tiny_model, flips=1)
    assert result.done == ["sub-01_ses-02"] and len(result.skipped) == 4
    assert (anat / "sub-01_ses-02_space-orig_label-lesion_probseg.nii.gz").stat().st_size > 100
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


@pytest.mark.slow  # two spawned processes import torch: about 20 s on 2 busy cores
def test_local_pool_of_two_processes_matches_one(cohort: Path, tiny_model: Path, tmp_path: Path) -> None:
    one = segment_dataset(cohort, tmp_path / "one", model=tiny_model, flips=1)
    two = segment_dataset(cohort, tmp_path / "two", model=tiny_model, flips=1, engine=EngineOptions("local", workers=2, cpus_per_task=1))
    assert one.done == two.done == GOOD and one.failed.keys() == two.failed.keys()
    assert (tmp_path / "one" / "cohort.csv").read_text() == (tmp_path / "two" / "cohort.csv").read_text()
    assert (tmp_path / "one" / "failures.csv").read_text() == (tmp_path / "two" / "failures.csv").read_text()


def test_engine_options_are_checked() -> None:
    for bad in ({"kind": "spark"}, {"workers": 0}, {"cpus_per_task": 0}, {"gpus_per_task": -1}, {"max_retries": -1}, {"address": "auto"}):
        with pytest.raises(InputError):
            EngineOptions(**bad)
    assert EngineOptions("ray", address="auto").kind == "ray"


def test_sessions_pair_in_numeric_order() -> None:
    from mslesion.io.bids import BidsSession

    visits = [BidsSession("sub-01", s, {}) for s in ("ses-10", "ses-2", "ses-1")] + [
        BidsSession("sub-02", "ses-1", {}),
        BidsSession("sub-03", None, {}),
    ]
    pairs, alone = consecutive_pairs(visits)
    assert [(a.session, b.session) for a, b in pairs] == [("ses-1", "ses-2"), ("ses-2", "ses-10")]
    assert alone == ["sub-02", "sub-03"] and session_order("ses-2") < session_order("ses-10")


def test_new_lesions_dataset_pairs_consecutive_sessions(cohort: Path, tmp_path: Path, add_session) -> None:
    add_session(cohort, "sub-01", "ses-03", seed=2)
    out = tmp_path / "pairs"
    result = runner.invoke(
        app, ["new-lesions-dataset", str(cohort), "--out", str(out), "--model", "subtraction", "--flips", "1", "--checkpoint-every", "1"]
    )
    assert result.exit_code == 1, result.output
    assert "3 pairs done, 0 already done, 1 failed" in result.output
    table = rows(out / "cohort.csv")
    assert [(r["subject"], r["baseline"], r["followup"]) for r in table] == [
        ("sub-01", "ses-01", "ses-02"),
        ("sub-01", "ses-02", "ses-03"),
        ("sub-02", "ses-01", "ses-02"),
    ]
    assert {"new_lesion_count", "new_lesion_volume_ml", "periventricular_count"} <= set(table[0])
    # counts per change class: subtraction finds new lesions only
    assert all(
        r["new_count"] == r["new_lesion_count"] and r["enlarging_count"] == r["shrinking_count"] == r["resolved_count"] == "0"
        for r in table
    )
    [failure] = rows(out / "failures.csv")
    assert (failure["subject"], failure["baseline"], failure["followup"]) == ("sub-03", "ses-01", "ses-02")
    sidecar = json.loads((out / "sub-01" / "ses-03" / "anat" / "sub-01_ses-03_space-orig_label-newlesion_mask.json").read_text())
    assert sidecar["BaselineSession"] == "ses-02" and sidecar["new_lesion_count"] == int(table[1]["new_lesion_count"])
    assert (out / "sub-01" / "ses-03" / "anat" / "sub-01_ses-03_desc-newlesions_report.html").is_file()
    assert json.loads((out / "dataset_description.json").read_text())["Name"].startswith("mslesion new lesions")

    again = new_lesions_dataset(cohort, out, model="subtraction", flips=1)
    assert again.done == [] and len(again.skipped) == 3
    with pytest.raises(InputError, match="another mslesion cohort command"):
        segment_dataset(cohort, out, model="default")


def test_new_lesions_dataset_runs_its_default_and_reads_the_method_once(cohort: Path, tmp_path: Path) -> None:
    """The default (grown-subtraction) through the cohort: the method name is not taken for a model folder (it
    was, and every cohort failed before its first pair), and a worker reads the method with its network once."""
    from mslesion.cohort.tasks import _load
    from mslesion.new_lesions import ChangeMethod

    method = _load("grown-subtraction", None, False, pairs=True)
    assert isinstance(method, ChangeMethod) and method.name == "grown-subtraction" and method.model is not None
    assert _load("subtraction", None, False, pairs=True).model is None
    result = new_lesions_dataset(cohort, tmp_path / "pairs", flips=1)
    assert len(result.done) >= 1
    table = rows(tmp_path / "pairs" / "cohort.csv")
    assert table and all(r["shrinking_count"] == r["resolved_count"] == "0" for r in table)


def test_ray_pool_size_fits_the_cluster() -> None:
    from mslesion.cohort.ray_engine import pool_size

    assert pool_size(EngineOptions("ray"), {"CPU": 16.0}, tasks=100) == 16
    assert pool_size(EngineOptions("ray", cpus_per_task=4), {"CPU": 16.0}, tasks=100) == 4
    assert pool_size(EngineOptions("ray", cpus_per_task=2, gpus_per_task=1), {"CPU": 16.0, "GPU": 2.0}, tasks=100) == 2
    assert pool_size(EngineOptions("ray", cpus_per_task=2, gpus_per_task=0.5), {"CPU": 16.0, "GPU": 2.0}, tasks=3) == 3
    assert pool_size(EngineOptions("ray", workers=5), {"CPU": 2.0}, tasks=3) == 3


@pytest.mark.slow  # two spawned processes import torch, then one is killed and the pool rebuilt: about 40 s
def test_local_pool_survives_a_killed_process(cohort: Path, tiny_model: Path, tmp_path: Path) -> None:
    import os
    import signal
    import threading

    out, stop, killed = tmp_path / "pool", threading.Event(), []

    def kill_first_start() -> None:
        record = out / ".attempts" / "sub-02_ses-01"
        while not stop.is_set():
            try:
                where = record.read_text().split()[1]
            except (OSError, IndexError):
                stop.wait(0.002)
                continue
            os.kill(int(where.rsplit(":", 1)[1]), signal.SIGKILL)
            killed.append(where)
            return

    watcher = threading.Thread(target=kill_first_start, daemon=True)
    watcher.start()
    try:
        result = segment_dataset(cohort, out, model=tiny_model, flips=1, engine=EngineOptions("local", workers=2, cpus_per_task=1))
    finally:
        stop.set()
        watcher.join(timeout=5)
    assert len(killed) == 1 and result.done == GOOD and list(result.failed) == ["sub-03_ses-02"]
    assert result.retried.get("sub-02_ses-01") == 2
    assert [f"{r['subject']}_{r['session']}" for r in rows(out / "cohort.csv")] == GOOD
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_one_bad_session_of_any_kind_never_stops_the_cohort(cohort: Path, tiny_model: Path, tmp_path: Path) -> None:
    """Issue 18: a 4D FLAIR, a dangling symlink and a sidecar with "3T" each used to stop the whole run (exit 2, nothing
    segmented, or a traceback); now each is its session's row in failures.csv, one line naming the file, and the rest finish."""
    import nibabel as nib
    import numpy as np

    def anat(subject: str, session: str) -> Path:
        return cohort / subject / session / "anat"

    four_d = anat("sub-01", "ses-02") / "sub-01_ses-02_FLAIR.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 8, 2), np.float32), np.eye(4)), four_d)
    dangling = anat("sub-02", "ses-02") / "sub-02_ses-02_FLAIR.nii.gz"
    dangling.unlink()
    dangling.symlink_to(tmp_path / "nowhere.nii.gz")
    (anat("sub-02", "ses-01") / "sub-02_ses-01_FLAIR.json").write_text('{"MagneticFieldStrength": "3T"}')
    out = tmp_path / "deriv"
    result = runner.invoke(app, ["segment-dataset", str(cohort), "--out", str(out), "--model", str(tiny_model), "--flips", "1"])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    done = {f"{r['subject']}_{r['session']}" for r in rows(out / "cohort.csv")}
    failed = {f"{r['subject']}_{r['session']}": r["error"] for r in rows(out / "failures.csv")}
    assert done == {"sub-01_ses-01", "sub-03_ses-01"}
    assert set(failed) == {"sub-01_ses-02", "sub-02_ses-01", "sub-02_ses-02", "sub-03_ses-02"}, failed
    assert "4D image" in failed["sub-01_ses-02"] and "file not found" in failed["sub-02_ses-02"]
    assert "sub-02_ses-01_FLAIR.json" in failed["sub-02_ses-01"] and "'3T'" in failed["sub-02_ses-01"]
    assert all("\n" not in e for e in failed.values())
