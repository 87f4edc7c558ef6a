"""Cohort throughput: sessions per hour with the real model, and the scheduling overhead per task.

Run: .venv/bin/python benchmarks/cohort.py [--part overhead|throughput|both] [--sessions 1000] [--real-sessions 8]
Writes benchmarks/results/cohort.md (and cohort.json beside it).

- overhead: 1,000 synthetic BIDS sessions through `segment_dataset` with a trivial worker (no
  image read, no network: a fixed summary), so what is timed is the engines and the driver alone:
  listing, task shipping, the attempt record, scratch folder, sidecar publication, and the tables
  rewritten every 10 completions. Local engine with 1 worker (in process) and 2 processes; Ray
  with 1 and 2 actors (a Ray started for the run; its start-up is reported apart).
- throughput: `--real-sessions` synthetic 1 mm BIDS sessions (`mslesion synth --bids`) segmented
  with the shipped default model, 1 and 2 local workers (the machine's cores shared), and Ray with
  2 workers; sessions per hour from the wall time. Needs the machine to itself.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from mslesion.cohort import EngineOptions, segment_dataset
from mslesion.cohort.tasks import CohortWorker, SegmentSpec, Task
from mslesion.io.atomic import write_json_atomic, write_text_atomic

RESULTS = Path(__file__).resolve().parent / "results"
TRIVIAL_SUMMARY = {"lesion_count": 0, "total_volume_ml": 0.0, "locations": {}, "warnings": [], "mslesion_version": "bench"}


class TrivialSpec(SegmentSpec):
    """A worker that reads no model and no image: every session gets the same empty summary."""

    def start(self, threads: int | None, use_gpu: bool) -> CohortWorker:
        return CohortWorker(self, None)

    def compute(self, model: Any, task: Task, scratch: Path) -> dict[str, Any]:
        scratch.mkdir(parents=True, exist_ok=True)
        return dict(TRIVIAL_SUMMARY)


def fake_cohort(root: Path, sessions: int) -> Path:
    """`sessions` BIDS sessions (10 per subject), each one tiny FLAIR hard-linked from a single file."""
    root.mkdir(parents=True)
    source = root / "tiny_FLAIR.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4)), str(source))
    for i in range(sessions):
        sub, ses = f"sub-{i // 10:04d}", f"ses-{i % 10:02d}"
        anat = root / "bids" / sub / ses / "anat"
        anat.mkdir(parents=True)
        os.link(source, anat / f"{sub}_{ses}_FLAIR.nii.gz")
    return root / "bids"


def _time_run(bids: Path, out: Path, engine: EngineOptions, recipe: type[SegmentSpec], model: str) -> tuple[float, Any]:
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    result = segment_dataset(bids, out, model=model, engine=engine, recipe=recipe)
    return time.perf_counter() - t0, result


def overhead(sessions: int, work: Path) -> list[dict[str, Any]]:
    """Wall time per task of the trivial worker on each engine configuration."""
    bids = fake_cohort(work / "overhead", sessions)
    _time_run(fake_cohort(work / "warmup", 20), work / "warmup_out", EngineOptions(), TrivialSpec, "default")  # imports, model check
    rows = []
    configs = [("local", EngineOptions("local", workers=1)), ("local", EngineOptions("local", workers=2, cpus_per_task=1))]
    ray, ray_start = None, None
    try:
        import ray

        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
        ray_start = time.perf_counter() - t0
        configs += [("ray", EngineOptions("ray", workers=1)), ("ray", EngineOptions("ray", workers=2))]
    except Exception as exc:  # no Ray, or it could not start here: the local rows still stand
        logging.warning("ray part skipped: %s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        if ray is not None:
            ray.shutdown()
        ray = None
    for name, engine in configs:
        wall, result = _time_run(bids, work / "overhead_out", engine, TrivialSpec, "default")
        if len(result.done) != sessions:
            raise RuntimeError(f"{name}: {len(result.done)} of {sessions} sessions done")
        rows.append({"engine": name, "workers": engine.workers, "sessions": sessions, "wall_s": round(wall, 2),
                     "ms_per_task": round(1000 * wall / sessions, 2), "ray_start_s": round(ray_start, 1) if name == "ray" else None})
        logging.info("%s x%s: %.1f s, %.2f ms per task", name, engine.workers, wall, 1000 * wall / sessions)
    if ray is not None:
        ray.shutdown()
    else:
        rows.append({"engine": "ray", "workers": None, "sessions": sessions, "wall_s": None, "ms_per_task": None,
                     "ray_start_s": "could not start Ray on this machine"})
    return rows


def throughput(sessions: int, work: Path) -> list[dict[str, Any]]:
    """Sessions per hour with the shipped default model on synthetic 1 mm BIDS sessions."""
    from mslesion.synth import make_dataset

    make_dataset(work / "real", n=sessions, seed=0, n_sites=2, resolution_mm=1.0, layout="bids")
    bids = work / "real"
    cores = os.cpu_count() or 1
    configs = [("local", EngineOptions("local", workers=1)), ("local", EngineOptions("local", workers=2, cpus_per_task=max(1, cores // 2))),
               ("ray", EngineOptions("ray", workers=2, cpus_per_task=max(1, cores // 2)))]
    rows = []
    for name, engine in configs:
        wall, result = _time_run(bids, work / "real_out", engine, SegmentSpec, "default")
        rows.append({"engine": name, "workers": engine.workers, "sessions": len(result.done), "failed": len(result.failed),
                     "wall_s": round(wall, 1), "sessions_per_hour": round(3600 * len(result.done) / wall, 1)})
        logging.info("%s x%s: %d sessions in %.0f s", name, engine.workers, len(result.done), wall)
    return rows


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "not run\n"
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join("" if r[c] is None else str(r[c]) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("overhead", "throughput", "both"), default="both")
    parser.add_argument("--sessions", type=int, default=1000, help="synthetic sessions for the overhead part")
    parser.add_argument("--real-sessions", type=int, default=8, help="synthetic 1 mm sessions for the real-model part")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("mslesion").setLevel(logging.WARNING)  # one line per session would drown the numbers
    previous = json.loads((args.out / "cohort.json").read_text()) if (args.out / "cohort.json").is_file() else {}
    result: dict[str, Any] = {**previous, "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}}
    with tempfile.TemporaryDirectory() as tmp:
        if args.part in ("overhead", "both"):
            result["overhead"] = overhead(args.sessions, Path(tmp))
        if args.part in ("throughput", "both"):
            result["throughput"] = throughput(args.real_sessions, Path(tmp))
    write_json_atomic(args.out / "cohort.json", result)
    text = (f"# Cohort engines: throughput and scheduling overhead\n\nWritten by `benchmarks/cohort.py` on {result['machine']}.\n\n"
            "## Scheduling overhead per task (trivial worker: no model, no image read)\n\n" + _table(result.get("overhead", []))
            + "\nEach row: the whole `segment_dataset` call (listing, the driver's model check, tables every 10 completions,"
            " cohort.html) divided by the sessions; Ray's start-up apart. On a shared machine these numbers move with its load.\n"
            + "\n## Sessions per hour, shipped default model, synthetic 1 mm sessions\n\n" + _table(result.get("throughput", [])))
    write_text_atomic(args.out / "cohort.md", text)
    print(text)


if __name__ == "__main__":
    main()
