"""`detect_new_lesions()`: new lesions between two visits, load -> preprocess -> model -> infer -> postprocess -> write.

The new-lesion counterpart of `pipeline.segment`. Outputs land on exactly the follow-up
FLAIR's grid and affine, staged in a hidden folder and published only when everything
succeeded. Two methods:
- a trained `new-lesions-unet` model folder (the shipped `new-lesions` by default):
  early fusion of both visits, sliding window with flip test-time augmentation, the
  model's validation-tuned threshold and minimum size;
- `subtraction`: the unsupervised baseline (`models.subtraction`), no training;
- `probability-change`: the shipped single-visit model run on each visit in halfway space,
  change = |p(follow-up) - p(baseline)|, so new, enlarging, shrinking and resolved lesions all
  show; each changed lesion is then classified (`postprocess.changes`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mslesion.errors import InputError
from mslesion.io.atomic import write_csv_atomic, write_json_atomic
from mslesion.io.outdir import prepare_out, staged_output
from mslesion.io.volume import Volume, load_volume, save_like
from mslesion.pipeline import PREPROCESS_MODES, LoadedModel, brain_from_images, load_model_once
from mslesion.preprocess.raw import CONTRASTS as VISIT_CONTRASTS  # each visit: what the single-visit pipeline takes

logger = logging.getLogger(__name__)

SUBTRACTION = "subtraction"  # listed in models.registry.UNTRAINED
# The default is what wins on the real Lesjak pairs: subtraction beats the shipped network
# (Dice 0.37 against 0.02, benchmarks/results/new_lesions_*.md) and, leave-one-patient-out,
# matches probability-change on Dice with twice its lesion F1 (benchmarks/results/change_lopo.md).
DEFAULT_NEW_LESION_MODEL = SUBTRACTION
PROBABILITY_CHANGE = "probability-change"  # listed in models.registry.UNTRAINED
# The single-visit model `probability-change` runs on each visit.
PROBABILITY_CHANGE_MODEL = "default"
# Threshold on |p(follow-up) - p(baseline)| and minimum changed-lesion size, chosen
# leave-one-patient-out on the two real Lesjak pairs (benchmarks/change_lopo.py).
CHANGE_THRESHOLD = 0.3
CHANGE_MIN_MM3 = 20.0
# MSSEG-2's evaluation ignores components of at most 3 mm^3; the subtraction baseline removes them too.
SUBTRACTION_MIN_MM3 = 3.0


@dataclass
class NewLesionResult:
    """What `detect_new_lesions` found and where it wrote it."""

    out: Path
    new_lesion_count: int
    total_volume_ml: float
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Method:
    """The chosen method: a trained network with its card, or the subtraction baseline."""

    name: str
    path: Path | None = None
    net: Any = None
    card: Any = None

    @property
    def contrasts(self) -> list[str]:
        if self.name == PROBABILITY_CHANGE:  # the single-visit model's contrasts, at each visit
            return [f"{visit}_{c}" for visit in ("baseline", "followup") for c in self.card.contrasts]
        return list(self.card.contrasts) if self.card else ["baseline_FLAIR", "followup_FLAIR"]

    @property
    def spacing_mm(self) -> tuple[float, ...]:
        return tuple(self.card.spacing_mm) if self.card else (1.0, 1.0, 1.0)


def _load_method(model: str | Path | LoadedModel) -> _Method:
    if not isinstance(model, LoadedModel) and str(model) == SUBTRACTION:
        return _Method(SUBTRACTION)
    if not isinstance(model, LoadedModel) and str(model) == PROBABILITY_CHANGE:
        loaded = load_model_once(PROBABILITY_CHANGE_MODEL)
        return _Method(PROBABILITY_CHANGE, loaded.path, loaded.net, loaded.card)
    loaded = load_model_once(model)  # a cohort worker passes the model it read once
    if loaded.card.architecture != "new-lesions-unet":
        raise InputError(loaded.path, f"is a {loaded.card.architecture} model, not a new-lesion model (new-lesions-unet or 'subtraction')")
    return _Method(loaded.card.architecture, loaded.path, loaded.net, loaded.card)


def _check_names(visit: str, images: dict[str, Path]) -> None:
    unknown = sorted(set(images) - set(VISIT_CONTRASTS))
    if unknown:
        raise InputError(None, f"unknown {visit} contrast name(s) {unknown}; use {list(VISIT_CONTRASTS)}")
    if "FLAIR" not in images:
        raise InputError(None, f"the {visit} FLAIR is required (--{visit}-flair)")


def pair_preprocessing_reason(baseline: dict[str, Volume], followup: dict[str, Volume], spacing_mm: tuple[float, ...]) -> str | None:
    """Why this pair cannot go to the model as it is (None: every image on one grid, skull-stripped, fine enough)."""
    from mslesion.pipeline import preprocessing_reason

    reference = followup["FLAIR"]
    for visit, volumes in (("baseline", baseline), ("follow-up", followup)):
        for name, vol in volumes.items():
            if not vol.same_grid(reference):
                return f"{visit} {name} grid {vol.shape} differs from the follow-up FLAIR {reference.shape}"
        reason = preprocessing_reason(volumes, volumes["FLAIR"], spacing_mm, None)
        if reason is not None:
            return f"{visit}: {reason}"
    return None


def _inference(method: _Method, images: dict[str, np.ndarray], brain: np.ndarray, spacing: tuple[float, ...], on_working_grid: bool,
               flips: int, overlap: float) -> tuple[np.ndarray, float, float, tuple[np.ndarray, np.ndarray] | None]:
    """Probability map on the model's grid, the threshold and minimum size that binarise it, and
    (for `probability-change`) each visit's single-visit lesion probability."""
    from mslesion.preprocess.normalize import NyulStandardiser, normalised_channels

    if method.card is None:
        from mslesion.models.subtraction import subtraction_probability
        from mslesion.space.priors import white_matter_prior_working_grid

        x = normalised_channels(images, brain, ["baseline_FLAIR", "followup_FLAIR"])
        white_matter = white_matter_prior_working_grid() if on_working_grid else None
        return subtraction_probability(x[0], x[1], brain, tuple(spacing), white_matter=white_matter), 0.5, SUBTRACTION_MIN_MM3, None
    from mslesion.infer.sliding import predict_probability

    card = method.card
    nyul = {name: NyulStandardiser.from_dict(d, method.path) for name, d in card.nyul.items()} or None
    if method.name == PROBABILITY_CHANGE:
        baseline, followup = (
            predict_probability(method.net, normalised_channels({c: images[f"{visit}_{c}"] for c in card.contrasts if f"{visit}_{c}" in images},
                                                                brain, card.contrasts, card.normalisation, nyul),
                                brain, card.patch_size, overlap=overlap, flips=flips)
            for visit in ("baseline", "followup"))
        return np.abs(followup - baseline), CHANGE_THRESHOLD, CHANGE_MIN_MM3, (baseline, followup)
    x = normalised_channels(images, brain, card.contrasts, card.normalisation, nyul)
    prob = predict_probability(method.net, x, brain, card.patch_size, overlap=overlap, flips=flips)
    return prob, card.threshold, card.min_lesion_mm3, None


CHANGE_COLUMNS = ("change", "baseline_volume_ml", "followup_volume_ml")


def _with_change_kinds(rows: list[dict], mask: np.ndarray, visits: list[np.ndarray], card: Any, voxel_mm3: float) -> list[dict]:
    """Each row with its change kind and lesion volume at both visits. With the visits' single-visit
    probabilities (`probability-change`) the kinds come from their lesion masks (`postprocess.changes`);
    the other methods detect new lesions only: kind new, absent at baseline by definition."""
    from mslesion.postprocess.changes import classify_changes
    from mslesion.postprocess.lesions import binarise

    if not visits:
        return [{**row, "change": "new", "baseline_volume_ml": 0.0, "followup_volume_ml": row["volume_ml"]} for row in rows]
    baseline, followup = (binarise(p, card.threshold, card.min_lesion_mm3, voxel_mm3, min_mean_probability=card.min_mean_probability) for p in visits)
    return [{**row, **kinds} for row, kinds in zip(rows, classify_changes(mask, baseline, followup, voxel_mm3 / 1000.0))]


def detect_new_lesions(
    baseline: dict[str, Path],
    followup: dict[str, Path],
    out: Path,
    model: str | Path | LoadedModel = DEFAULT_NEW_LESION_MODEL,
    flips: int = 2,
    overlap: float = 0.25,
    preprocess: str = "auto",
) -> NewLesionResult:
    """New lesions at follow-up: masks, tables, summary and report on the follow-up FLAIR grid.

    `baseline` / `followup` map contrast names (FLAIR required) to NIfTI files or DICOM
    folders. `preprocess`: "auto" preprocesses the pair (`preprocess.pair`) unless every
    image is already skull-stripped on the follow-up FLAIR's grid; "yes" always; "no" never.
    """
    from mslesion import __version__
    from mslesion.postprocess.changes import change_counts
    from mslesion.postprocess.lesions import LESION_TABLE_COLUMNS, describe_lesions, lesion_labels, lesion_rows
    from mslesion.postprocess.locations import annotate_locations
    from mslesion.report.new_lesions import write_new_lesion_report

    start = time.perf_counter()
    if preprocess not in PREPROCESS_MODES:
        raise InputError(None, f"preprocess must be one of {', '.join(PREPROCESS_MODES)}, not {preprocess!r}")
    _check_names("baseline", baseline)
    _check_names("followup", followup)
    method = _load_method(model)
    bl_volumes = {name: load_volume(path).validate() for name, path in baseline.items()}
    fu_volumes = {name: load_volume(path).validate() for name, path in followup.items()}
    fu_flair = fu_volumes["FLAIR"]
    reason = pair_preprocessing_reason(bl_volumes, fu_volumes, method.spacing_mm)
    if preprocess == "no" and reason is not None:
        raise InputError(fu_flair.path, f"{reason}; co-register and skull-strip both visits first, or use --preprocess auto")
    prepare_out(out, [*baseline.values(), *followup.values(), method.path])
    warnings: list[str] = []
    pair = None
    if preprocess == "yes" or reason is not None:
        from mslesion.preprocess.pair import preprocess_pair

        logger.info("preprocessing both visits (%s)", reason or "requested")
        pair = preprocess_pair(bl_volumes, fu_volumes)
        images, model_brain, warnings = pair.images, pair.brain, list(pair.warnings)
        brain = pair.native_brain
        bl_show, fu_show = pair.native_flairs()
        spacing = (1.0, 1.0, 1.0)
    else:
        model_brain = brain_from_images(bl_volumes["FLAIR"]) | brain_from_images(fu_flair)  # the union, as preprocessing does
        brain = model_brain
        images = {**{f"baseline_{k}": v.array for k, v in bl_volumes.items()}, **{f"followup_{k}": v.array for k, v in fu_volumes.items()}}
        bl_show, fu_show = np.asarray(bl_volumes["FLAIR"].array, np.float32), np.asarray(fu_flair.array, np.float32)
        spacing = fu_flair.spacing
    unused = sorted(set(images) - set(method.contrasts))
    warnings += [f"{name} given but the model does not use it" for name in unused]
    warnings += [f"model input {name} not given: treated as missing (zeros)" for name in method.contrasts if name not in images]
    if method.card is not None and method.card.training.get("caveat"):
        warnings.append(f"model: {method.card.training['caveat']}")
    from mslesion.space.grid import on_mni_grid

    on_working_grid = pair is not None or on_mni_grid(fu_flair.shape, fu_flair.affine)
    visit_residual = None if pair is None else pair.qc.get("visit_residual_nawm_sd")
    if pair is None:  # ready visits: the same alignment check as preprocessed pairs (off the MNI grid, without its prior)
        from mslesion.preprocess.pair import visit_alignment

        residual, alignment_warnings = visit_alignment(images["baseline_FLAIR"], images["followup_FLAIR"], model_brain,
                                                       None if on_working_grid else fu_flair.spacing)
        visit_residual = round(residual, 3) if np.isfinite(residual) else None
        warnings += alignment_warnings
    prob, threshold, min_mm3, visits = _inference(method, images, model_brain, spacing, on_working_grid, flips, overlap)
    maps = [prob, *(visits or ())]
    for i, array in enumerate(maps):
        array[~model_brain] = 0.0
        if pair is not None:  # back onto the follow-up's native grid; threshold there (thin lesions survive thick slices)
            maps[i] = np.clip(pair.to_native(array, is_label=False), 0.0, 1.0)
            maps[i][~brain] = 0.0
    prob = maps[0]
    labels, n = lesion_labels(prob, threshold, min_mm3, fu_flair.voxel_volume)  # labelled once: mask, table, locations
    mask = (labels > 0).astype(np.uint8)
    lesions = describe_lesions(labels, n, fu_flair.affine)
    rows = _with_change_kinds(lesion_rows(lesions), mask, maps[1:], method.card, fu_flair.voxel_volume)
    to_mni = None if pair is None else np.linalg.inv(pair.followup.mni_to_flair)
    locations, location_qc, location_warnings = annotate_locations(rows, labels, brain, fu_flair.affine, to_mni=to_mni)
    warnings += location_warnings
    count = len(lesions)
    summary = {
        "new_lesion_count": count,
        "no_new_lesions": count == 0,
        "total_volume_ml": round(float(sum(les.volume_ml for les in lesions)), 4),
        "change_counts": change_counts(rows),
        "lesion_connectivity": 26,
        "locations": locations,
        "method": {"name": method.name, "path": None if method.path is None else str(method.path), "threshold": threshold,
                   "min_lesion_mm3": min_mm3, "contrasts": method.contrasts, "version": None if method.card is None else method.card.version},
        "inputs": {f"{visit}_{name}": {"path": str(v.path), "shape": list(v.shape), "spacing_mm": [round(s, 4) for s in v.spacing]}
                   for visit, vols in (("baseline", bl_volumes), ("followup", fu_volumes)) for name, v in vols.items()},
        "preprocessing": None if pair is None else {"reason": reason or "requested", **pair.qc},
        "visit_residual_nawm_sd": visit_residual,
        "warnings": [w for vols in (bl_volumes, fu_volumes) for v in vols.values() for w in v.warnings] + warnings,  # logged on loading
        "seconds": round(time.perf_counter() - start, 2),
        "mslesion_version": __version__,
    }
    with staged_output(out) as staging:
        save_like(mask, fu_flair, staging / "new_lesion_mask.nii.gz", dtype=np.uint8)
        save_like(prob.astype(np.float32), fu_flair, staging / "new_lesion_prob.nii.gz", dtype=np.float32)
        save_like(brain.astype(np.uint8), fu_flair, staging / "brain_mask.nii.gz", dtype=np.uint8)
        write_csv_atomic(staging / "new_lesions.csv", rows, list(rows[0]) if rows else LESION_TABLE_COLUMNS + list(CHANGE_COLUMNS))
        write_json_atomic(staging / "summary.json", summary)
        report_summary = {**summary, "lesion_count": count, "model": summary["method"], "qc": {"lesion_locations": location_qc, **({"preprocessing": pair.qc} if pair else {})}}
        write_new_lesion_report(staging, case_id=out.resolve().name, baseline=bl_show, followup=fu_show, affine=fu_flair.affine,
                                mask=mask, brain=brain, lesion_rows=rows, summary=report_summary)
    for message in warnings:
        logger.warning("warning: %s", message)
    return NewLesionResult(out=out, new_lesion_count=count, total_volume_ml=summary["total_volume_ml"], summary=summary)
