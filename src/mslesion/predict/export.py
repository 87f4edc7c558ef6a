"""`export_prediction`: one run's outputs written on the input grid, all or nothing.

Everything goes to a hidden staging folder inside `out` and moves into place only when all of
it was written (`io.outdir.staged_output`), so a failure never leaves a partial result;
summary.json is written last, with the seconds per stage including the report's own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mslesion import timing
from mslesion.io.atomic import write_csv_atomic, write_json_atomic
from mslesion.io.outdir import prepare_out, staged_output
from mslesion.io.volume import Volume, save_like

logger = logging.getLogger(__name__)


def export_prediction(
    out: Path,
    inputs: Iterable[Path | None],
    reference: Volume,
    images: Mapping[str, tuple[np.ndarray, type]],
    table: tuple[str, list[dict[str, Any]], list[str]],
    summary: dict[str, Any],
    report: Callable[[Path], None],
    times: timing.StageTimes,
    warnings: list[str],
) -> None:
    """Write `images` (file name -> array and dtype, on `reference`'s grid and header), the lesion
    `table` (file name, rows, the columns of an empty table), the report (`report(folder)`) and summary.json into `out`.

    `inputs` (images, masks, the model) must not lie inside `out`, which the run replaces whole;
    `summary` gets `seconds_per_stage` from `times`. The `warnings` are logged once the run is in place.
    """
    prepare_out(out, inputs)
    with staged_output(out) as staging:
        with timing.stage("write images"):
            for name, (array, dtype) in images.items():
                save_like(np.asarray(array).astype(dtype, copy=False), reference, staging / name, dtype=dtype)
            name, rows, empty_columns = table
            write_csv_atomic(staging / name, rows, list(rows[0]) if rows else empty_columns)
        with timing.stage("report"):
            report(staging)
        summary["seconds_per_stage"] = times.as_dict()  # written last, so the report's own time is in it
        write_json_atomic(staging / "summary.json", summary)
    for message in warnings:
        logger.warning("warning: %s", message)


def summary_footer(volumes: Iterable[Volume], warnings: list[str], start: float) -> dict[str, Any]:
    """The last keys of every summary.json: the warnings (the inputs' own first: they were logged on loading),
    the run's seconds since `start` (time.perf_counter) and the mslesion version."""
    from mslesion import __version__

    return {
        "warnings": [w for v in volumes for w in v.warnings] + warnings,
        "seconds": round(time.perf_counter() - start, 2),
        "mslesion_version": __version__,
    }
