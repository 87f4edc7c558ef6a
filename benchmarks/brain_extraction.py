"""Brain extraction on raw clinical FLAIR (issue 12); writes benchmarks/results/brain_extraction.{md,json}.

- Every raw FLAIR of `lesjak-longitudinal` (2 patients x 2 visits): our mask, computed on the
  raw FLAIR grid, is carried into the database's common space through its ITK transform
  (`studyY_FLAIR_to_common_space.txt`: common point -> raw FLAIR point) and scored by Dice
  against the database's `brainmask.nii.gz`.
- The raw ISBI FLAIR (another scanner, 4.4 mm slices): brain volume, the share of each
  rater's lesion voxels inside the mask, and a figure of 5 axial slices with the mask outline.
- `--segment`: `segment` on the raw ISBI FLAIR, Dice against each rater, for the phantom-trained
  model that was the default before issue 12 (runs/default/model) and the shipped default, each
  with both brain extractions: what the brain extraction changed and what the model changed.
Seconds are wall-clock on this machine for the brain mask alone (N4 not included).
Each Lesjak scan also gets a figure (`brain_extraction_lesjak_<patient>_<study>.png`): our
mask (red) and the database's (green) on 4 slices of its common space.

    MSLESION_SHARED_DATA=../shared/data .venv/bin/python benchmarks/brain_extraction.py [--methods hdbet template] [--segment]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from mslesion.io.atomic import write_json_atomic, write_text_atomic
from mslesion.preprocess.orient import reorient_canonical
from mslesion.preprocess.raw import BrainExtraction, _brain, _mni_registration
from mslesion.space.sitkio import to_sitk
from real_accuracy import isbi_raters  # the raters' masks on the FLAIR grid, one way for every benchmark

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MSLESION_SHARED_DATA", ROOT.parent / "shared" / "data")).resolve()
RESULTS = ROOT / "benchmarks" / "results"


def brain_mask(path: Path, method: BrainExtraction) -> tuple[np.ndarray, float]:
    """(mask on the native grid of `path`, seconds) with `method`, as `preprocess_raw` computes it (N4 first)."""
    import nibabel as nib

    from mslesion.preprocess.bias import n4_correct
    from mslesion.preprocess.hdbet import hdbet_brain_mask
    from mslesion.space.sitkio import from_sitk

    image = nib.load(path)
    array, affine, grid = reorient_canonical(np.asarray(image.dataobj, np.float32), image.affine)
    corrected, _ = n4_correct(to_sitk(array, affine))
    start = time.perf_counter()
    if method is BrainExtraction.HDBET:
        mask = hdbet_brain_mask(from_sitk(corrected), affine)
    else:
        mni_to_flair = _mni_registration(corrected, path, {}, [])
        mask = _brain(from_sitk(corrected), affine, mni_to_flair, path)
    return grid.to_native(mask), round(time.perf_counter() - start, 1)


def dice_in_common_space(mask: np.ndarray, flair: Path, transform: Path, reference: Path, figure_path: Path | None = None) -> float:
    """Dice of `mask` (raw FLAIR grid) against the database's brain mask, in its common space
    (and, with `figure_path`, both outlines over the FLAIR on 4 slices of that space)."""
    raw = sitk.ReadImage(str(flair))
    moving = sitk.GetImageFromArray(mask.transpose(2, 1, 0).astype(np.float32))
    moving.CopyInformation(raw)
    ref_img = sitk.ReadImage(str(reference))
    transform_ = sitk.ReadTransform(str(transform))
    mapped = sitk.GetArrayFromImage(sitk.Resample(moving, ref_img, transform_, sitk.sitkLinear, 0.0)) > 0.5
    ref = sitk.GetArrayFromImage(ref_img) > 0
    if figure_path is not None:
        image = sitk.GetArrayFromImage(sitk.Resample(raw, ref_img, transform_, sitk.sitkLinear, 0.0))
        overlay_figure(image, mapped, ref, figure_path)
    return round(float(2 * (mapped & ref).sum() / (mapped.sum() + ref.sum())), 4)


def overlay_figure(image: np.ndarray, ours: np.ndarray, reference: np.ndarray, path: Path) -> None:
    """4 axial slices (array axis 0, SimpleITK order) of `image`: our mask red, the reference green."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    slices = np.flatnonzero((ours | reference).any(axis=(1, 2)))
    fig, axes = plt.subplots(1, 4, figsize=(14, 4))
    for ax, k in zip(axes, np.linspace(slices[0] + 2, slices[-1] - 2, 4).astype(int)):
        ax.imshow(image[k], cmap="gray")
        ax.contour(reference[k], levels=[0.5], colors="lime", linewidths=0.8)
        ax.contour(ours[k], levels=[0.5], colors="red", linewidths=0.8)
        ax.set_title(f"slice {k}: ours red, database green", fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)


def isbi(method: BrainExtraction) -> dict:
    """Brain volume, rater lesions inside, and the figure for the raw ISBI FLAIR."""
    import nibabel as nib

    flair_path, raters = isbi_raters()
    mask, seconds = brain_mask(flair_path, method)
    flair = nib.load(flair_path)
    row = {"seconds": seconds, "brain_ml": round(float(mask.sum() * np.prod(flair.header.get_zooms()[:3])) / 1000, 1)}
    for name, ref in zip(("mask1", "mask2"), raters):
        row[f"{name}_lesion_voxels_inside"] = round(float((ref & mask).sum() / max(ref.sum(), 1)), 4)
    figure(np.asarray(flair.dataobj, np.float32), mask, RESULTS / f"brain_extraction_isbi_{method.value}.png")
    return row


def figure(image: np.ndarray, mask: np.ndarray, path: Path) -> None:
    """5 axial slices with the mask outline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    slices = np.linspace(0.2, 0.8, 5) * image.shape[2]
    fig, axes = plt.subplots(1, 5, figsize=(15, 3.4))
    for ax, k in zip(axes, slices.astype(int)):
        ax.imshow(np.rot90(image[:, :, k]), cmap="gray")
        ax.contour(np.rot90(mask[:, :, k]), levels=[0.5], colors="cyan", linewidths=0.8)
        ax.set_title(f"slice {k}")
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


MODELS = {"phantom-trained (before issue 12)": ROOT / "runs" / "default" / "model", "shipped default": "default"}


def segment_isbi() -> list[dict]:
    """`segment` on the raw ISBI FLAIR for each model of MODELS and each brain extraction: Dice per rater."""
    import tempfile

    import nibabel as nib

    from mslesion.evaluate.voxel import dice
    from mslesion.pipeline import segment

    flair_path, raters = isbi_raters()
    flair = nib.load(flair_path)
    rows = []
    for label, model in MODELS.items():
        for method in BrainExtraction:
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                segment({"FLAIR": flair_path}, Path(tmp), model=model, brain_extraction=method.value)
                seconds = round(time.perf_counter() - start, 1)
                mask = np.asarray(nib.load(Path(tmp) / "lesion_mask.nii.gz").dataobj) > 0
            dices = [round(float(dice(mask, r)), 3) for r in raters]
            rows.append({"model": label, "brain_extraction": method.value, "dice_rater1": dices[0], "dice_rater2": dices[1],
                         "lesion_ml": round(float(mask.sum() * np.prod(flair.header.get_zooms()[:3])) / 1000, 2), "seconds": seconds})
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="*", default=[m.value for m in BrainExtraction])
    parser.add_argument("--segment", action="store_true", help="also run segment on the raw ISBI FLAIR with each model and brain extraction")
    args = parser.parse_args()
    previous = RESULTS / "brain_extraction.json"
    result: dict = json.loads(previous.read_text()) if previous.is_file() else {}  # methods measured earlier are kept
    segment_rows = segment_isbi() if args.segment else result.pop("segment_isbi", None)
    for method in (BrainExtraction.parse(m) for m in args.methods):
        rows = []
        for patient in ("patient01", "patient03"):
            folder = SHARED / "lesjak-longitudinal" / patient
            for study in ("study1", "study2"):
                flair = folder / f"{study}_FLAIR.nii.gz"
                mask, seconds = brain_mask(flair, method)
                figure_path = RESULTS / f"brain_extraction_lesjak_{patient}_{study}.png" if method is BrainExtraction.HDBET else None
                dice = dice_in_common_space(mask, flair, folder / f"{study}_FLAIR_to_common_space.txt", folder / "brainmask.nii.gz", figure_path)
                rows.append({"scan": f"{patient}/{study}", "dice": dice, "seconds": seconds})
                print(method.value, rows[-1], flush=True)
        result[method.value] = {"lesjak": rows, "isbi": isbi(method)}
        print(method.value, result[method.value]["isbi"], flush=True)
    write_json_atomic(RESULTS / "brain_extraction.json", {**result, "segment_isbi": segment_rows})
    lines = ["# Brain extraction on raw clinical FLAIR", "", "Written by `benchmarks/brain_extraction.py`.", "",
             "| method | Lesjak brain Dice (4 raw FLAIR) | s per scan | ISBI brain mL | ISBI rater lesions inside (1 / 2) |", "|---|---|---|---|---|"]
    for method, r in result.items():
        dices = ", ".join(f"{x['dice']:.3f}" for x in r["lesjak"])
        seconds = np.median([x["seconds"] for x in r["lesjak"]])
        i = r["isbi"]
        lines.append(f"| {method} | {dices} | {seconds:.0f} | {i['brain_ml']} | {i['mask1_lesion_voxels_inside']} / {i['mask2_lesion_voxels_inside']} |")
    if segment_rows:
        lines += ["", "## `segment` on the raw ISBI FLAIR (another scanner): Dice against each rater", "",
                  "| model | brain extraction | Dice rater 1 | Dice rater 2 | lesion mL | s end to end |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['model']} | {r['brain_extraction']} | {r['dice_rater1']} | {r['dice_rater2']} | {r['lesion_ml']} | {r['seconds']} |"
                  for r in segment_rows]
    write_text_atomic(RESULTS / "brain_extraction.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
