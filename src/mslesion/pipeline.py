"""`segment()`: lesions of one visit, through the shared predictor (`mslesion.predict`).

Outputs land on exactly the input FLAIR grid and affine, written all or nothing
(`predict.export`); `out` must be new, empty or a previous run's (`io.outdir`), which is then
replaced whole. What is `segment`'s own: the visit's contrasts as the model's channels, the
regional models' vote and FiLM's metadata, and what summary.json and the report show.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mslesion import timing
from mslesion.errors import InputError
from mslesion.io.outdir import prepare_out
from mslesion.predict.export import export_prediction, summary_footer
from mslesion.predict.geometry import SPACING_TOLERANCE_MM, model_spacing_grid
from mslesion.predict.inputs import (
    PREPROCESS_MODES,
    brain_from_images,
    brain_of_ready_input,
    channel_warnings,
    check_preprocess_mode,
    describe_inputs,
    load_inputs,
    needs_preprocessing,
    preprocessing_reason,
)
from mslesion.predict.model import LoadedModel, load_model_once, model_caveat
from mslesion.predict.predictor import Predictor, label_lesions, prediction_run

# Where these lived before `mslesion.predict`: imported from here by the cohort, tests and benchmarks.
__all__ = [
    "DEFAULT_MODEL",
    "PREPROCESS_MODES",
    "SPACING_TOLERANCE_MM",
    "LoadedModel",
    "SegmentResult",
    "brain_from_images",
    "load_model_once",
    "model_spacing_grid",
    "preprocessing_reason",
    "segment",
]

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "default"


@dataclass
class SegmentResult:
    """What `segment` found and where it wrote it."""

    out: Path
    lesion_count: int
    total_volume_ml: float
    summary: dict[str, Any] = field(default_factory=dict)


def segment(
    images: dict[str, Path],
    out: Path,
    model: str | Path | LoadedModel = DEFAULT_MODEL,
    brain_mask: Path | None = None,
    flips: int | None = None,
    overlap: float = 0.25,
    preprocess: str = "auto",
    brain_extraction: str = "hdbet",
    backend: str = "auto",
) -> SegmentResult:
    """Segment lesions; write mask, probabilities, tables and report on the input FLAIR grid.

    `preprocess`: "auto" runs the raw-scan pipeline (N4, registration, brain extraction,
    1 mm MNI working grid; `preprocess.raw`) only when the input is not ready for the model
    (`preprocessing_reason`), "yes" always, "no" never (not-ready input is then an error).
    `brain_extraction` ("template" or "hdbet", `preprocess.raw.BrainExtraction`) is how raw scans lose their skull.
    `backend` (`infer.backends.Backend`) runs the network; `flips` None: the card's test_time_flips. Seconds per stage go to summary.json (`mslesion.timing`).
    """
    with prediction_run() as (times, background):
        return _segment(images, out, model, brain_mask, flips, overlap, preprocess, brain_extraction, backend, times, background)


def _segment(
    images: dict[str, Path],
    out: Path,
    model: str | Path | LoadedModel,
    brain_mask: Path | None,
    flips: int | None,
    overlap: float,
    preprocess: str,
    brain_extraction: str,
    backend: str,
    times: timing.StageTimes,
    background: ThreadPoolExecutor,
) -> SegmentResult:
    """`segment`, its stages timed into `times`, one-off work started on `background`."""
    from mslesion.infer.backends import Backend
    from mslesion.postprocess.lesions import LESION_TABLE_COLUMNS
    from mslesion.preprocess.raw import BrainExtraction, Preprocessed
    from mslesion.report.write import write_report

    start = time.perf_counter()
    check_preprocess_mode(preprocess)
    extraction = BrainExtraction.parse(brain_extraction)
    backend = Backend.parse(backend)
    with timing.stage("load model"):
        loaded = load_model_once(model)  # a cohort worker passes the model it read once
    card = loaded.card
    if card.architecture == "new-lesions-unet":
        raise InputError(loaded.path, "is a new-lesion model (two visits in): use `mslesion new-lesions`")
    predictor = Predictor(loaded, background, flips, overlap, backend)
    with timing.stage("load images"):
        volumes, flair = load_inputs(images)
    reason = preprocessing_reason(volumes, flair, card.spacing_mm, brain_mask)
    raw = needs_preprocessing(preprocess, reason, flair.path, "skull-strip and co-register first, or use --preprocess auto")

    def preprocessed() -> Preprocessed:
        from mslesion.preprocess.raw import preprocess_raw

        logger.info("preprocessing the scans (%s)", reason or "requested")
        return preprocess_raw(
            volumes, brain_mask=brain_mask, brain_extraction=extraction
        )  # volumes read and validated; times its own steps

    def ready() -> tuple[dict[str, np.ndarray], np.ndarray]:  # one visit: its contrasts are the channels
        return {name: v.array for name, v in volumes.items()}, brain_of_ready_input(flair, brain_mask)[0]

    model_images, geometry = predictor.prepare(flair, preprocessed if raw else None, ready)
    pre = geometry.preprocessed
    inputs = [*images.values(), brain_mask, loaded.path]
    prepare_out(out, inputs)
    # A model trained with modality dropout expects missing contrasts; others get a warning.
    warnings = channel_warnings(volumes, card.contrasts, card.modality_dropout)
    if loaded.regional and geometry.spacing_mismatch:  # regions fixed on the model's grid: never resampled
        warnings.append(f"voxel size {tuple(round(s, 2) for s in flair.spacing)} mm differs from the model's {card.spacing_mm}")
    if pre is not None:
        warnings += pre.warnings
    warnings += model_caveat(card)
    x = predictor.model_input(model_images, geometry.model_brain)
    metadata = None
    if loaded.needs_metadata:  # FiLM: what we know of this scan; the rest is "unknown"
        given = {"contrasts": [c for c in card.contrasts if c in volumes], "voxel_size": list(flair.spacing)}
        metadata = loaded.net.metadata_spec.encode(given)
    prob, vote = predictor.probability(x, geometry.model_brain, metadata)
    (prob,) = predictor.to_input(geometry, [prob])
    if vote is not None:  # the regional vote: its voxels in the brain are the lesions, with the usual minimum size
        lesions = label_lesions(
            (geometry.to_input(vote, is_label=True) & geometry.brain).astype(np.float32), 0.5, card.min_lesion_mm3, flair
        )
    else:
        lesions = label_lesions(prob, card.threshold, card.min_lesion_mm3, flair, card.min_mean_probability)
    locations, location_qc, location_warnings = predictor.locate(lesions, geometry)
    warnings += location_warnings
    qc: dict[str, Any] = {"lesion_locations": location_qc}
    if pre is not None:
        qc["preprocessing"] = pre.qc
    brain_computed = brain_mask is None
    summary = {
        "lesion_count": lesions.count,
        "total_volume_ml": lesions.total_volume_ml,
        "lesion_connectivity": 26,
        "locations": locations,
        "model": {
            "path": str(loaded.path),
            "architecture": card.architecture,
            "contrasts": card.contrasts,
            "threshold": card.threshold,
            "test_time_flips": predictor.flips,
            "version": card.version,
        },
        "inputs": describe_inputs(volumes),
        "brain_mask": str(brain_mask)
        if not brain_computed
        else ("computed (template + intensity)" if pre else "computed (non-zero FLAIR)"),
        "preprocessing": None if pre is None else {"reason": reason or "requested", **pre.qc},
        "resampled_to_model_spacing_mm": None if geometry.resampled is None else list(card.spacing_mm),
        **summary_footer(volumes.values(), warnings, start),
    }
    written = {"lesion_mask.nii.gz": (lesions.mask, np.uint8), "lesion_prob.nii.gz": (prob, np.float32)}
    if brain_computed:
        written["brain_mask.nii.gz"] = (geometry.brain, np.uint8)

    def report(folder: Path) -> None:
        write_report(
            folder,
            case_id=out.resolve().name,
            inputs=volumes,
            flair=flair,
            mask=lesions.mask,
            brain=geometry.brain,
            lesions_rows=lesions.rows,
            summary=summary,
            qc=qc,
        )

    export_prediction(out, inputs, flair, written, ("lesions.csv", lesions.rows, LESION_TABLE_COLUMNS), summary, report, times, warnings)
    return SegmentResult(out=out, lesion_count=lesions.count, total_volume_ml=summary["total_volume_ml"], summary=summary)
