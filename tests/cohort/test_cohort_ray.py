"""Cohorts on Ray (a 2-CPU Ray on this machine): the same outputs as the local engine, and a worker killed mid-task."""

from __future__ import annotations

import csv
import json
import os
import signal
import threading
from pathlib import Path

import nibabel as nib
import numpy as np

from mslesion.cohort import EngineOptions, new_lesions_dataset, segment_dataset

GOOD = ["sub-01_ses-01", "sub-01_ses-02", "sub-02_ses-01", "sub-02_ses-02", "sub-03_ses-01"]
RAY = EngineOptions("ray", workers=2, cpus_per_task=1)


def _outputs(out: Path) -> dict[str, object]:
    """Every file of a derivatives folder: images as arrays, JSON without its timings, the rest as text."""
    found: dict[str, object] = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        rel = path.relative_to(out).as_posix()
        if rel.endswith(".nii.gz"):
            found[rel] = np.asarray(nib.load(str(path)).dataobj)
        elif rel.endswith(".json") and rel != "dataset_description.json":
            data = json.loads(path.read_text())
            for key in ("seconds", "seconds_per_stage", "created_utc"):  # when it ran and how long, not what it found
                data.pop(key, None)
            found[rel] = data
        elif rel.endswith(".csv"):
            found[rel] = path.read_text()
        else:
            found[rel] = None  # reports: present (their pages embed timings)
    return found


def test_ray_engine_equals_local_engine(cohort: Path, tiny_model: Path, tmp_path: Path, ray_cluster) -> None:
    local = segment_dataset(cohort, tmp_path / "local", model=tiny_model, flips=1, engine=EngineOptions("local", cpus_per_task=1))
    ray = segment_dataset(cohort, tmp_path / "ray", model=tiny_model, flips=1, engine=RAY)
    assert (
        local.done == ray.done == GOOD and list(ray.failed) == ["sub-03_ses-02"] and "not a readable NIfTI" in ray.failed["sub-03_ses-02"]
    )
    a, b = _outputs(tmp_path / "local"), _outputs(tmp_path / "ray")
    assert a.keys() == b.keys()
    for rel, value in a.items():
        if isinstance(value, np.ndarray):
            assert np.array_equal(value, b[rel]), rel
        else:
            assert value == b[rel], rel
    pairs = new_lesions_dataset(cohort, tmp_path / "pairs", model="subtraction", flips=1, engine=RAY)
    assert pairs.done == ["sub-01_ses-02", "sub-02_ses-02"] and list(pairs.failed) == ["sub-03_ses-02"]


def _kill_when_started(out: Path, key: str, killed: list[int], stop: threading.Event) -> None:
    """Watch the attempt records until `stop`; SIGKILL the worker process that starts `key`, once."""
    record = out / ".attempts" / key
    while not stop.is_set():
        try:
            _, where = record.read_text().split()[:2]
        except (OSError, ValueError):
            stop.wait(0.002)
            continue
        pid = int(where.rsplit(":", 1)[1])
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)
        return


def test_worker_killed_mid_task_is_retried_and_every_session_done_once(cohort: Path, tiny_model: Path, tmp_path: Path, ray_cluster) -> None:
    out, killed, stop = tmp_path / "ray", [], threading.Event()
    watcher = threading.Thread(target=_kill_when_started, args=(out, "sub-02_ses-01", killed, stop), daemon=True)
    watcher.start()
    try:
        result = segment_dataset(cohort, out, model=tiny_model, flips=1, engine=RAY)
    finally:
        stop.set()
        watcher.join(timeout=5)
    assert len(killed) == 1, "the worker was never seen starting the session"
    assert result.done == GOOD and list(result.failed) == ["sub-03_ses-02"]
    assert result.retried == {"sub-02_ses-01": 2}  # the killed run and its retry; every other session ran once
    table = [f"{r['subject']}_{r['session']}" for r in csv.DictReader((out / "cohort.csv").open())]
    assert table == GOOD
    assert len(list(out.rglob("*_label-lesion_mask.json"))) == 5
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
