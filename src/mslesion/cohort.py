"""`segment_dataset`: segment every session of a BIDS dataset into a BIDS-derivatives folder.

Per session (`sub-X/ses-Y/anat/`, in the input's own space, hence `space-orig`):
`sub-X_ses-Y_space-orig_label-lesion_mask.nii.gz` (+ its JSON sidecar: the per-session
summary, written last, so its presence means "done"), `..._label-lesion_probseg.nii.gz`,
`..._label-brain_mask.nii.gz` (when computed), `..._desc-lesions_table.csv`, and the
session's `report.html`/`report.json` as `..._report.html`/`.json`. At the top:
`dataset_description.json`, `cohort.csv` (one row per session) and `cohort.html` (the same
sessions with QC flags, links to their reports and a lesion-volume plot per site/scanner).
Sessions already done are skipped; a failing session is recorded and the others go on.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mslesion.errors import InputError
from mslesion.io.atomic import write_csv_atomic, write_json_atomic

logger = logging.getLogger(__name__)

LOCATION_KEYS = ("periventricular", "juxtacortical", "infratentorial", "deep_white_matter", "unknown")
COHORT_COLUMNS = ["subject", "session", "lesion_count", "total_volume_ml"] + [
    f"{k}_{m}" for k in LOCATION_KEYS for m in ("count", "volume_ml")
] + ["warnings"]
# segment() output name -> BIDS-derivatives name ending, after `sub-X[_ses-Y]_`.
OUTPUT_NAMES = {
    "lesion_mask.nii.gz": "space-orig_label-lesion_mask.nii.gz",
    "lesion_prob.nii.gz": "space-orig_label-lesion_probseg.nii.gz",
    "brain_mask.nii.gz": "space-orig_label-brain_mask.nii.gz",
    "lesions.csv": "space-orig_desc-lesions_table.csv",
    "report.html": "report.html",
    "report.json": "report.json",
}
SIDECAR = "space-orig_label-lesion_mask.json"


@dataclass
class CohortResult:
    """What `segment_dataset` did: sessions segmented now, skipped as done, and failed (with why)."""

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    table: Path | None = None
    page: Path | None = None


def _prefix(subject: str, session: str | None) -> str:
    return f"{subject}_{session}" if session else subject


def _anat_dir(out: Path, subject: str, session: str | None) -> Path:
    return out / subject / session / "anat" if session else out / subject / "anat"


def write_description(out: Path, source: Path) -> None:
    """dataset_description.json of the derivatives folder (BIDS 1.9, GeneratedBy mslesion)."""
    from mslesion import __version__

    write_json_atomic(out / "dataset_description.json", {
        "Name": "mslesion lesion segmentations",
        "BIDSVersion": "1.9.0",
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "mslesion", "Version": __version__, "Description": "MS lesion segmentation, locations and reports"}],
        "SourceDatasets": [{"URL": f"file://{source.resolve()}"}],
    })


def _segment_session(case, out: Path, source: Path, model: str | Path) -> dict[str, Any]:  # noqa: ANN001 - io.case.Case
    """Segment one session into a scratch folder, then move its files under BIDS names; sidecar last."""
    from mslesion.pipeline import segment

    subject, session = case.meta.subject, case.meta.session
    anat = _anat_dir(out, subject, session)
    prefix = _prefix(subject, session)
    work = out / f".work-{uuid.uuid4().hex[:8]}"
    scratch = work / prefix  # segment() names the report's case after its output folder
    images = {name: vol.path for name, vol in case.images.items() if vol.path is not None}
    try:
        result = segment(images, scratch, model=model)
        anat.mkdir(parents=True, exist_ok=True)
        for name, bids_name in OUTPUT_NAMES.items():
            if (scratch / name).exists():
                os.replace(scratch / name, anat / f"{prefix}_{bids_name}")
        summary = dict(result.summary)
        summary["Sources"] = [f"bids:raw:{Path(p).resolve().relative_to(source.resolve())}" for p in images.values()]
        write_json_atomic(anat / f"{prefix}_{SIDECAR}", summary)
        return summary
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _cohort_row(subject: str, session: str | None, summary: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"subject": subject, "session": session or "", "lesion_count": summary.get("lesion_count"),
                           "total_volume_ml": summary.get("total_volume_ml"), "warnings": " | ".join(summary.get("warnings", []))}
    for key, entry in summary.get("locations", {}).items():
        row[f"{key}_count"] = entry["count"]
        row[f"{key}_volume_ml"] = entry["volume_ml"]
    return row


def _page_row(subject: str, session: str | None, summary: dict[str, Any], meta: Any) -> dict[str, Any]:  # meta: io.case.CaseMeta
    """A cohort.html row: the numbers, the QC flags, the report's path relative to the derivatives folder."""
    from mslesion.report.write import qc_entries

    name = _prefix(subject, session)
    anat = Path(subject, session, "anat") if session else Path(subject, "anat")
    return {"name": name, "lesion_count": summary.get("lesion_count"), "total_volume_ml": summary.get("total_volume_ml"),
            "flags": sorted(set(qc_entries(summary, "flags"))), "warnings": len(summary.get("warnings", [])),
            "report": (anat / f"{name}_report.html").as_posix(), "site": getattr(meta, "site", None), "scanner": getattr(meta, "scanner", None)}


def segment_dataset(bids_dir: str | Path, out: str | Path, model: str | Path = "default") -> CohortResult:
    """Segment every session of `bids_dir` into `out`; skip done sessions, keep going past failures."""
    from mslesion.io.bids import read_bids
    from mslesion.models.store import resolve_model

    bids_dir, out = Path(bids_dir), Path(out)
    if out.resolve() == bids_dir.resolve():
        raise InputError(out, "the output folder must differ from the BIDS dataset")
    resolve_model(model)  # a missing model fails once, before any session
    cases = read_bids(bids_dir)
    out.mkdir(parents=True, exist_ok=True)
    for leftover in out.glob(".work-*"):  # scratch of a killed run: its session never got a sidecar
        shutil.rmtree(leftover, ignore_errors=True)
    write_description(out, bids_dir)
    result = CohortResult()
    rows, page_rows = [], []
    for case in cases:
        subject, session = case.meta.subject, case.meta.session
        name = _prefix(subject, session)
        sidecar = _anat_dir(out, subject, session) / f"{name}_{SIDECAR}"
        if sidecar.is_file():
            result.skipped.append(name)
            done = json.loads(sidecar.read_text())
            rows.append(_cohort_row(subject, session, done))
            page_rows.append(_page_row(subject, session, done, case.meta))
            logger.info("%s: already done, skipped", name)
            continue
        try:
            summary = _segment_session(case, out, bids_dir, model)
        except Exception as exc:  # one bad session must not stop a cohort run; the reason is listed at the end
            reason = str(exc) if isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"
            result.failed[name] = reason
            logger.error("%s: failed: %s", name, reason)
            logger.debug("%s traceback", name, exc_info=True)
            continue
        result.done.append(name)
        rows.append(_cohort_row(subject, session, summary))
        page_rows.append(_page_row(subject, session, summary, case.meta))
        logger.info("%s: %s lesions, %.2f mL", name, summary["lesion_count"], summary["total_volume_ml"])
    result.table = write_csv_atomic(out / "cohort.csv", rows, COHORT_COLUMNS)
    from mslesion.report.cohort import write_cohort_page

    result.page = write_cohort_page(out, page_rows, result.failed)
    return result
