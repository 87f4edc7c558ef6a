"""The driver of a cohort run: what is done, what to run, and the combined tables, written by it alone.

It skips jobs whose sidecar is in place, hands the rest to an engine, and rewrites the
combined tables atomically every `checkpoint_every` completions and at the end (also when
interrupted), so the tables on disk always agree with the sessions on disk.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mslesion.cohort.dispatch import run_tasks
from mslesion.cohort.engines import EngineOptions, Outcome, WorkerSpec
from mslesion.cohort.layout import clear_leftovers
from mslesion.errors import InputError
from mslesion.io.atomic import write_json_atomic

logger = logging.getLogger(__name__)


@dataclass
class CohortResult:
    """What a cohort run did: done now, skipped as done before, failed (with why), retried after lost workers."""

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    retried: dict[str, int] = field(default_factory=dict)  # key -> runs it took
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> sidecar, done now or before
    table: Path | None = None
    failures: Path | None = None
    page: Path | None = None


@dataclass(frozen=True)
class Job:
    """A planned unit: its task, or the sidecar of a done one, or why it cannot run."""

    key: str
    task: Any = None
    done: dict[str, Any] | None = None
    error: str | None = None


def prepare_cohort_out(out: Path, source: Path, name: str) -> None:
    """Create or reuse the derivatives folder of this kind of run; clear what a killed run left.

    A folder made by the other cohort command is refused: both would write into the same
    session folders and tables.
    """
    from mslesion import __version__

    if out.resolve() == source.resolve():
        raise InputError(out, "the output folder must differ from the BIDS dataset")
    description = out / "dataset_description.json"
    try:
        existing = json.loads(description.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        existing = {}
    if isinstance(existing, dict) and existing.get("Name") not in (None, name) and "mslesion" in str(existing.get("GeneratedBy", "")):
        raise InputError(out, f"holds '{existing['Name']}', another mslesion cohort command's output; choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(out, f"cannot create the output folder ({exc.strerror})") from None
    clear_leftovers(out)
    write_json_atomic(
        description,
        {
            "Name": name,
            "BIDSVersion": "1.9.0",
            "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "mslesion", "Version": __version__, "Description": "MS lesion segmentation, locations and reports"}],
            "SourceDatasets": [{"URL": f"file://{source.resolve()}"}],
        },
    )


def run_jobs(
    jobs: Sequence[Job],
    spec: WorkerSpec,
    options: EngineOptions,
    write_tables: Callable[[CohortResult], None],
    checkpoint_every: int = 10,
    out: Path | None = None,
) -> CohortResult:
    """Run the jobs not done on the engine; tables every `checkpoint_every` completions and at the end."""
    if checkpoint_every < 1:
        raise InputError(None, f"--checkpoint-every must be at least 1, not {checkpoint_every}")
    result = CohortResult()
    for job in jobs:
        if job.done is not None:
            result.skipped.append(job.key)
            result.summaries[job.key] = job.done
            logger.info("%s: already done, skipped", job.key)
        elif job.error is not None:
            result.failed[job.key] = job.error
            logger.error("%s: failed: %s", job.key, job.error)
    stream = run_tasks(options, spec, [job.task for job in jobs if job.task is not None])
    try:
        for count, outcome in enumerate(stream, 1):
            _record(result, outcome)
            if count % checkpoint_every == 0:
                write_tables(result)
    finally:  # also when interrupted: the tables hold exactly what is done
        stream.close()  # the engine stops its workers first
        order = {job.key: i for i, job in enumerate(jobs)}
        result.done.sort(key=order.__getitem__)
        result.failed = dict(sorted(result.failed.items(), key=lambda item: order[item[0]]))
        write_tables(result)
        if out is not None:
            clear_leftovers(out)
    return result


def _record(result: CohortResult, outcome: Outcome) -> None:
    if outcome.attempts > 1:
        result.retried[outcome.key] = outcome.attempts
        logger.warning("%s: ran %d times (lost worker(s)); last on %s", outcome.key, outcome.attempts, outcome.where)
    if outcome.summary is not None:
        result.done.append(outcome.key)
        result.summaries[outcome.key] = outcome.summary
        logger.info("%s: done on %s", outcome.key, outcome.where)
    else:
        result.failed[outcome.key] = outcome.error or "failed"
        logger.error("%s: failed: %s", outcome.key, outcome.error)
