"""Atomic writes: write to a hidden temporary file in the same folder, then rename.

A crash or an error never leaves a half-written output where a reader would find it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import uuid
from pathlib import Path
from typing import Any

from mslesion.errors import InputError


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write `text` to `path` atomically (creating the folder), or raise InputError."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # e.g. the "folder" is a file: there is no temporary file to remove
            pass
        raise InputError(path, f"cannot write ({exc.strerror})") from None
    return path


def write_csv_atomic(path: str | Path, rows: list[dict[str, Any]], columns: list[str], delimiter: str = ",") -> Path:
    """Write dict rows as a CSV (or TSV) table atomically; missing and None cells are empty."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, delimiter=delimiter, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if row.get(k) is None else row.get(k) for k in columns} for row in rows)
    return write_text_atomic(path, buffer.getvalue())


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """Write `data` as indented JSON atomically (NaN written as null)."""
    return write_text_atomic(path, json.dumps(_nan_to_none(data), indent=2, sort_keys=False) + "\n")


def _nan_to_none(value: Any) -> Any:
    """JSON has no NaN: write it as null so every JSON parser can read our files."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        return _nan_to_none(value.item())
    return value
