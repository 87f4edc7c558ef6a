"""`mslesion demo`: the main job on an embedded example, with no data to download.

It makes one synthetic subject on the fly (a site never used elsewhere), segments it with
the simplest known rule (FLAIR hyperintensity: z-score inside the brain above a threshold,
specks removed), and evaluates that mask against the subject's ground truth. A trained
model replaces the rule once the segmentation engine lands.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from mslesion.io.manifest import read_manifest
from mslesion.io.volume import save_like


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


def run_demo(out: Path, seed: int = 7) -> str:
    """Make a subject, segment it with the baseline rule, evaluate; return the printed report."""
    from mslesion.evaluate.runner import run_evaluation
    from mslesion.synth import make_dataset

    start = time.perf_counter()
    manifest = make_dataset(out / "example", n=1, seed=seed, n_sites=1)
    (case,) = read_manifest(manifest)
    made = time.perf_counter() - start
    flair = case.images["FLAIR"]
    mask = flair_hyperintensity_mask(flair.array, case.brain.array)
    pred_path = save_like(mask, flair, out / "prediction" / f"{case.case_id}.nii.gz")
    table = run_evaluation(pred_path, case.lesion.path, out / "evaluation")
    total = time.perf_counter() - start
    return (
        f"example subject {case.case_id}: {int(case.lesion.array.sum())} lesion voxels in truth "
        f"(made in {made:.1f} s)\n"
        f"segmented with the FLAIR-hyperintensity baseline -> {pred_path}\n{table}\n"
        f"outputs in {out} ({total:.1f} s)"
    )
