"""`segment()`: the one place where the stages meet, load -> preprocess -> model -> infer -> postprocess -> write.

Outputs land on exactly the input FLAIR grid and affine. All files are first written to a
hidden staging folder inside `out` and moved into place only when everything succeeded,
so a failure never leaves a partial result; `out` must be new, empty or a previous run's
(`io.outdir`), which is then replaced whole.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from nibabel.affines import voxel_sizes

from mslesion import timing
from mslesion.errors import InputError
from mslesion.io.atomic import write_csv_atomic, write_json_atomic
from mslesion.io.outdir import prepare_out, staged_output
from mslesion.io.volume import Volume, load_volume, save_like

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "default"
PREPROCESS_MODES = ("auto", "yes", "no")


@dataclass
class SegmentResult:
    """What `segment` found and where it wrote it."""

    out: Path
    lesion_count: int
    total_volume_ml: float
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LoadedModel:
    """A model folder read once: its path, network (eval mode) and card.

    Whoever segments many scans with one model (a cohort worker) passes this as `model=`,
    so the weights are read and checked once per worker, not once per scan.
    """

    path: Path
    net: Any
    card: Any  # models.store.ModelCard


def load_model_once(model: str | Path | LoadedModel) -> LoadedModel:
    """The model named or given, read (a LoadedModel is returned as it is)."""
    if isinstance(model, LoadedModel):
        return model
    from mslesion.models.store import load_model, resolve_model

    path = resolve_model(model)
    net, card = load_model(path)
    return LoadedModel(path, net, card)


def _background_looks_raw(image: np.ndarray) -> bool:
    """Skull-stripped images have an exactly-zero background; raw ones do not."""
    corners = [image[:8, :8, :8], image[-8:, -8:, :8], image[:8, -8:, -8:], image[-8:, :8, -8:]]
    return float(np.mean([np.count_nonzero(c) / c.size for c in corners])) > 0.5


def brain_from_images(flair: Volume) -> np.ndarray:
    """Brain mask of skull-stripped input: voxels non-zero in FLAIR, holes filled."""
    from mslesion.preprocess.brain import nonzero_brain_mask

    mask = nonzero_brain_mask(flair.array)
    if not mask.any():
        raise InputError(flair.path, "image is empty (all zeros)")
    return mask


def _load_inputs(images: dict[str, Path]) -> tuple[dict[str, Volume], Volume]:
    """Open and validate every input image (FLAIR required)."""
    if "FLAIR" not in images:
        raise InputError(None, "a FLAIR image is required (--flair)")
    volumes = {name: load_volume(path).validate() for name, path in images.items()}
    return volumes, volumes["FLAIR"]


def preprocessing_reason(volumes: dict[str, Volume], flair: Volume, spacing_mm: tuple[float, ...], brain_mask: Path | None) -> str | None:
    """Why these inputs cannot go to the model as they are (None when they can).

    Ready means: every contrast on the FLAIR grid, skull stripped (zero background) or a
    brain mask given, and voxels no coarser than 1.5x the model's.
    """
    for name, vol in volumes.items():
        if not vol.same_grid(flair):
            return f"{name} grid {vol.shape} differs from FLAIR {flair.shape}"
    if brain_mask is None and _background_looks_raw(flair.array):
        return "looks like a raw scan (non-zero background) and no --brain-mask was given"
    if any(s > 1.5 * t for s, t in zip(flair.spacing, spacing_mm)):
        return f"voxel size {tuple(round(s, 2) for s in flair.spacing)} mm is coarser than the model's {tuple(spacing_mm)}"
    return None


# Inputs whose voxels differ from the model's by more than this (mm, any axis) are resampled to
# the model's voxel size for inference and the probabilities brought back, as nnU-Net does.
SPACING_TOLERANCE_MM = 0.2


def model_spacing_grid(
    affine: np.ndarray, shape: tuple[int, ...], spacing_mm: tuple[float, ...]
) -> tuple[np.ndarray, tuple[int, int, int]] | None:
    """The input's field of view at the model's voxel size (affine, shape); None when the voxels already match.

    Same orientation and the same outer corner of the field of view; each axis gets
    ceil(n * s / t) voxels of size t (s: input voxel size, t: the model's).
    """
    current = voxel_sizes(np.asarray(affine, float))
    if all(abs(s - t) <= SPACING_TOLERANCE_MM for s, t in zip(current, spacing_mm)):
        return None
    factor = np.asarray(spacing_mm, float) / current
    to_input_voxels = np.eye(4)
    to_input_voxels[:3, :3] = np.diag(factor)
    to_input_voxels[:3, 3] = -0.5 + 0.5 * factor  # voxel j's centre, in input voxel coordinates
    new_shape = tuple(int(np.ceil(n / f - 1e-6)) for n, f in zip(shape[:3], factor))
    return np.asarray(affine, float) @ to_input_voxels, new_shape  # type: ignore[return-value]


def _brain_of_ready_input(flair: Volume, brain_mask: Path | None) -> tuple[np.ndarray, bool]:
    """The given brain mask (checked against the FLAIR grid), or non-zero FLAIR; and whether it was computed."""
    if brain_mask is None:
        return brain_from_images(flair), True
    brain_vol = load_volume(brain_mask).validate()
    if not brain_vol.same_grid(flair):
        raise InputError(brain_mask, f"brain mask grid {brain_vol.shape} differs from FLAIR {flair.shape}")
    brain = brain_vol.array > 0
    if not brain.any():
        raise InputError(brain_mask, "brain mask is empty")
    return brain, False


def segment(
    images: dict[str, Path],
    out: Path,
    model: str | Path | LoadedModel = DEFAULT_MODEL,
    brain_mask: Path | None = None,
    flips: int = 2,
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
    `backend` (`infer.backends.Backend`) runs the network. Seconds per stage go to summary.json (`mslesion.timing`).
    """
    # Two background threads take one-off work off the critical path while the scans load (the
    # loading mostly leaves the second core idle): the backend's compilation and the location atlas.
    with timing.timed_run() as times, ThreadPoolExecutor(max_workers=2, thread_name_prefix="mslesion-warm-up") as background:
        return _segment(images, out, model, brain_mask, flips, overlap, preprocess, brain_extraction, backend, times, background)


def _segment(
    images: dict[str, Path],
    out: Path,
    model: str | Path | LoadedModel,
    brain_mask: Path | None,
    flips: int,
    overlap: float,
    preprocess: str,
    brain_extraction: str,
    backend: str,
    times: timing.StageTimes,
    background: ThreadPoolExecutor,
) -> SegmentResult:
    """`segment`, its stages timed into `times`, one-off work started on `background`."""
    from mslesion import __version__
    from mslesion.infer.backends import Backend
    from mslesion.infer.sliding import predict_probability, prepare_windows
    from mslesion.postprocess.lesions import LESION_TABLE_COLUMNS, describe_lesions, lesion_labels, lesion_rows
    from mslesion.postprocess.locations import annotate_locations, load_atlas
    from mslesion.preprocess.normalize import NyulStandardiser, normalised_channels
    from mslesion.report.write import write_report

    start = time.perf_counter()
    if preprocess not in PREPROCESS_MODES:
        raise InputError(None, f"preprocess must be one of {', '.join(PREPROCESS_MODES)}, not {preprocess!r}")
    from mslesion.preprocess.raw import BrainExtraction

    extraction = BrainExtraction.parse(brain_extraction)
    backend = Backend.parse(backend)
    with timing.stage("load model"):
        loaded = load_model_once(model)  # a cohort worker passes the model it read once
    model_dir, net, card = loaded.path, loaded.net, loaded.card
    if card.architecture == "new-lesions-unet":
        raise InputError(model_dir, "is a new-lesion model (two visits in): use `mslesion new-lesions`")
    regional = getattr(net, "regional", False)  # DeepLesionBrain: regions fixed on the model's (MNI) grid
    warm_ups = [background.submit(load_atlas)]
    if not regional and not getattr(net, "needs_metadata", False):
        warm_ups.append(background.submit(prepare_windows, net, len(card.contrasts), card.patch_size, backend=backend))
    with timing.stage("load images"):
        volumes, flair = _load_inputs(images)
    reason = preprocessing_reason(volumes, flair, card.spacing_mm, brain_mask)
    if preprocess == "no" and reason is not None:
        raise InputError(flair.path, f"{reason}; skull-strip and co-register first, or use --preprocess auto")
    pre = None
    if preprocess == "yes" or reason is not None:
        from mslesion.preprocess.raw import preprocess_raw

        logger.info("preprocessing the scans (%s)", reason or "requested")
        pre = preprocess_raw(volumes, brain_mask=brain_mask, brain_extraction=extraction)  # volumes read and validated; times its own steps
        model_images, model_brain = pre.images, pre.brain
        brain, brain_computed = pre.native_brain, brain_mask is None
    else:
        with timing.stage("brain mask"):
            brain, brain_computed = _brain_of_ready_input(flair, brain_mask)
        model_images, model_brain = {n: v.array for n, v in volumes.items()}, brain
    # Ready input on other voxels than the model's: resampled for inference (regional models
    # cannot be: their regions are fixed on the model's grid, so they only warn below).
    mismatch = None if pre is not None else model_spacing_grid(flair.affine, flair.shape, card.spacing_mm)
    grid = None if regional else mismatch
    if grid is not None:  # e.g. a 2 mm model on a 1 mm scan: it would see lesions twice the size it learnt
        from mslesion.preprocess.resample import resample

        model_images = {n: resample(a, flair.affine, *grid) for n, a in model_images.items()}
        model_brain = resample(brain.astype(np.uint8), flair.affine, *grid, is_label=True) > 0
    if regional:
        from mslesion.infer.regional import check_grid, predict_regional

        if pre is None:
            check_grid(net, flair)
    prepare_out(out, [*images.values(), brain_mask, model_dir])
    missing = [c for c in card.contrasts if c not in volumes]
    # A model trained with modality dropout expects missing contrasts; others get a warning.
    warnings = [] if card.modality_dropout else [f"model input {c} not given: treated as missing (zeros)" for c in missing]
    unused = sorted(set(volumes) - set(card.contrasts))
    warnings += [f"{c} given but the model does not use it" for c in unused]
    if regional and mismatch is not None:
        warnings.append(f"voxel size {tuple(round(s, 2) for s in flair.spacing)} mm differs from the model's {card.spacing_mm}")
    if pre is not None:
        warnings += pre.warnings
    if card.training.get("caveat"):  # what the model's own measurements say about trusting it
        warnings.append(f"model: {card.training['caveat']}")
    nyul = {name: NyulStandardiser.from_dict(d, model_dir) for name, d in card.nyul.items()} or None
    with timing.stage("normalise"):
        x = normalised_channels(model_images, model_brain, card.contrasts, card.normalisation, nyul)
    metadata = None
    if getattr(net, "needs_metadata", False):  # FiLM: what we know of this scan; the rest is "unknown"
        given = {"contrasts": [c for c in card.contrasts if c in volumes], "voxel_size": list(flair.spacing)}
        metadata = net.metadata_spec.encode(given)
    vote = None
    with timing.stage("inference"):  # includes waiting for the warm-ups, whose errors (if any) the foreground meets again
        for warm_up in warm_ups:
            warm_up.exception()
        if regional:  # majority vote of the regional networks, then the usual minimum lesion size
            prob, vote = predict_regional(net, x, card.threshold, flips=flips)
        else:
            prob = predict_probability(net, x, model_brain, card.patch_size, overlap=overlap, flips=flips, metadata=metadata,
                                       backend=backend)
    prob[~model_brain] = 0.0
    with timing.stage("back to the input grid"):
        if grid is not None:  # back onto the input grid, thresholded there like the preprocessed path
            prob = np.clip(resample(prob, grid[0], flair.affine, flair.shape), 0.0, 1.0)
            prob[~brain] = 0.0
        if pre is not None:  # back onto the native FLAIR grid; threshold there so thin lesions survive thick slices
            prob = np.clip(pre.to_native(prob, is_label=False), 0.0, 1.0)
            vote = None if vote is None else pre.to_native(vote.astype(np.uint8), is_label=True) > 0
            prob[~brain] = 0.0
    with timing.stage("lesions"):  # labelled once: the mask, the table and the locations share these labels
        if vote is not None:
            labels, n = lesion_labels((vote & brain).astype(np.float32), 0.5, card.min_lesion_mm3, flair.voxel_volume)
        else:
            labels, n = lesion_labels(prob, card.threshold, card.min_lesion_mm3, flair.voxel_volume,
                                      min_mean_probability=card.min_mean_probability)
        mask = (labels > 0).astype(np.uint8)
        lesions = describe_lesions(labels, n, flair.affine)
        rows = lesion_rows(lesions)
    to_mni = None if pre is None else np.linalg.inv(pre.mni_to_flair)  # world -> MNI, from the registration
    with timing.stage("locations"):
        locations, location_qc, location_warnings = annotate_locations(rows, labels, brain, flair.affine, to_mni=to_mni)
    warnings += location_warnings
    qc: dict[str, Any] = {"lesion_locations": location_qc}
    if pre is not None:
        qc["preprocessing"] = pre.qc
    summary = {
        "lesion_count": len(lesions),
        "total_volume_ml": round(float(sum(les.volume_ml for les in lesions)), 4),
        "lesion_connectivity": 26,
        "locations": locations,
        "model": {"path": str(model_dir), "architecture": card.architecture, "contrasts": card.contrasts, "threshold": card.threshold, "version": card.version},
        "inputs": {name: {"path": str(v.path), "shape": list(v.shape), "spacing_mm": [round(s, 4) for s in v.spacing]} for name, v in volumes.items()},
        "brain_mask": str(brain_mask) if not brain_computed else ("computed (template + intensity)" if pre else "computed (non-zero FLAIR)"),
        "preprocessing": None if pre is None else {"reason": reason or "requested", **pre.qc},
        "resampled_to_model_spacing_mm": None if grid is None else list(card.spacing_mm),
        "warnings": [w for v in volumes.values() for w in v.warnings] + warnings,  # the inputs' were logged on loading
        "seconds": round(time.perf_counter() - start, 2),
        "mslesion_version": __version__,
    }
    prepare_out(out, [*images.values(), brain_mask, model_dir])
    with staged_output(out) as staging:
        with timing.stage("write images"):
            save_like(mask, flair, staging / "lesion_mask.nii.gz", dtype=np.uint8)
            save_like(prob.astype(np.float32), flair, staging / "lesion_prob.nii.gz", dtype=np.float32)
            if brain_computed:
                save_like(brain.astype(np.uint8), flair, staging / "brain_mask.nii.gz", dtype=np.uint8)
            write_csv_atomic(staging / "lesions.csv", rows, list(rows[0]) if rows else LESION_TABLE_COLUMNS)
        with timing.stage("report"):
            write_report(staging, case_id=out.resolve().name, inputs=volumes, flair=flair, mask=mask, brain=brain,
                         lesions_rows=rows, summary=summary, qc=qc)
        summary["seconds_per_stage"] = times.as_dict()  # written last, so the report's own time is in it
        write_json_atomic(staging / "summary.json", summary)
    for message in warnings:
        logger.warning("warning: %s", message)
    return SegmentResult(out=out, lesion_count=len(lesions), total_volume_ml=summary["total_volume_ml"], summary=summary)
