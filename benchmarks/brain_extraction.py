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
- `--methods deepbet`: deepbet (PyPI `deepbet`, MIT, T1-only) for comparison, not a product
  option. It runs on the raw T1W of each visit that has one (patient03 study1 has none; the ISBI
  subject has no T1 here), in its own venv through `deepbet_side.py`; its mask is carried onto the
  raw FLAIR grid by `studyY_T1W_intrastudy_to_FLAIR.txt` (FLAIR point -> T1W point; linear, > 0.5)
  and then scored like the others. Its seconds are model loading plus deepbet's own run in that
  process at 2 threads (`seconds_process`: the whole subprocess, Python and torch start included).
Seconds are wall-clock on this machine for the brain mask alone (N4 not included).
Each Lesjak scan also gets a figure (`brain_extraction_lesjak_<patient>_<study>.png`, hdbet;
`..._deepbet.png`): the mask (red) and the database's (green) on 4 slices of its common space.
Methods not named in `--methods` keep their rows from the previous brain_extraction.json.

    MSLESION_SHARED_DATA=../shared/data .venv/bin/python benchmarks/brain_extraction.py [--methods hdbet template deepbet] [--segment]

deepbet's venv (build/ is git-ignored; torch stays the CPU build, customtkinter and the GUI are left out):

    python3.11 -m venv build/deepbet-venv && echo torch==2.13.0 > build/deepbet-constraints.txt
    build/deepbet-venv/bin/pip install torch==2.13.0
    build/deepbet-venv/bin/pip install --no-deps deepbet==1.0.2
    build/deepbet-venv/bin/pip install -c build/deepbet-constraints.txt numpy nibabel pandas tqdm fill_voids connected-components-3d
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from real_accuracy import isbi_raters  # the raters' masks on the FLAIR grid, one way for every benchmark

from mslesion.io.atomic import write_json_atomic, write_text_atomic
from mslesion.preprocess.orient import reorient_canonical
from mslesion.preprocess.raw import BrainExtraction, _brain, _mni_registration
from mslesion.space.sitkio import to_sitk

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MSLESION_SHARED_DATA", ROOT.parent / "shared" / "data")).resolve()
RESULTS = ROOT / "benchmarks" / "results"
DEEPBET_PYTHON = Path(os.environ.get("MSLESION_DEEPBET_PYTHON", ROOT / "build" / "deepbet-venv" / "bin" / "python"))
DEEPBET_THREADS = 2
DEEPBET_NOTE = ("deepbet (PyPI `deepbet` 1.0.2, MIT licence, weights inside its wheel as TorchScript, run in a separate venv, "
                "never in the product) takes the raw T1W, not the FLAIR: its mask is carried onto the raw FLAIR grid by the "
                "database's T1W-to-FLAIR transform and then scored like the others; patient03 study1 has no T1W and the ISBI "
                "subject has no T1 here (n/a). Its seconds: model loading and deepbet's own run at 2 threads, measured while "
                "the 2-core machine was shared (1-minute load average {load} at the end of each scan; the hdbet and "
                "template seconds were measured in an earlier run, load not recorded).")


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


def dice_in_common_space(mask: np.ndarray, flair: Path, transform: Path, reference: Path, figure_path: Path | None = None,
                         label: str = "ours") -> float:
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
        overlay_figure(image, mapped, ref, figure_path, label)
    return round(float(2 * (mapped & ref).sum() / (mapped.sum() + ref.sum())), 4)


def overlay_figure(image: np.ndarray, ours: np.ndarray, reference: np.ndarray, path: Path, label: str = "ours") -> None:
    """4 axial slices (array axis 0, SimpleITK order) of `image`: our mask (`label`) red, the reference green."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    slices = np.flatnonzero((ours | reference).any(axis=(1, 2)))
    fig, axes = plt.subplots(1, 4, figsize=(14, 4))
    for ax, k in zip(axes, np.linspace(slices[0] + 2, slices[-1] - 2, 4).astype(int)):
        ax.imshow(image[k], cmap="gray")
        ax.contour(reference[k], levels=[0.5], colors="lime", linewidths=0.8)
        ax.contour(ours[k], levels=[0.5], colors="red", linewidths=0.8)
        ax.set_title(f"slice {k}: {label} red, database green", fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)


def deepbet_on_flair_grid(t1: Path, flair: Path, t1_to_flair: Path) -> tuple[np.ndarray, dict]:
    """(deepbet's mask of the raw `t1`, carried onto the raw `flair` grid (i/j/k order, bool), timings).

    `t1_to_flair` maps a FLAIR point to the T1W point (shared/README.md), which is what Resample wants
    to fill the FLAIR grid from the T1 mask."""
    if not DEEPBET_PYTHON.is_file():
        raise SystemExit(f"{DEEPBET_PYTHON} is missing: set up deepbet's venv as this script's docstring says")
    env = {**os.environ, "OMP_NUM_THREADS": str(DEEPBET_THREADS), "MKL_NUM_THREADS": str(DEEPBET_THREADS)}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "mask.nii.gz"
        start = time.perf_counter()
        done = subprocess.run([str(DEEPBET_PYTHON), str(ROOT / "benchmarks" / "deepbet_side.py"), str(t1), str(out),
                               "--threads", str(DEEPBET_THREADS)], env=env, capture_output=True, text=True)
        process_seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"deepbet failed on {t1}:\n{done.stderr[-3000:]}")
        report = json.loads(done.stdout.strip().splitlines()[-1])
        t1_image = sitk.ReadImage(str(t1))
        t1_mask = sitk.ReadImage(str(out), sitk.sitkFloat32)
    if t1_mask.GetSize() != t1_image.GetSize():
        raise SystemExit(f"deepbet's mask {t1_mask.GetSize()} is not on the T1 grid {t1_image.GetSize()}")
    t1_mask.CopyInformation(t1_image)  # the T1's own geometry, as SimpleITK reads it
    flair_image = sitk.ReadImage(str(flair))
    on_flair = sitk.Resample(t1_mask, flair_image, sitk.ReadTransform(str(t1_to_flair)), sitk.sitkLinear, 0.0)
    mask = sitk.GetArrayFromImage(on_flair).transpose(2, 1, 0) > 0.5
    return mask, {"seconds": round(report["seconds"], 1), "seconds_process": round(process_seconds, 1),
                  "t1_brain_ml": report["brain_ml"]}


def deepbet_lesjak() -> dict:
    """deepbet's rows: each raw Lesjak visit with a T1W, scored on its FLAIR like the other methods."""
    rows = []
    for patient in ("patient01", "patient03"):
        folder = SHARED / "lesjak-longitudinal" / patient
        for study in ("study1", "study2"):
            t1, flair = folder / f"{study}_T1W.nii.gz", folder / f"{study}_FLAIR.nii.gz"
            if not t1.is_file():
                rows.append({"scan": f"{patient}/{study}", "dice": None, "seconds": None, "note": "no T1W"})
                print("deepbet", rows[-1], flush=True)
                continue
            mask, times = deepbet_on_flair_grid(t1, flair, folder / f"{study}_T1W_intrastudy_to_FLAIR.txt")
            figure_path = RESULTS / f"brain_extraction_lesjak_{patient}_{study}_deepbet.png"
            dice = dice_in_common_space(mask, flair, folder / f"{study}_FLAIR_to_common_space.txt", folder / "brainmask.nii.gz", figure_path,
                                        "deepbet (T1W)")
            rows.append({"scan": f"{patient}/{study}", "dice": dice, **times, "load_average": round(os.getloadavg()[0], 1)})
            print("deepbet", rows[-1], flush=True)
    return {"input": "T1W", "package": "deepbet 1.0.2", "licence": "MIT", "threads": DEEPBET_THREADS, "lesjak": rows, "isbi": None}


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
    for name in args.methods:
        if name == "deepbet":
            result["deepbet"] = deepbet_lesjak()
            continue
        method = BrainExtraction.parse(name)
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
        dices = ", ".join("n/a (no T1W)" if x["dice"] is None else f"{x['dice']:.3f}" for x in r["lesjak"])
        seconds = np.median([x["seconds"] for x in r["lesjak"] if x["seconds"] is not None])
        i = r["isbi"]
        isbi_cells = "n/a (no T1) | n/a" if i is None else f"{i['brain_ml']} | {i['mask1_lesion_voxels_inside']} / {i['mask2_lesion_voxels_inside']}"
        lines.append(f"| {method} ({r['input']} in) | {dices} | {seconds:.0f} | {isbi_cells} |" if "input" in r
                     else f"| {method} | {dices} | {seconds:.0f} | {isbi_cells} |")
    lines += ["", "Lesjak scans in order: patient01 study1, patient01 study2, patient03 study1, patient03 study2."]
    if "deepbet" in result:
        loads = ", ".join(str(x["load_average"]) for x in result["deepbet"]["lesjak"] if "load_average" in x) or "not recorded"
        lines += ["", DEEPBET_NOTE.format(load=loads)]
    if segment_rows:
        lines += ["", "## `segment` on the raw ISBI FLAIR (another scanner): Dice against each rater", "",
                  "| model | brain extraction | Dice rater 1 | Dice rater 2 | lesion mL | s end to end |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['model']} | {r['brain_extraction']} | {r['dice_rater1']} | {r['dice_rater2']} | {r['lesion_ml']} | {r['seconds']} |"
                  for r in segment_rows]
    write_text_atomic(RESULTS / "brain_extraction.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
