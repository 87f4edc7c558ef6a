"""`mslesion demo`: the main job on an embedded example, with no data to download.

It makes one synthetic subject on the fly, segments it with the shipped default model
(`mslesion segment`), and evaluates the mask against the subject's ground truth. For
comparison it also scores the simplest known rule (FLAIR hyperintensity: z-score inside
the brain above a threshold, specks removed).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from mslesion.io.manifest import read_manifest
from mslesion.io.volume import Volume, save_like


def flair_hyperintensity_mask(flair: np.ndarray, brain: np.ndarray, z_threshold: float = 2.5, min_voxels: int = 4) -> np.ndarray:
    """Voxels brighter than `z_threshold` standard deviations above the brain's mean FLAIR.

    A classical unsupervised baseline: MS lesions are FLAIR-hyperintense. Components smaller
    than `min_voxels` (face connectivity) are dropped as noise.
    """
    from mslesion.components import label_components

    inside = brain > 0
    values = flair[inside]
    z = (flair - values.mean()) / (values.std() + 1e-6)
    mask = (z > z_threshold) & inside
    labels, n = label_components(mask, connectivity=6)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = sizes >= min_voxels
    keep[0] = False
    return keep[labels]


def _file(volume: Volume) -> Path:
    """The file a volume of the example's manifest was read from (read_manifest opens every one from disk)."""
    assert volume.path is not None
    return volume.path


def run_demo(out: Path, seed: int = 7) -> str:
    """Make a subject, segment it with the default model, evaluate; return the printed report."""
    from mslesion.evaluate.runner import run_evaluation
    from mslesion.pipeline import segment
    from mslesion.synth import make_dataset

    start = time.perf_counter()
    manifest = make_dataset(out / "example", n=1, seed=seed, n_sites=1)
    (case,) = read_manifest(manifest)
    made = time.perf_counter() - start
    assert case.lesion is not None and case.brain is not None  # make_dataset writes both masks of every subject
    images = {name: _file(case.images[name]) for name in ("FLAIR", "T1")}
    result = segment(images, out / "segmentation", brain_mask=_file(case.brain))
    seg_seconds = time.perf_counter() - start - made
    table = run_evaluation(out / "segmentation" / "lesion_mask.nii.gz", _file(case.lesion), out / "evaluation")
    flair = case.images["FLAIR"]
    baseline = flair_hyperintensity_mask(flair.array, case.brain.array)
    baseline_path = save_like(baseline, flair, out / "baseline" / f"{case.case_id}.nii.gz")
    baseline_table = run_evaluation(baseline_path, _file(case.lesion), out / "baseline_evaluation")
    baseline_dice = baseline_table.splitlines()[2].split()[1]
    return (
        f"example subject {case.case_id} (synthetic, FLAIR + T1): {int(case.lesion.array.sum())} lesion voxels "
        f"in truth (made in {made:.1f} s)\n"
        f"default model: {result.lesion_count} lesions, {result.total_volume_ml:.2f} mL in {seg_seconds:.1f} s "
        f"-> {out / 'segmentation'}\n{table}\n"
        f"for comparison, the FLAIR-hyperintensity rule: Dice {baseline_dice}\n"
        f"outputs in {out} ({time.perf_counter() - start:.1f} s)"
    )
