"""Choose the default model's recipe on real scans (issue 13); write benchmarks/results/real_accuracy.{md,json}.

For every recipe (a training YAML on the real Lesjak cases, or an ensemble of recipes: a YAML
holding only `ensemble: [configs/real/A.yaml, ...]`, whose fold models are the members' fold
models joined by `mslesion ensemble`):
1. leave-one-out: train with patient19 and test on patient07, and the reverse
   (`mslesion train`, resumable: a fold without its `done.json` is resumed);
2. the lesion probability of each held-out case, FLAIR + T1 and FLAIR alone (`segment`, with the
   recipe's test-time flips, its infer.flips: what the shipped card then asks `segment` to run);
3. postprocessing chosen on those leave-one-out maps, never on a test case alone: the
   threshold and minimum lesion size that maximise the mean of Dice and MSSEG-2 lesion F1
   over both folds and both input sets (nnU-Net chooses its postprocessing the same way,
   on its cross-validation predictions);
4. the raw ISBI 2015 FLAIR (another scanner, never trained on) through `segment` with the
   fold model trained on patient19 and that postprocessing, scored against each rater on
   the native FLAIR grid.

`--ship RECIPE` then trains RECIPE on both real cases (runs/real/RECIPE/ship), writes the chosen
postprocessing into its card, scores it on ISBI and installs it as the shipped `default`.

    MSLESION_SHARED_DATA=../shared/data .venv/bin/python benchmarks/real_accuracy.py \
        configs/real/baseline.yaml configs/real/carvemix.yaml configs/real/scanner.yaml [--ship best]

A recipe given to `--ship` alone (no recipes to evaluate) takes its recorded leave-one-out result
(real_accuracy.json: its postprocessing and flips) and only trains and installs the shipped model:
`make default-model` (about an hour on 2 cores for a 4000-step recipe).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from mslesion.evaluate.case_metrics import evaluate_case
from mslesion.evaluate.lesion import msseg_lesion_detection
from mslesion.evaluate.voxel import dice
from mslesion.io.atomic import write_json_atomic, write_text_atomic
from mslesion.io.volume import load_volume
from mslesion.models.store import combine_models
from mslesion.postprocess.lesions import binarise
from mslesion.train.config import load_config

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MSLESION_SHARED_DATA", ROOT.parent / "shared" / "data")).resolve()
RUNS = ROOT / "runs" / "real"
CACHE = ROOT / "build" / "real_accuracy"
RESULTS = ROOT / "benchmarks" / "results"
MSLESION = str(Path(sys.executable).with_name("mslesion"))

CASES = ("patient07", "patient19")
FLIPS_BEFORE_RECORDED = 2  # rows and cached maps made before flips were recorded: segment's default then
FOLDS = {"train-p19_test-p07": "patient07", "train-p07_test-p19": "patient19"}  # fold -> held-out case
INPUTS = {"FLAIR+T1": ("FLAIR", "T1"), "FLAIR": ("FLAIR",)}
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
MIN_SIZES_MM3 = (0.0, 5.0, 10.0, 20.0, 30.0, 50.0)
MIN_MEAN_PROBABILITIES = (0.0, 0.6, 0.7, 0.8)  # lesion-level filter: a component's mean probability


def crop_to_content(prob: np.ndarray, ref: np.ndarray, margin: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """`prob` and `ref` cut to the box around every voxel either could mark (prob above the lowest
    threshold, or reference), plus a margin: the same components and scores, 3x less to scan."""
    where = np.argwhere((prob > min(THRESHOLDS)) | ref)
    if not len(where):
        return prob, ref
    lo, hi = np.maximum(where.min(0) - margin, 0), where.max(0) + 1 + margin
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    return prob[box], ref[box]


def train(recipe: Path, out: Path, exclude: list[str]) -> float:
    """Train `recipe` with `exclude` held out (resuming an unfinished run); minutes of training epochs."""
    if not (out / "done.json").is_file():
        cfg = yaml.safe_load(recipe.read_text())
        cfg["data"]["exclude"] = exclude
        out.mkdir(parents=True, exist_ok=True)
        fold_cfg = out.parent / f"{out.name}.yaml"
        fold_cfg.write_text(yaml.safe_dump(cfg, sort_keys=False))
        command = [MSLESION, "train", "--config", str(fold_cfg), "--out", str(out)]
        if (out / "checkpoint" / "state.json").is_file():
            command.append("--resume")
        print(" ".join(command), flush=True)
        subprocess.run(command, check=True, env={**os.environ, "MSLESION_SHARED_DATA": str(SHARED)})
        write_json_atomic(out / "done.json", {"recipe": str(recipe.relative_to(ROOT)), "exclude": exclude})
    return round(sum(float(row["seconds"] or 0) for row in log_rows(out)) / 60, 1)


def ensemble_members(recipe: Path) -> list[Path] | None:
    """The member recipes of an ensemble recipe (a YAML holding only `ensemble: [recipe, ...]`), else None."""
    cfg = yaml.safe_load(recipe.read_text())
    return [ROOT / member for member in cfg["ensemble"]] if "ensemble" in cfg else None


def recipe_flips(recipe: Path) -> int:
    """The test-time flips a recipe's models run with: its infer.flips (an ensemble: its first member's)."""
    members = ensemble_members(recipe)
    return load_config(members[0] if members else recipe).infer.flips


def fit(recipe: Path, out: Path, exclude: list[str]) -> tuple[float, int]:
    """Train `recipe` into `out`; for an ensemble recipe, train each member into its own run of the same
    name (runs/real/MEMBER/FOLD, shared with that recipe's own evaluation) and join them into out/model.
    (minutes of training, optimiser steps), summed over members."""
    members = ensemble_members(recipe)
    if members is None:
        return train(recipe, out, exclude), steps(out)
    runs = [RUNS / member.stem / out.name for member in members]
    minutes = sum(train(member, run, exclude) for member, run in zip(members, runs))
    if not (out / "model" / "model.json").is_file():
        combine_models([run / "model" for run in runs], out / "model")
    return round(minutes, 1), sum(steps(run) for run in runs)


def log_rows(run: Path) -> list[dict[str, str]]:
    """The rows of a training run's log.csv (one per epoch)."""
    with open(run / "log.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def predict(model: Path, images: dict[str, Path], out: Path, brain: Path | None = None, flips: int = 2, overlap: float = 0.25) -> float:
    """`segment` once into `out` (kept, so scoring can be redone, unless made with other flips or
    overlap); seconds."""
    if (out / "lesion_prob.nii.gz").is_file():
        made = json.loads((out / "seconds.json").read_text())
        if (made.get("flips", FLIPS_BEFORE_RECORDED), made.get("overlap", 0.25)) == (flips, overlap):
            return made["seconds"]
    from mslesion.pipeline import segment

    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as tmp:
        start = time.perf_counter()
        segment(images, Path(tmp), model=model, brain_mask=brain, flips=flips, overlap=overlap)
        seconds = round(time.perf_counter() - start, 1)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(tmp, out)
    write_json_atomic(out / "seconds.json", {"seconds": seconds, "flips": flips, "overlap": overlap})
    return seconds


def choose_postprocessing(maps: list[tuple[np.ndarray, np.ndarray, tuple]]) -> tuple[dict, list[dict]]:
    """The (threshold, min size, min mean probability) maximising mean (Dice + MSSEG-2 F1) / 2
    over `maps`; and the whole grid."""
    grid = []
    cropped = [(*crop_to_content(prob, ref), spacing) for prob, ref, spacing in maps]
    for t, m, p in itertools.product(THRESHOLDS, MIN_SIZES_MM3, MIN_MEAN_PROBABILITIES):
        if p and p <= t:
            continue  # every voxel of a component is above t, so its mean is too: same as no filter
        scores = []
        for prob, ref, spacing in cropped:
            mask = binarise(prob, t, m, float(np.prod(spacing)), min_mean_probability=p)
            scores.append((dice(mask, ref), msseg_lesion_detection(mask, ref, spacing).f1))
        d, f = np.mean(scores, axis=0)
        grid.append({"threshold": t, "min_lesion_mm3": m, "min_mean_probability": p, "dice": round(float(d), 4),
                     "f1": round(float(f), 4), "score": round(float(d + f) / 2, 4)})
    return max(grid, key=lambda g: g["score"]), grid


def filter_gains(grid: list[dict]) -> list[dict]:
    """What each postprocessing filter buys on leave-one-out: the best grid point with the
    threshold alone, then adding the minimum size, then the mean-probability filter."""
    steps = (("threshold only", lambda g: g["min_lesion_mm3"] == 0 and g["min_mean_probability"] == 0),
             ("+ minimum size", lambda g: g["min_mean_probability"] == 0),
             ("+ mean probability", lambda g: True))
    return [{"filters": name, **max((g for g in grid if keep(g)), key=lambda g: g["score"])} for name, keep in steps]


def score(prob: np.ndarray, ref: np.ndarray, spacing: tuple, post: dict) -> dict:
    """The table's metrics of `prob` binarised with `post` against `ref`."""
    mask = binarise(prob, post["threshold"], post["min_lesion_mm3"], float(np.prod(spacing)),
                    min_mean_probability=post.get("min_mean_probability", 0.0))
    m = evaluate_case(mask, ref, spacing)
    keys = ("dice", "msseg_lesion_f1", "msseg_lesion_sensitivity", "msseg_lesion_ppv", "msseg_n_ref", "msseg_n_pred", "vol_pred_ml", "vol_ref_ml")
    return {k: (round(float(m[k]), 4) if isinstance(m[k], float) else int(m[k])) for k in keys}


def isbi_raters() -> tuple[Path, list[np.ndarray]]:
    """The raw ISBI FLAIR and each rater's mask on its grid (linear interpolation by world coordinates, > 0.5)."""
    import nibabel as nib
    from nibabel.processing import resample_from_to

    folder = SHARED / "isbi-raw" / "training01"
    flair = nib.load(folder / "FLAIR.nii.gz")
    masks = []
    for name in ("mask1.nii.gz", "mask2.nii.gz"):
        rater = nib.load(folder / name)
        rater = nib.Nifti1Image((np.asarray(rater.dataobj) > 0).astype(np.float32), rater.affine)
        masks.append(np.asarray(resample_from_to(rater, flair, order=1).dataobj) > 0.5)
    return folder / "FLAIR.nii.gz", masks


def isbi(model: Path, post: dict, out: Path, flips: int = 2, overlap: float = 0.25) -> dict:
    """`segment` on the raw ISBI FLAIR with `post` applied to its probabilities; Dice etc. per rater."""
    flair, raters = isbi_raters()
    seconds = predict(model, {"FLAIR": flair}, out, flips=flips, overlap=overlap)
    prob = load_volume(out / "lesion_prob.nii.gz")
    brain = load_volume(out / "brain_mask.nii.gz").array > 0
    row: dict = {"seconds": seconds, "brain_ml": round(float(brain.sum() * np.prod(prob.spacing)) / 1000, 1)}
    for i, ref in enumerate(raters, 1):
        row[f"rater{i}"] = score(prob.array, ref, prob.spacing, post)
        row[f"rater{i}"]["lesion_voxels_in_brain"] = round(float((ref & brain).sum() / max(ref.sum(), 1)), 4)
    return row


def evaluate_recipe(recipe: Path) -> dict:
    """Leave-one-out training, prediction, postprocessing choice and ISBI for one recipe."""
    name, flips = recipe.stem, recipe_flips(recipe)
    result: dict = {"recipe": str(recipe.relative_to(ROOT)), "flips": flips, "folds": {}}
    maps, where = [], []
    for fold, test_case in FOLDS.items():
        run = RUNS / name / fold
        minutes, n_steps = fit(recipe, run, [test_case])
        result["folds"][fold] = {"train_minutes": minutes, "steps": n_steps}
        case = SHARED / "lesjak-mni" / test_case
        ref = load_volume(case / "lesion.nii.gz")
        for inputs, contrasts in INPUTS.items():
            out = CACHE / name / fold / inputs
            seconds = predict(run / "model", {c: case / f"{c}.nii.gz" for c in contrasts}, out, flips=flips)
            prob = load_volume(out / "lesion_prob.nii.gz")
            maps.append((prob.array, ref.array > 0, prob.spacing))
            where.append((fold, inputs, seconds))
    post, grid = choose_postprocessing(maps)
    result["postprocessing"] = post
    result["postprocessing_grid"] = grid
    result["filter_gains"] = filter_gains(grid)
    for (fold, inputs, seconds), (prob, ref, spacing) in zip(where, maps):
        result["folds"][fold][inputs] = {**score(prob, ref, spacing, post), "seconds": seconds}
    result["isbi"] = isbi(RUNS / name / "train-p19_test-p07" / "model", post, CACHE / name / "isbi", flips=flips)
    return result


def ship(result: dict) -> dict:
    """Train the recipe of `result` on both real cases, store its postprocessing and measured numbers
    in the card, score it on ISBI, install it as the shipped `default`."""
    recipe, post, flips = ROOT / result["recipe"], result["postprocessing"], result.get("flips", FLIPS_BEFORE_RECORDED)
    run = RUNS / recipe.stem / "ship"
    minutes, n_steps = fit(recipe, run, [])
    row = {"recipe": result["recipe"], "train_minutes": minutes, "steps": n_steps, "postprocessing": post, "flips": flips,
           "isbi": isbi(run / "model", post, CACHE / recipe.stem / "ship" / "isbi", flips=flips)}
    loo = {inputs: {k: float(np.mean([f[inputs][k] for f in result["folds"].values()])) for k in ("dice", "msseg_lesion_f1")}
           for inputs in INPUTS}
    i = row["isbi"]
    card_path = run / "model" / "model.json"
    card = json.loads(card_path.read_text())
    card["threshold"], card["min_lesion_mm3"] = post["threshold"], post["min_lesion_mm3"]
    card["min_mean_probability"], card["test_time_flips"] = post["min_mean_probability"], flips
    card["training"]["recipe"] = f"{result['recipe']} (benchmarks/real_accuracy.py --ship), run {run.relative_to(ROOT)}"
    card["training"]["caveat"] = (
        f"trained on the two real Lesjak scans only; measured by leave-one-out on them (benchmarks/results/real_accuracy.md): "
        f"Dice {loo['FLAIR+T1']['dice']:.2f} / lesion F1 {loo['FLAIR+T1']['msseg_lesion_f1']:.2f} with FLAIR+T1, "
        f"{loo['FLAIR']['dice']:.2f} / {loo['FLAIR']['msseg_lesion_f1']:.2f} with FLAIR alone; on a raw FLAIR of an unseen "
        f"scanner (ISBI 2015 training01) Dice {i['rater1']['dice']:.2f} / {i['rater2']['dice']:.2f} against its two raters. "
        "Check every result by eye.")
    write_json_atomic(card_path, card)
    target = ROOT / "src" / "mslesion" / "data" / "models" / "default"
    for name in ("model.safetensors", "model.json"):
        shutil.copy2(run / "model" / name, target / name)
    return row


def steps(run: Path) -> int:
    """Optimiser steps of a finished run (its log's last row)."""
    rows = log_rows(run)
    return int(rows[-1]["step"]) if rows else 0


def post_text(post: dict) -> str:
    """`t 0.5, min 5 mm3[, mean >= 0.7]`: a postprocessing choice in words."""
    text = f"t {post['threshold']}, min {post['min_lesion_mm3']:g} mm3"
    return text + (f", mean p >= {post['min_mean_probability']}" if post.get("min_mean_probability") else "")


def recipe_line(r: dict) -> str:
    """One table row: per input set, leave-one-out means over the two folds (and each fold), then ISBI."""
    folds = list(r["folds"].values())
    cells = [f"`{Path(r['recipe']).stem}`", f"{sum(f['train_minutes'] for f in folds):.0f} ({' / '.join(str(f['steps']) for f in folds)} steps)",
             f"{r.get('flips', FLIPS_BEFORE_RECORDED)} flips; {post_text(r['postprocessing'])}"]
    for inputs in INPUTS:
        rows = [f[inputs] for f in folds]
        for key in ("dice", "msseg_lesion_f1", "msseg_lesion_sensitivity", "msseg_lesion_ppv"):
            each = " / ".join(f"{x[key]:.2f}" for x in rows)
            cells.append(f"{np.mean([x[key] for x in rows]):.2f} ({each})")
    i = r["isbi"]
    cells.append(f"{i['rater1']['dice']:.2f} / {i['rater2']['dice']:.2f}")
    cells.append(f"{selection_score(r):.3f}")
    return "| " + " | ".join(cells) + " |"


# Tried, measured and dropped: kept here so the record of what was tried is written with the table.
HISTORY = (
    "`augmented` (nnU-Net's and DeepLesionBrain's augmentations on the baseline, 20-minute fp32 budget: 600 / 1000 steps, "
    "the cosine stopped early): leave-one-out Dice 0.05, F1 0.17 with threshold and size alone; ISBI 0.45 / 0.47. "
    "Superseded by `carvemix` (the same augmentations, CarveMix, a fixed 2000 steps in bf16).",
    "A location filter for lesions (mean/peak MNI white-matter probability from nilearn's template; lesion frequency of the "
    "28 other Lesjak masks, smoothed): the false lesions of the leave-one-out maps lie where the white-matter prior is as high "
    "as for true ones (median peak 0.996 against 0.96), so it separated nothing and was not added.",
    "Normalising by the white-matter peak instead of the brain z-score (the leave-one-out over-calling looked like a "
    "calibration gap: patient19's atrophy widens its brain histogram): the patient19 fold model, fed patient07 mapped "
    "onto patient19's white-matter-referenced scale, gave the same false lesions (Dice 0.125 against 0.121 unmapped, at t 0.8; "
    "throwaway script); not trained.",
    "`ensemble` (recipes `scanner` and `scanner-seed1` averaged, `mslesion ensemble`): no better than either member "
    "(leave-one-out Dice 0.06, F1 0.25; ISBI 0.50 / 0.54 against 0.54 / 0.56 and 0.55 / 0.57 for the members) and 30-37 s "
    "per 1 mm brain, over the 30 s budget. The two seeds of `scanner` differ by 0.004 in selection score: differences of "
    "that size between recipes are noise.",
    "`context` (recipe `scanner` with 96^3 patches at batch 1: more anatomy around each bright spot; 1.36 s per step, "
    "45 min per fold on 2 cores): only the fold trained on patient19 finished in its session. On patient07 it called 50 mL "
    "of lesion against 1.3 mL (FLAIR+T1 Dice 0.03, lesion F1 0.27, against 0.14 / 0.38 for `scanner`'s same fold), and the "
    "raw ISBI FLAIR got Dice 0.47 / 0.50 (`scanner`'s fold: 0.54 / 0.56), with `scanner`'s postprocessing (throwaway "
    "scoring through this script's functions). Worse on both: the second fold was not trained.",
    "Run-to-run spread: `scanner` retrained (both folds) at commit 2ac8dd8 (same config and seed; the code around training had "
    "changed since) scored 0.305 against the recorded 0.353: leave-one-out Dice 0.05 / F1 0.24, ISBI 0.46 / 0.49. Most of the ISBI "
    "gap is the postprocessing its own leave-one-out chose (mean p >= 0.7 instead of 0.8): with the recorded one its ISBI Dice is "
    "0.53 / 0.56 (benchmarks/results/inference_settings_scanner.md, whose fold models these are). Differences between recipes below about "
    "0.05 in selection score are within one recipe's spread; the recorded row is kept.",
    "Other component statistics for the lesion filter, which the mean probability can fail on a merged confluent lesion "
    "(inference_settings_scanner.md): the median, 75th and 90th percentile and the mean of the upper half of a component's "
    "probabilities, each with threshold, size and cutoff (0.6-0.9) chosen on leave-one-out of `scanner`'s fold maps (2 flips): "
    "ISBI Dice 0.40-0.45 / 0.44-0.48 against 0.53 / 0.56 for the mean; with 4 flips and overlap 0.5 0.42-0.50 / 0.46-0.53. "
    "Allowed a cutoff of 0.9, leave-one-out picks it for the mean too and ISBI falls to 0: the grid stops at 0.8 (throwaway "
    "script, 2026-12-01).",
    "Contrast to the surrounding tissue as a lesion filter (mean FLAIR of a component minus the median of a 1-3 voxel shell "
    "around it, in units of the brain's interquartile range; shipped postprocessing): on the fold trained on patient19, "
    "FLAIR alone on patient07, 13 true components median 1.25 (10-90%: 1.06-1.80) and 17 false ones 1.15 (0.90-1.31). They "
    "overlap; not added (throwaway script).",
    "Registration to MNI without its scale (the nearest rotation to the affine, about the brain's centre), so raw scans keep "
    "their natural size as the publisher's lesjak-mni training images do (brains of 1.1 L; the affine puts the ISBI scan at "
    "scale 0.95 and patient01's study 1 at 0.80, 2.5 L on the grid): the shipped model on the raw ISBI FLAIR gets Dice 0.500 / "
    "0.519 and lesion F1 0.212 / 0.175 against 0.510 / 0.524 and 0.312 / 0.267 with the affine; not changed (throwaway script).",
    "`implant` (recipe `scanner` plus other patients' lesions drawn into 40% of the patches: in a patch, the lesions one of the "
    "other Lesjak masks has in that region, each with the contrast of a real lesion of the training case; train.lesion_implant). "
    "Why: `scanner`'s fold trained on patient07 gives patient19's 50 mL of confluent periventricular lesions a probability of "
    "about 0 (FLAIR+T1 Dice 0.03, where a plain FLAIR threshold, 1.5 interquartile ranges above the brain median, reaches 0.54). With it that "
    "fold finds them (Dice 0.23 FLAIR+T1, 0.30 FLAIR alone), but the fold trained on patient19 over-calls on patient07 (0.05 / "
    "0.06 against 0.14 / 0.11) and on the raw ISBI FLAIR (Dice 0.39 / 0.43, 59 mL called against the raters' 18 / 22 mL; "
    "`scanner`'s fold: 0.54 / 0.56, 32 mL). Selection score 0.294 against 0.353: not shipped.",
    "`implant-low` (the same in 15% of the patches): ISBI as `scanner` (0.53 / 0.56) and a slightly better leave-one-out "
    "lesion F1 (0.27 against 0.24, PPV 0.44 against 0.36), but patient19's confluent lesions are missed again (Dice 0.04): "
    "selection score 0.351 against 0.353, within one recipe's spread; not shipped.",
    "`implant-poor` (`implant` at 40% times a per-case share, augment.implant_scaling: lesion_poor: 1 minus the case's lesion "
    "load over the donor masks' median, 13.9-14.9 mL: patient07 0.91, patient19 0). Why: only the fold trained on patient07 "
    "needed implants. Its fold trained on patient19 (no implants) scores as `scanner`'s (same maps to two decimals: with "
    "`scanner`'s postprocessing patient07 Dice 0.09 / F1 0.34, ISBI 0.532 / 0.559), and its fold trained on patient07 finds "
    "patient19's confluent lesions (Dice 0.21 FLAIR+T1, 0.28 FLAIR alone, at mean p >= 0.6). But one postprocessing serves "
    "both folds: leave-one-out then picks mean p >= 0.6 for the implanted fold's less confident lesions, and at 0.6 the "
    "patient19 fold over-calls on patient07 (Dice 0.06) and on ISBI (0.41 / 0.45). Selection score 0.307 (0.333 with "
    "`scanner`'s postprocessing, against 0.340 for `scanner`'s cached fold maps scored the same way): not shipped "
    "(throwaway scoring of the cached maps with fixed postprocessing, 2026-12-01).",
    "Splitting a component that fails the mean-probability filter instead of dropping it whole (re-thresholded 0.1 or 0.2 "
    "higher, up to 0.95, each piece judged by the same size and mean; aimed at the confluent ISBI component whose mean "
    "sits at 0.80, benchmarks/results/inference_settings_scanner.md), postprocessing chosen on leave-one-out of `scanner`'s fold "
    "maps: with 4 flips and overlap 0.5 it no longer collapses on ISBI (Dice 0.42-0.45 / 0.46-0.49 against 0 for the plain "
    "filter), but leave-one-out falls (F1 0.20-0.21 against 0.22-0.23 with the same maps), as the pieces of false "
    "components come back too, and with the shipped 2 flips ISBI falls to 0.41-0.43 / 0.45-0.46 against 0.46 / 0.49. "
    "Not added (throwaway script, 2026-12-01).",
    "`scanner-long` (`scanner` for 4000 steps, the cosine over all of them) with 2 test-time flips, its row until 2026-12-02: "
    "postprocessing t 0.3, min 5 mm3, mean p >= 0.8; leave-one-out FLAIR+T1 Dice 0.06 / F1 0.26, FLAIR alone 0.09 / 0.30; ISBI "
    "0.54 / 0.57; selection score 0.367 against `scanner`'s 0.353, within one recipe's spread of about 0.05. With 4 flips (its "
    "row above, benchmarks/results/inference_settings_scanner-long.md) 0.381: shipped on 2026-12-02 with 4 flips in its card. "
    "The shipped model (trained on both cases) on ISBI: Dice 0.501 / 0.516 with 4 flips and 0.502 / 0.516 with 2, 4 and 7 "
    "lesions called (throwaway check of the flips), and 0.56 / 0.59 with 1 flip (tests/test_default_model.py): on ISBI "
    "the shipped model alone does not back the 4 flips, which were chosen on the fold models. `scanner`'s shipped model had "
    "0.512 / 0.525.",
)


def write_table(results: list[dict], shipped: dict | None) -> None:
    """benchmarks/results/real_accuracy.{json,md} from every recipe's result."""
    write_json_atomic(RESULTS / "real_accuracy.json", {"recipes": results, "shipped": shipped})
    head = ["recipe", "train min, 2 folds (steps)", "test-time flips; postprocessing (chosen on LOO)"]
    for inputs in INPUTS:
        head += [f"{inputs} Dice", f"{inputs} F1", f"{inputs} lesion sens.", f"{inputs} lesion PPV"]
    head += ["ISBI raw FLAIR Dice (rater 1 / 2)", "selection score"]
    lines = ["# Real accuracy: leave-one-out on the two Lesjak cases, ISBI raw FLAIR as an unseen scanner", "",
             "Written by `benchmarks/real_accuracy.py`. Cells: mean of the two folds (train p19 -> test p07 / train p07 -> test p19).",
             "F1, sensitivity and PPV are MSSEG-2's lesion-wise (Anima) metrics. ISBI: the fold model trained on patient19, raw FLAIR through `segment`.",
             "Selection score (how `--ship best` ranks): mean of the leave-one-out (Dice + F1) / 2 and the ISBI Dice averaged over both raters.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += [recipe_line(r) for r in results]
    lines += ["", "## What each lesion-level filter buys (leave-one-out, both folds and both input sets pooled)", "",
              "Each row: the best grid point with the filters named so far (threshold; + minimum lesion size; + minimum mean probability of a lesion).", "",
              "| recipe | filters | chosen | Dice | MSSEG-2 F1 | (Dice + F1) / 2 |", "|---|---|---|---|---|---|"]
    for r in results:
        for g in r.get("filter_gains", []):
            lines.append(f"| `{Path(r['recipe']).stem}` | {g['filters']} | {post_text(g)} | {g['dice']:.3f} | {g['f1']:.3f} | {g['score']:.3f} |")
    lines += ["", "## Tried and dropped", ""] + [f"- {h}" for h in HISTORY]
    if shipped:
        i = shipped["isbi"]
        lines += ["", f"Shipped default: `{shipped['recipe']}` trained on both real cases ({shipped['train_minutes']} min, {shipped['steps']} steps), "
                  f"{shipped.get('flips', FLIPS_BEFORE_RECORDED)} test-time flips, postprocessing {post_text(shipped['postprocessing'])}. "
                  f"ISBI raw FLAIR: Dice {i['rater1']['dice']:.3f} (rater 1) / {i['rater2']['dice']:.3f} (rater 2), "
                  f"lesion F1 {i['rater1']['msseg_lesion_f1']:.3f} / {i['rater2']['msseg_lesion_f1']:.3f}, brain {i['brain_ml']} mL, "
                  f"{i['seconds']} s end to end."]
    write_text_atomic(RESULTS / "real_accuracy.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


def selection_score(result: dict) -> float:
    """How `--ship best` ranks recipes, as issue 13 asks (leave-one-out plus the unseen scanner):
    the mean of the leave-one-out score ((Dice + lesion F1) / 2, both folds and input sets) and
    the ISBI Dice averaged over its two raters."""
    isbi_dice = (result["isbi"]["rater1"]["dice"] + result["isbi"]["rater2"]["dice"]) / 2
    return round((result["postprocessing"]["score"] + isbi_dice) / 2, 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipes", nargs="*", type=Path, help="recipes to evaluate by leave-one-out (none: --ship a recorded one)")
    parser.add_argument("--ship", help="train this recipe (a path, or `best`: see selection_score) on both real cases and install it as `default`")
    args = parser.parse_args()
    results = [evaluate_recipe(r.resolve()) for r in args.recipes]
    # Recipes measured by an earlier run and not rerun now keep their recorded rows (their runs and
    # cached maps live in runs/ and build/, which a fresh checkout lacks), so the table stays whole.
    recorded = json.loads((RESULTS / "real_accuracy.json").read_text()) if (RESULTS / "real_accuracy.json").is_file() else {}
    rerun = {r["recipe"] for r in results}
    results = [r for r in recorded.get("recipes", []) if r["recipe"] not in rerun] + results
    shipped = recorded.get("shipped")
    if args.ship:
        if args.ship == "best":
            chosen = max(results, key=selection_score)
        else:
            found = [r for r in results if Path(r["recipe"]).stem == Path(args.ship).stem]
            if not found:
                parser.error(f"{args.ship}: no leave-one-out result recorded or measured now; give it as a recipe too")
            chosen = found[0]
        shipped = ship(chosen)
    write_table(results, shipped)


if __name__ == "__main__":
    main()
