"""`new_lesions_dataset`: new lesions between every two consecutive sessions of each subject.

Sessions are ordered by their label (numbers inside compared as numbers: ses-2 before
ses-10). Each pair's outputs land in the follow-up session's folder
(`sub-X/ses-F/anat/sub-X_ses-F_space-orig_label-newlesion_mask.nii.gz`, `..._probseg`,
`..._desc-newlesions_table.csv`, `..._desc-newlesions_report.html/.json`, and the JSON
sidecar, written last, that records the baseline session). A sidecar whose baseline is no
longer the previous session (a visit was added in between) is redone. At the top:
`cohort.csv` (subject, baseline, follow-up, new-lesion count and volume, per location)
and `failures.csv`.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from mslesion.cohort.driver import CohortResult, Job, prepare_cohort_out, run_jobs
from mslesion.cohort.engines import EngineOptions
from mslesion.cohort.layout import read_done
from mslesion.cohort.segment import LOCATION_KEYS
from mslesion.cohort.tasks import PAIR_SIDECAR, PairSpec, Task
from mslesion.errors import InputError
from mslesion.io.atomic import write_csv_atomic
from mslesion.postprocess.changes import ChangeKind

logger = logging.getLogger(__name__)

NAME = "mslesion new lesions between consecutive sessions"
VISIT_CONTRASTS = ("FLAIR", "T1")  # what `new-lesions` takes of each visit
# Counts per change class (postprocess.changes.ChangeKind): `grown-subtraction` and `probability-change` class every changed
# lesion; subtraction and the network report new lesions only, so their other classes stay 0.
CHANGE_KINDS = tuple(kind.value for kind in ChangeKind)
PAIR_COLUMNS = (
    ["subject", "baseline", "followup", "new_lesion_count", "new_lesion_volume_ml"]
    + [f"{kind}_count" for kind in CHANGE_KINDS]
    + [f"{k}_{m}" for k in LOCATION_KEYS for m in ("count", "volume_ml")]
    + ["warnings"]
)
PAIR_FAILURE_COLUMNS = ["subject", "baseline", "followup", "error"]


def session_order(label: str) -> list[Any]:
    """Sort key of a session label: digit runs as numbers (ses-2 < ses-10)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", label)]


def consecutive_pairs(sessions: list[Any]) -> tuple[list[tuple[Any, Any]], list[str]]:  # io.bids.BidsSession
    """(baseline, follow-up) of every two consecutive sessions per subject; and the subjects with fewer than two."""
    by_subject: dict[str, list[Any]] = defaultdict(list)
    for found in sessions:
        if found.session is not None:
            by_subject[found.subject].append(found)
    pairs, alone = [], sorted({s.subject for s in sessions} - {k for k, v in by_subject.items() if len(v) > 1})
    for subject in sorted(by_subject):
        visits = sorted(by_subject[subject], key=lambda s: session_order(s.session))
        pairs += list(zip(visits, visits[1:]))
    return pairs, alone


def pair_row(subject: str, baseline: str, followup: str, summary: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "subject": subject,
        "baseline": baseline,
        "followup": followup,
        "new_lesion_count": summary.get("new_lesion_count"),
        "new_lesion_volume_ml": summary.get("total_volume_ml"),
        "warnings": " | ".join(summary.get("warnings", [])),
    }
    for kind in CHANGE_KINDS:
        row[f"{kind}_count"] = summary.get("change_counts", {}).get(kind, 0)
    for key, entry in summary.get("locations", {}).items():
        row[f"{key}_count"] = entry["count"]
        row[f"{key}_volume_ml"] = entry["volume_ml"]
    return row


def new_lesions_dataset(
    bids_dir: str | Path,
    out: str | Path,
    model: str | Path = "grown-subtraction",  # new_lesions.DEFAULT_NEW_LESION_MODEL
    engine: EngineOptions | None = None,
    checkpoint_every: int = 10,
    flips: int | None = None,
) -> CohortResult:
    """New lesions of every consecutive session pair of `bids_dir` into `out` on `engine`; skip done pairs, keep going past failures."""
    from mslesion.io.bids import list_sessions
    from mslesion.models.registry import UNTRAINED
    from mslesion.pipeline import load_model_once

    bids_dir, out = Path(bids_dir).resolve(), Path(out).resolve()  # workers may run elsewhere: absolute paths only
    engine = engine or EngineOptions()
    # a method name travels as it is; a model folder as its absolute path (read here first: a bad one fails before any pair)
    model_name = str(model) if str(model) in UNTRAINED else str(load_model_once(model).path.resolve())
    pairs, alone = consecutive_pairs(list_sessions(bids_dir))
    if not pairs:
        raise InputError(bids_dir, "no subject has two or more sessions (sub-*/ses-*/anat): no pair to compare")
    for subject in alone:
        logger.info("%s: fewer than two sessions, no pair", subject)
    prepare_cohort_out(out, bids_dir, NAME)
    jobs, names = [], {}
    for base, follow in pairs:
        key = follow.name
        names[key] = (follow.subject, base.session, follow.session)
        record = {
            "BaselineSession": base.session,
            "Sources": [f"bids:raw:{p.relative_to(bids_dir).as_posix()}" for p in (*base.images.values(), *follow.images.values())],
        }
        done = read_done(out / follow.rel_dir / f"{key}_{PAIR_SIDECAR}")
        if done is not None and done.get("BaselineSession") == base.session:
            jobs.append(Job(key, done=done))
            continue
        task = Task(
            key,
            follow.rel_dir.as_posix(),
            {k: str(p) for k, p in follow.images.items() if k in VISIT_CONTRASTS},
            baseline={k: str(p) for k, p in base.images.items() if k in VISIT_CONTRASTS},
            record=record,
        )
        jobs.append(Job(key, task=task))

    def write_tables(result: CohortResult) -> None:
        rows = [pair_row(*names[job.key], result.summaries[job.key]) for job in jobs if job.key in result.summaries]
        result.table = write_csv_atomic(out / "cohort.csv", rows, PAIR_COLUMNS)
        failures = [{**dict(zip(("subject", "baseline", "followup"), names[key])), "error": why} for key, why in result.failed.items()]
        result.failures = write_csv_atomic(out / "failures.csv", failures, PAIR_FAILURE_COLUMNS)

    spec = PairSpec(out=str(out), model=model_name, max_attempts=engine.max_retries + 1, flips=flips)
    return run_jobs(jobs, spec, engine, write_tables, checkpoint_every, out)
