"""`detect_new_lesions()`: new lesions between two visits, through the shared predictor (`mslesion.predict`).

The new-lesion counterpart of `pipeline.segment`. Outputs land on exactly the follow-up
FLAIR grid. What is its own: the two visits' channels (`baseline_X` / `followup_X`), the
halfway-space preprocessing of a raw pair (`preprocess.pair`), the visits' alignment check,
the methods, and the change table and report. Methods:

- `grown-subtraction` (the default, no training of its own): the subtraction candidates below,
  each grown into the whole follow-up lesion it touches (the shipped single-visit model's
  p >= 0.3 at follow-up), since raters mark an enlarging lesion whole while a difference image
  lights only its rim; each change is new, or enlarging where a baseline lesion touches it. It wins
  on the real Lesjak pairs (benchmarks/results/change_lopo.md).
- `subtraction` (no training): the normalised FLAIR difference, smoothed and gated
  (`models.subtraction`). Voxel-size aware, so it runs on the input's own voxels.
- a trained new-lesion network (`new-lesions-unet`, e.g. the shipped `new-lesions`).
- `probability-change`: the shipped single-visit model run on each visit in halfway space,
  change = |p(follow-up) - p(baseline)|, so new, enlarging, shrinking and resolved lesions all
  show; each changed lesion is then classified (`postprocess.changes`).

The networks run at their own voxel size: ready visits on other voxels are resampled there
and back (`predict.geometry`), as `segment` does.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from mslesion import timing
from mslesion.errors import InputError
from mslesion.io.outdir import prepare_out
from mslesion.io.volume import Volume
from mslesion.predict.export import export_prediction, summary_footer
from mslesion.predict.geometry import Geometry
from mslesion.predict.inputs import (
    brain_from_images,
    channel_warnings,
    check_preprocess_mode,
    describe_inputs,
    needs_preprocessing,
    preprocessing_reason,
    read_volumes,
)
from mslesion.predict.model import LoadedModel, load_model_once, model_caveat
from mslesion.predict.predictor import Lesions, Predictor, label_lesions, prediction_run
from mslesion.preprocess.raw import CONTRASTS as VISIT_CONTRASTS  # each visit: what the single-visit pipeline takes
from mslesion.space.grid import on_mni_grid

logger = logging.getLogger(__name__)

SUBTRACTION = "subtraction"  # listed in models.registry.UNTRAINED
PROBABILITY_CHANGE = "probability-change"  # listed in models.registry.UNTRAINED
GROWN_SUBTRACTION = "grown-subtraction"  # listed in models.registry.UNTRAINED
# The default is what wins on the two real Lesjak pairs (benchmarks/results/change_lopo.md): run as
# shipped on the raw pairs (single-visit default `scanner-long`, 4 flips), grown subtraction reaches change
# Dice 0.40 and MSSEG-2 lesion F1 0.16, subtraction 0.29 / 0.11 and probability-change 0.32 / 0.11 (with
# the previous default `scanner`, 2 flips: 0.41 / 0.18 and 0.31 / 0.09); the shipped new-lesion network is far
# below all three (Dice 0.02, benchmarks/results/new_lesions_*.md).
DEFAULT_NEW_LESION_MODEL = GROWN_SUBTRACTION
# What each untrained method's own measurement says (every summary and report repeats it, as a
# trained model's card caveat): run as shipped on the two raw Lesjak pairs, benchmarks/change_lopo.py.
METHOD_CAVEATS = {
    GROWN_SUBTRACTION: "change Dice 0.40 and MSSEG-2 lesion F1 0.16 on two real raw pairs of one scanner "
    "(benchmarks/results/change_lopo.md); many changes are missed (lesion sensitivity 0.06-0.14). Check every change by eye.",
    SUBTRACTION: "change Dice 0.29 and MSSEG-2 lesion F1 0.11 on two real raw pairs of one scanner "
    "(benchmarks/results/change_lopo.md); it sees new lesions only. Check every change by eye.",
    PROBABILITY_CHANGE: "change Dice 0.32 and MSSEG-2 lesion F1 0.11 on two real raw pairs of one scanner "
    "(benchmarks/results/change_lopo.md), with many false changes. Check every change by eye.",
}
# The single-visit model that `probability-change` and `grown-subtraction` run on each visit.
SINGLE_VISIT_MODEL = "default"
RUNS_SINGLE_VISIT_MODEL = (PROBABILITY_CHANGE, GROWN_SUBTRACTION)
# Follow-up lesion probability a subtraction candidate is grown into: the best of 0.2 / 0.3 / 0.5
# on both pairs together, with the previous single-visit default (`scanner`) and with `scanner-long`
# (change_lopo.py). Tuned on one pair alone the choice flips between 0.2 and 0.3 with the model (the
# table in benchmarks/results/change_lopo.md): the two pairs cannot tell them apart.
GROWN_LESION_THRESHOLD = 0.3
# Threshold on |p(follow-up) - p(baseline)| and minimum changed-lesion size, chosen
# leave-one-patient-out on the two real Lesjak pairs (benchmarks/change_lopo.py).
CHANGE_THRESHOLD = 0.3
CHANGE_MIN_MM3 = 20.0
# MSSEG-2's evaluation ignores components of at most 3 mm^3; the subtraction baseline removes them too.
SUBTRACTION_MIN_MM3 = 3.0
VISITS = ("baseline", "followup")


@dataclass
class NewLesionResult:
    """What `detect_new_lesions` found and where it wrote it."""

    out: Path
    new_lesion_count: int
    total_volume_ml: float
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class ChangeMethod:
    """The chosen method with the network it runs, read once: a trained new-lesion network, the
    single-visit model that `probability-change` and `grown-subtraction` run on each visit, or none
    (`subtraction`). A cohort worker reads it once and passes it to every pair."""

    name: str
    model: LoadedModel | None = None

    @property
    def path(self) -> Path | None:
        return None if self.model is None else self.model.path

    @property
    def card(self) -> Any:
        return None if self.model is None else self.model.card

    @property
    def contrasts(self) -> list[str]:
        if self.name in RUNS_SINGLE_VISIT_MODEL:  # the single-visit model's contrasts, at each visit
            return [f"{visit}_{c}" for visit in VISITS for c in self.card.contrasts]
        return list(self.card.contrasts) if self.card else ["baseline_FLAIR", "followup_FLAIR"]

    @property
    def spacing_mm(self) -> tuple[float, ...]:
        return tuple(self.card.spacing_mm) if self.card else (1.0, 1.0, 1.0)


def load_change_method(model: str | Path | LoadedModel | ChangeMethod) -> ChangeMethod:
    """The method named (`grown-subtraction`, `subtraction`, `probability-change`) or the new-lesion network
    given (a model folder or a LoadedModel), with what it runs read; a ChangeMethod is returned as it is."""
    if isinstance(model, ChangeMethod):
        return model
    if not isinstance(model, LoadedModel) and str(model) == SUBTRACTION:
        return ChangeMethod(SUBTRACTION)
    if not isinstance(model, LoadedModel) and str(model) in RUNS_SINGLE_VISIT_MODEL:
        return ChangeMethod(str(model), load_model_once(SINGLE_VISIT_MODEL))
    loaded = load_model_once(model)
    if loaded.card.architecture != "new-lesions-unet":
        raise InputError(
            loaded.path,
            f"is a {loaded.card.architecture} model, not a new-lesion model "
            f"(a new-lesions-unet model folder, or one of {SUBTRACTION}, {GROWN_SUBTRACTION}, {PROBABILITY_CHANGE})",
        )
    return ChangeMethod(loaded.card.architecture, loaded)


def _check_names(visit: str, images: dict[str, Path]) -> None:
    unknown = sorted(set(images) - set(VISIT_CONTRASTS))
    if unknown:
        raise InputError(None, f"unknown {visit} contrast name(s) {unknown}; use {list(VISIT_CONTRASTS)}")
    if "FLAIR" not in images:
        raise InputError(None, f"the {visit} FLAIR is required (--{visit}-flair)")


def pair_preprocessing_reason(baseline: dict[str, Volume], followup: dict[str, Volume], spacing_mm: tuple[float, ...]) -> str | None:
    """Why this pair cannot go to the model as it is (None: every image on one grid, skull-stripped, fine enough)."""
    reference = followup["FLAIR"]
    for visit, volumes in (("baseline", baseline), ("follow-up", followup)):
        for name, vol in volumes.items():
            if not vol.same_grid(reference):
                return f"{visit} {name} grid {vol.shape} differs from the follow-up FLAIR {reference.shape}"
        reason = preprocessing_reason(volumes, volumes["FLAIR"], spacing_mm, None)
        if reason is not None:
            return f"{visit}: {reason}"
    return None


def _subtraction(images: dict[str, np.ndarray], geometry: Geometry) -> np.ndarray:
    """The subtraction baseline's score on the model's grid (with the white-matter prior on the working grid)."""
    from mslesion.models.subtraction import subtraction_probability
    from mslesion.preprocess.normalize import normalised_channels
    from mslesion.space.priors import white_matter_prior_working_grid

    brain = geometry.model_brain
    with timing.stage("normalise"):
        x = normalised_channels(images, brain, ["baseline_FLAIR", "followup_FLAIR"])
    white_matter = white_matter_prior_working_grid() if geometry.on_working_grid else None
    with timing.stage("inference"):
        return subtraction_probability(x[0], x[1], brain, tuple(geometry.model_spacing), white_matter=white_matter)  # type: ignore[arg-type]


def grown_subtraction_score(
    score: np.ndarray,
    followup: np.ndarray,
    spacing_mm: tuple[float, ...],
    threshold: float = GROWN_LESION_THRESHOLD,
    min_mm3: float = SUBTRACTION_MIN_MM3,
) -> np.ndarray:
    """`grown-subtraction`: the subtraction candidates (`score` > 0.5, larger than `min_mm3`), each grown into
    the follow-up lesions (`followup` probability >= `threshold`) it touches; returned as a score with 0.5 as
    its decision level (`models.subtraction.decided`). The product runs the defaults; change_lopo.py tunes them."""
    from mslesion.models.subtraction import decided
    from mslesion.postprocess.changes import grow_into_lesions
    from mslesion.postprocess.lesions import binarise

    seeds = binarise(score, 0.5, min_mm3, float(np.prod(spacing_mm))) > 0
    grown = grow_into_lesions(seeds, followup >= threshold)
    return decided(np.maximum(score, np.where(grown, followup, 0)), grown)


def _probability(
    method: ChangeMethod, predictor: Predictor, images: dict[str, np.ndarray], geometry: Geometry
) -> tuple[np.ndarray, float, float, list[np.ndarray]]:
    """Probability map on the model's grid, the threshold and minimum size that binarise it, and
    (for `probability-change` and `grown-subtraction`) each visit's single-visit lesion probability."""
    brain = geometry.model_brain
    if method.name == SUBTRACTION:
        return _subtraction(images, geometry), 0.5, SUBTRACTION_MIN_MM3, []
    card = method.card
    if method.name in RUNS_SINGLE_VISIT_MODEL:  # each visit's contrasts are the single-visit model's channels
        baseline, followup = (
            predictor.probability(
                predictor.model_input({c: images[f"{visit}_{c}"] for c in card.contrasts if f"{visit}_{c}" in images}, brain), brain
            )[0]
            for visit in VISITS
        )
        if method.name == GROWN_SUBTRACTION:
            score = _subtraction(images, geometry)
            with timing.stage("grow"):
                grown = grown_subtraction_score(score, followup, tuple(geometry.model_spacing))
            return grown, 0.5, SUBTRACTION_MIN_MM3, [baseline, followup]
        return np.abs(followup - baseline), CHANGE_THRESHOLD, CHANGE_MIN_MM3, [baseline, followup]
    prob, _ = predictor.probability(predictor.model_input(images, brain), brain)  # both visits' channels, as the card lists them
    return prob, card.threshold, card.min_lesion_mm3, []


CHANGE_COLUMNS = ("change", "baseline_volume_ml", "followup_volume_ml")


def _with_change_kinds(lesions: Lesions, visits: list[np.ndarray], method: ChangeMethod, voxel_mm3: float) -> list[dict]:
    """Each row with its change kind and lesion volume at both visits. With the visits' single-visit
    probabilities (`probability-change`, `grown-subtraction`) the kinds come from their lesions (`postprocess.changes`);
    the other methods detect new lesions only: kind new, absent at baseline by definition.

    `grown-subtraction` measures against the lesions it grew into (p >= GROWN_LESION_THRESHOLD, no other
    filter) at both visits, its own grown lesions counted at follow-up (so a follow-up volume is never smaller
    than the lesion reported). Its candidates are signal increases, so a lesion is new when no baseline lesion
    touches it and enlarging otherwise, whatever the two volumes say. `probability-change` uses the model card's
    lesions (threshold, size and mean-probability filters) and all four kinds."""
    from mslesion.components import label_components
    from mslesion.postprocess.changes import ChangeKind, classify_labelled_changes
    from mslesion.postprocess.lesions import lesion_labels

    if not visits:
        return [{**row, "change": "new", "baseline_volume_ml": 0.0, "followup_volume_ml": row["volume_ml"]} for row in lesions.rows]
    if method.name == GROWN_SUBTRACTION:
        baseline = lesion_labels(visits[0], GROWN_LESION_THRESHOLD, SUBTRACTION_MIN_MM3, voxel_mm3)[0]
        followup = label_components((visits[1] >= GROWN_LESION_THRESHOLD) | lesions.mask.astype(bool), 26)[0]
    else:
        card = method.card
        baseline, followup = (
            lesion_labels(p, card.threshold, card.min_lesion_mm3, voxel_mm3, min_mean_probability=card.min_mean_probability)[0]
            for p in visits
        )
    kinds = classify_labelled_changes(lesions.labels, baseline, followup, voxel_mm3 / 1000.0)
    if method.name == GROWN_SUBTRACTION:
        for kind in kinds:
            kind["change"] = ChangeKind.NEW.value if kind["baseline_volume_ml"] == 0 else ChangeKind.ENLARGING.value
    return [{**row, **kind} for row, kind in zip(lesions.rows, kinds)]


def detect_new_lesions(
    baseline: dict[str, Path],
    followup: dict[str, Path],
    out: Path,
    model: str | Path | LoadedModel | ChangeMethod = DEFAULT_NEW_LESION_MODEL,
    flips: int | None = None,
    overlap: float = 0.25,
    preprocess: str = "auto",
) -> NewLesionResult:
    """New lesions at follow-up: masks, tables, summary and report on the follow-up FLAIR grid.

    `baseline` / `followup` map contrast names (FLAIR required) to NIfTI files or DICOM
    folders. `preprocess`: "auto" preprocesses the pair (`preprocess.pair`) unless every
    image is already skull-stripped on the follow-up FLAIR's grid; "yes" always; "no" never.
    Seconds per stage go to summary.json (`mslesion.timing`).
    """
    with prediction_run() as (times, background):
        return _detect(baseline, followup, out, model, flips, overlap, preprocess, times, background)


def _detect(
    baseline: dict[str, Path],
    followup: dict[str, Path],
    out: Path,
    model: str | Path | LoadedModel | ChangeMethod,
    flips: int | None,
    overlap: float,
    preprocess: str,
    times: timing.StageTimes,
    background: ThreadPoolExecutor,
) -> NewLesionResult:
    """`detect_new_lesions`, its stages timed into `times`, one-off work started on `background`."""
    from mslesion.postprocess.changes import change_counts
    from mslesion.postprocess.lesions import LESION_TABLE_COLUMNS
    from mslesion.preprocess.pair import PreprocessedPair, visit_alignment
    from mslesion.report.new_lesions import write_new_lesion_report

    start = time.perf_counter()
    check_preprocess_mode(preprocess)
    _check_names("baseline", baseline)
    _check_names("followup", followup)
    with timing.stage("load model"):
        method = load_change_method(model)
    predictor = Predictor(method.model, background, flips, overlap)
    with timing.stage("load images"):
        volumes = {visit: read_volumes(images) for visit, images in zip(VISITS, (baseline, followup))}
    bl_volumes, fu_volumes = volumes["baseline"], volumes["followup"]
    fu_flair = fu_volumes["FLAIR"]
    channels = {f"{visit}_{name}": v for visit, vols in volumes.items() for name, v in vols.items()}  # two visits: prefixed contrasts
    reason = pair_preprocessing_reason(bl_volumes, fu_volumes, method.spacing_mm)
    raw = needs_preprocessing(preprocess, reason, fu_flair.path, "co-register and skull-strip both visits first, or use --preprocess auto")

    def preprocessed() -> PreprocessedPair:
        from mslesion.preprocess.pair import preprocess_pair

        logger.info("preprocessing both visits (%s)", reason or "requested")
        return preprocess_pair(bl_volumes, fu_volumes)

    def ready() -> tuple[dict[str, np.ndarray], np.ndarray]:
        brain = brain_from_images(bl_volumes["FLAIR"]) | brain_from_images(fu_flair)  # the union, as preprocessing does
        return {name: v.array for name, v in channels.items()}, brain

    images, geometry = predictor.prepare(fu_flair, preprocessed if raw else None, ready)
    pair = cast("PreprocessedPair | None", geometry.preprocessed)
    inputs = [*baseline.values(), *followup.values(), method.path]
    prepare_out(out, inputs)
    warnings = [] if pair is None else list(pair.warnings)
    warnings += channel_warnings(channels, method.contrasts, bool(method.card is not None and method.card.modality_dropout))
    warnings += [f"method {method.name}: {METHOD_CAVEATS[method.name]}"] if method.name in METHOD_CAVEATS else model_caveat(method.card)
    if pair is None:  # ready visits: the same alignment check as preprocessed pairs (off the MNI grid, without its prior)
        residual, alignment_warnings = visit_alignment(
            channels["baseline_FLAIR"].array,
            channels["followup_FLAIR"].array,
            geometry.brain,
            None if on_mni_grid(fu_flair.shape, fu_flair.affine) else fu_flair.spacing,
        )
        visit_residual = round(residual, 3) if np.isfinite(residual) else None
        warnings += alignment_warnings
    else:
        visit_residual = pair.qc.get("visit_residual_nawm_sd")
    prob, threshold, min_mm3, visits = _probability(method, predictor, images, geometry)
    prob, *visits = predictor.to_input(geometry, [prob, *visits])
    lesions = label_lesions(prob, threshold, min_mm3, fu_flair)
    lesions.rows = _with_change_kinds(lesions, visits, method, fu_flair.voxel_volume)
    locations, location_qc, location_warnings = predictor.locate(lesions, geometry)
    warnings += location_warnings
    summary = {
        "new_lesion_count": lesions.count,
        "no_new_lesions": lesions.count == 0,
        "total_volume_ml": lesions.total_volume_ml,
        "change_counts": change_counts(lesions.rows),
        "lesion_connectivity": 26,
        "locations": locations,
        "method": {
            "name": method.name,
            "path": None if method.path is None else str(method.path),
            "threshold": threshold,
            "min_lesion_mm3": min_mm3,
            "contrasts": method.contrasts,
            **({} if method.model is None else {"test_time_flips": predictor.flips}),
            **({"grown_into_followup_probability": GROWN_LESION_THRESHOLD} if method.name == GROWN_SUBTRACTION else {}),
            "version": None if method.card is None else method.card.version,
        },
        "inputs": describe_inputs(channels),
        "preprocessing": None if pair is None else {"reason": reason or "requested", **pair.qc},
        "resampled_to_model_spacing_mm": None if geometry.resampled is None else list(method.spacing_mm),
        "visit_residual_nawm_sd": visit_residual,
        **summary_footer(channels.values(), warnings, start),
    }
    written = {
        "new_lesion_mask.nii.gz": (lesions.mask, np.uint8),
        "new_lesion_prob.nii.gz": (prob, np.float32),
        "brain_mask.nii.gz": (geometry.brain, np.uint8),
    }

    def report(folder: Path) -> None:
        if pair is None:
            shown = (np.asarray(bl_volumes["FLAIR"].array, np.float32), np.asarray(fu_flair.array, np.float32))
        else:
            shown = pair.native_flairs()
        report_summary = {
            **summary,
            "lesion_count": lesions.count,
            "model": summary["method"],
            "qc": {"lesion_locations": location_qc, **({"preprocessing": pair.qc} if pair else {})},
        }
        write_new_lesion_report(
            folder,
            case_id=out.resolve().name,
            baseline=shown[0],
            followup=shown[1],
            affine=fu_flair.affine,
            mask=lesions.mask,
            brain=geometry.brain,
            lesion_rows=lesions.rows,
            summary=report_summary,
            labels=lesions.labels,
        )

    table = ("new_lesions.csv", lesions.rows, LESION_TABLE_COLUMNS + list(CHANGE_COLUMNS))
    export_prediction(out, inputs, fu_flair, written, table, summary, report, times, warnings)
    return NewLesionResult(out=out, new_lesion_count=lesions.count, total_volume_ml=summary["total_volume_ml"], summary=summary)
