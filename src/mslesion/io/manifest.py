"""Manifest tables: one row per case, CSV or TSV, paths relative to the table's folder.

Columns: `case_id` (or `id`), optional metadata (`subject`, `session`, `site`, `scanner`,
`field_strength`), optional masks (`lesion`, `brain`, and any `*_lesion` or `*_brain`
column, e.g. `baseline_lesion` of a longitudinal pair), and one column per contrast
(`FLAIR`, `T1`, `followup_FLAIR`, ... any other column is taken as a contrast path).
An empty cell means "not available for this case".
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from mslesion.errors import InputError
from mslesion.io.atomic import write_csv_atomic
from mslesion.io.case import Case, CaseMeta, canonical_contrast
from mslesion.io.volume import load_volume

ID_COLUMNS = ("case_id", "id")
META_COLUMNS = ("subject", "session", "site", "scanner", "field_strength")
LESION_COLUMNS = ("lesion", "mask", "label")
BRAIN_COLUMNS = ("brain", "brain_mask")
RESERVED = set(ID_COLUMNS + META_COLUMNS + LESION_COLUMNS + BRAIN_COLUMNS)


def _delimiter(path: Path) -> str:
    return "\t" if path.suffix.lower() == ".tsv" else ","


def _first(row: Mapping[str, str], names: Iterable[str]) -> str:
    for name in names:
        value = (row.get(name) or "").strip()
        if value:
            return value
    return ""


def _float_or_none(value: str, path: Path, case_id: str) -> float | None:
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise InputError(path, f"case {case_id}: field_strength {value!r} is not a number") from None


def read_manifest(path: str | Path) -> list[Case]:
    """Read a CSV/TSV manifest into cases (images opened lazily)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "manifest not found")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh, delimiter=_delimiter(path))
        columns = [c.strip() for c in (reader.fieldnames or [])]
        if not any(c in columns for c in ID_COLUMNS):
            raise InputError(path, "manifest has no 'case_id' column")
        rows = [{(k or "").strip(): (v or "") for k, v in row.items()} for row in reader]
    root = path.parent
    mask_columns = [c for c in columns if c.lower().endswith(("_lesion", "_brain")) and c.lower() not in RESERVED]
    contrast_columns = [c for c in columns if c.lower() not in RESERVED and c not in mask_columns]
    cases = []
    for row in rows:
        row = {k if k in contrast_columns or k in mask_columns else k.lower(): v for k, v in row.items()}
        case_id = _first(row, ID_COLUMNS)
        if not case_id:
            raise InputError(path, "a row has an empty case_id")

        def resolve(rel: str) -> Path:
            return Path(rel) if os.path.isabs(rel) else root / rel

        images = {canonical_contrast(c): load_volume(resolve(row[c].strip())) for c in contrast_columns if row.get(c, "").strip()}
        lesion = _first(row, LESION_COLUMNS)
        brain = _first(row, BRAIN_COLUMNS)
        meta = CaseMeta(
            subject=row.get("subject") or None,
            session=row.get("session") or None,
            site=row.get("site") or None,
            scanner=row.get("scanner") or None,
            field_strength=_float_or_none(row.get("field_strength", ""), path, case_id),
        )
        cases.append(
            Case(
                case_id=case_id,
                images=images,
                lesion=load_volume(resolve(lesion)) if lesion else None,
                brain=load_volume(resolve(brain)) if brain else None,
                meta=meta,
                extra_masks={c.lower(): load_volume(resolve(row[c].strip())) for c in mask_columns if row.get(c, "").strip()},
            )
        )
    return cases


def write_manifest(rows: list[dict[str, object]], path: str | Path) -> Path:
    """Write manifest rows atomically; column order: id, metadata, contrasts, masks."""
    path = Path(path)
    keys: list[str] = []
    for row in rows:
        keys.extend(k for k in row if k not in keys)
    order = [k for k in ID_COLUMNS + META_COLUMNS if k in keys]
    order += [k for k in keys if k.lower() not in RESERVED and not k.lower().endswith(("_lesion", "_brain"))]
    order += [k for k in keys if k.lower().endswith(("_lesion", "_brain")) and k.lower() not in RESERVED]
    order += [k for k in LESION_COLUMNS + BRAIN_COLUMNS if k in keys]
    return write_csv_atomic(path, rows, order, delimiter=_delimiter(path))
