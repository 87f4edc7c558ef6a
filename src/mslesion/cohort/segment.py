"""`segment_dataset`: segment every session of a BIDS dataset into a BIDS-derivatives folder.

Per session (`sub-X/ses-Y/anat/`, in the input's own space, hence `space-orig`):
`sub-X_ses-Y_space-orig_label-lesion_mask.nii.gz` (+ its JSON sidecar: the per-session
summary, written last, so its presence means "done"), `..._label-lesion_probseg.nii.gz`,
`..._label-brain_mask.nii.gz` (when computed), `..._desc-lesions_table.csv`, and the
session's `report.html`/`report.json` as `..._report.html`/`.json`. At the top:
`dataset_description.json`, `cohort.csv` (one row per session done), `failures.csv` (one
row per session failed, with its one-line reason) and `cohort.html` (the sessions with QC
flags, links to their reports and a lesion-volume plot per site/scanner).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mslesion.cohort.driver import CohortResult, Job, prepare_cohort_out, run_jobs
from mslesion.cohort.engines import EngineOptions
from mslesion.cohort.layout import read_done
from mslesion.cohort.tasks import SEGMENT_SIDECAR, SegmentSpec, Task
from mslesion.errors import InputError
from mslesion.io.atomic import write_csv_atomic

logger = logging.getLogger(__name__)

NAME = "mslesion lesion segmentations"
LOCATION_KEYS = ("periventricular", "juxtacortical", "infratentorial", "deep_white_matter", "unknown")
COHORT_COLUMNS = (
    ["subject", "session", "lesion_count", "total_volume_ml"]
    + [f"{k}_{m}" for k in LOCATION_KEYS for m in ("count", "volume_ml")]
    + ["warnings"]
)
FAILURE_COLUMNS = ["subject", "session", "error"]


def cohort_row(subject: str, session: str | None, summary: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "subject": subject,
        "session": session or "",
        "lesion_count": summary.get("lesion_count"),
        "total_volume_ml": summary.get("total_volume_ml"),
        "warnings": " | ".join(summary.get("warnings", [])),
    }
    for key, entry in summary.get("locations", {}).items():
        row[f"{key}_count"] = entry["count"]
        row[f"{key}_volume_ml"] = entry["volume_ml"]
    return row


def _page_row(subject: str, session: str | None, summary: dict[str, Any], meta: Any) -> dict[str, Any]:  # meta: io.case.CaseMeta
    """A cohort.html row: the numbers, the QC flags, the report's path relative to the derivatives folder."""
    from mslesion.report.write import qc_entries

    name = f"{subject}_{session}" if session else subject
    anat = Path(subject, session, "anat") if session else Path(subject, "anat")
    return {
        "name": name,
        "lesion_count": summary.get("lesion_count"),
        "total_volume_ml": summary.get("total_volume_ml"),
        "flags": sorted(set(qc_entries(summary, "flags"))),
        "warnings": len(summary.get("warnings", [])),
        "report": (anat / f"{name}_report.html").as_posix(),
        "site": getattr(meta, "site", None),
        "scanner": getattr(meta, "scanner", None),
    }


def segment_dataset(
    bids_dir: str | Path,
    out: str | Path,
    model: str | Path = "default",
    engine: EngineOptions | None = None,
    checkpoint_every: int = 10,
    flips: int | None = None,
    recipe: type[SegmentSpec] = SegmentSpec,
) -> CohortResult:
    """Segment every session of `bids_dir` into `out` on `engine`; skip done sessions, keep going past failures.

    `recipe`: the workers' recipe; benchmarks/cohort.py swaps in a trivial one to time the scheduling alone.
    """
    from mslesion.io.bids import list_sessions, read_participants, session_meta
    from mslesion.pipeline import load_model_once

    bids_dir, out = Path(bids_dir).resolve(), Path(out).resolve()  # workers may run elsewhere: absolute paths only
    engine = engine or EngineOptions()
    model_path = load_model_once(model).path.resolve()  # a missing or broken model fails once, before any session
    sessions = list_sessions(bids_dir)
    prepare_cohort_out(out, bids_dir, NAME)
    participants = read_participants(bids_dir)
    jobs, names, metas = [], {}, {}
    for found in sessions:
        names[found.name] = (found.subject, found.session)
        try:
            metas[found.name] = session_meta(bids_dir, found, participants)
        except InputError as exc:  # e.g. an unreadable JSON sidecar: this session fails, the others go on
            jobs.append(Job(found.name, error=str(exc)))
            continue
        done = read_done(out / found.rel_dir / f"{found.name}_{SEGMENT_SIDECAR}")
        sources = [f"bids:raw:{p.relative_to(bids_dir).as_posix()}" for p in found.images.values()]
        task = Task(found.name, found.rel_dir.as_posix(), {k: str(p) for k, p in found.images.items()}, record={"Sources": sources})
        jobs.append(Job(found.name, done=done) if done is not None else Job(found.name, task=task))

    def write_tables(result: CohortResult) -> None:
        rows = [cohort_row(*names[job.key], result.summaries[job.key]) for job in jobs if job.key in result.summaries]
        result.table = write_csv_atomic(out / "cohort.csv", rows, COHORT_COLUMNS)
        failures = [{"subject": names[key][0], "session": names[key][1] or "", "error": why} for key, why in result.failed.items()]
        result.failures = write_csv_atomic(out / "failures.csv", failures, FAILURE_COLUMNS)

    spec = recipe(out=str(out), model=str(model_path), max_attempts=engine.max_retries + 1, flips=flips)
    result = run_jobs(jobs, spec, engine, write_tables, checkpoint_every, out)
    from mslesion.report.cohort import write_cohort_page

    page_rows = [_page_row(*names[job.key], result.summaries[job.key], metas.get(job.key)) for job in jobs if job.key in result.summaries]
    result.page = write_cohort_page(out, page_rows, result.failed)
    return result
