"""Change detection on the real Lesjak pairs, leave-one-patient-out (issue 15); writes benchmarks/results/change_lopo.{md,json}.

For each raw pair (`lesjak-longitudinal` patient01, patient03; study1 = baseline, study2 = follow-up
FLAIR), once (cached in build/change_lopo/<patient>.npz):
- `preprocess_pair` (N4, HD-BET, MNI registration, halfway space);
- the shipped single-visit model on each visit (flips 2) -> p(baseline), p(follow-up);
- the subtraction baseline's score on the jointly normalised pair;
each carried to the follow-up's native grid and then into the database's common space (its
study2 transform, linear), where `gt.nii.gz` marks every change (new, enlarging, shrinking, vanished).

Then, for each rule and its grid of settings, the setting chosen on one patient is scored on the
other (leave-one-patient-out); Dice and MSSEG-2 lesion F1 per held-out patient:
- `subtraction`: the untrained baseline as shipped (threshold 0.5, minimum size from the grid);
- `probability-change`: |p(follow-up) - p(baseline)| > t, minimum size (the product's rule);
- `signed`: p(follow-up) - p(baseline) > t (new and enlarging only).

    MSLESION_SHARED_DATA=../shared/data .venv/bin/python benchmarks/change_lopo.py
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from mslesion.evaluate.case_metrics import evaluate_case
from mslesion.io.atomic import write_json_atomic, write_text_atomic
from mslesion.postprocess.lesions import binarise

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MSLESION_SHARED_DATA", ROOT.parent / "shared" / "data")).resolve()
CACHE = ROOT / "build" / "change_lopo"
RESULTS = ROOT / "benchmarks" / "results"
PATIENTS = ("patient01", "patient03")
THRESHOLDS = (0.2, 0.3, 0.5, 0.7)
MIN_SIZES_MM3 = (3.0, 10.0, 20.0)


def features(patient: str) -> dict[str, np.ndarray]:
    """The maps above for one pair, in the common space (computed once, then read from the cache)."""
    path = CACHE / f"{patient}.npz"
    if path.is_file():
        return dict(np.load(path))
    import nibabel as nib
    import SimpleITK as sitk

    from mslesion.infer.sliding import predict_probability
    from mslesion.models.store import load_model, resolve_model
    from mslesion.models.subtraction import subtraction_probability
    from mslesion.preprocess.normalize import normalised_channels
    from mslesion.preprocess.pair import preprocess_pair
    from mslesion.space.priors import white_matter_prior_working_grid
    from mslesion.space.sitkio import from_sitk, to_sitk

    folder = SHARED / "lesjak-longitudinal" / patient
    start = time.perf_counter()
    net, card = load_model(resolve_model("default"))
    pair = preprocess_pair({"FLAIR": folder / "study1_FLAIR.nii.gz"}, {"FLAIR": folder / "study2_FLAIR.nii.gz"})
    maps = {}
    for visit in ("baseline", "followup"):
        x = normalised_channels({"FLAIR": pair.images[f"{visit}_FLAIR"]}, pair.brain, card.contrasts, card.normalisation)
        maps[f"p_{visit}"] = predict_probability(net, x, pair.brain, card.patch_size, overlap=0.25, flips=2)
    x = normalised_channels(pair.images, pair.brain, ["baseline_FLAIR", "followup_FLAIR"])
    maps["bl"], maps["fu"] = x[0], x[1]
    maps["sub"] = subtraction_probability(x[0], x[1], pair.brain, (1.0, 1.0, 1.0), white_matter=white_matter_prior_working_grid())
    gt = nib.load(str(folder / "gt.nii.gz"))
    common = to_sitk(np.zeros(gt.shape, np.float32), gt.affine)
    transform = sitk.ReadTransform(str(folder / "study2_FLAIR_to_common_space.txt"))  # common point -> study2 point
    study2 = nib.load(str(folder / "study2_FLAIR.nii.gz"))

    def to_common(native: np.ndarray) -> np.ndarray:
        return from_sitk(sitk.Resample(to_sitk(native.astype(np.float32), study2.affine), common, transform, sitk.sitkLinear, 0.0)).astype(np.float32)

    out = {}
    for name, array in maps.items():
        array = array.astype(np.float32)
        array[~pair.brain] = 0
        out[name] = to_common(pair.to_native(array, is_label=False))
    out["brain"] = to_common(pair.native_brain) > 0.5
    out["gt"] = np.asarray(gt.dataobj) > 0
    out["spacing"] = np.array(gt.header.get_zooms()[:3])
    out["seconds"] = np.array(time.perf_counter() - start)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **out)
    return out


RULES = {
    "subtraction": (lambda d, t: d["sub"], (0.5,)),
    "probability-change": (lambda d, t: np.abs(d["p_followup"] - d["p_baseline"]), THRESHOLDS),
    "signed": (lambda d, t: np.clip(d["p_followup"] - d["p_baseline"], 0, 1), THRESHOLDS),
}


def scores(d: dict[str, np.ndarray], rule: str, threshold: float, min_mm3: float) -> dict:
    """Dice, MSSEG-2 lesion F1, sensitivity, PPV of one rule and setting on one pair."""
    spacing = tuple(float(s) for s in d["spacing"])
    score_map = (RULES[rule][0](d, threshold) * d["brain"]).astype(np.float32)
    mask = binarise(score_map, threshold, min_mm3, float(np.prod(spacing)))
    m = evaluate_case(mask, d["gt"], spacing)
    f1 = m["msseg_lesion_f1"]
    return {"dice": round(float(m["dice"]), 4), "f1": round(float(f1), 4) if f1 == f1 else 0.0,
            "sensitivity": round(float(m["msseg_lesion_sensitivity"]), 4), "ppv": round(float(m["msseg_lesion_ppv"] or 0), 4),
            "predicted": int(m.get("msseg_n_pred", 0))}


def main() -> None:
    data = {p: features(p) for p in PATIENTS}
    result: dict = {"rules": {}}
    for rule, (_, thresholds) in RULES.items():
        grid = {(t, m): {p: scores(d, rule, t, m) for p, d in data.items()} for t in thresholds for m in MIN_SIZES_MM3}
        held_out = {}
        for test in PATIENTS:
            tune = next(p for p in PATIENTS if p != test)
            chosen = max(grid, key=lambda k: grid[k][tune]["dice"] + grid[k][tune]["f1"])
            held_out[test] = {"chosen_on": tune, "threshold": chosen[0], "min_mm3": chosen[1], **grid[chosen][test]}
        result["rules"][rule] = {"held_out": held_out, "grid": {f"t {t}, min {m:g}": v for (t, m), v in grid.items()}}
    write_json_atomic(RESULTS / "change_lopo.json", result)
    lines = ["# Change detection on the real Lesjak pairs, leave-one-patient-out", "",
             "Written by `benchmarks/change_lopo.py`. Reference: the database's change mask (new, enlarging, shrinking and vanished "
             "lesions, unsigned) in its common space. Each held-out patient is scored with the setting (threshold, minimum size) "
             "that was best ((Dice + F1) / 2) on the other patient. F1, sensitivity, PPV: MSSEG-2 lesion-wise.", "",
             "| rule | held-out patient | setting (chosen on the other) | Dice | lesion F1 | sensitivity | PPV | predicted lesions |",
             "|---|---|---|---|---|---|---|---|"]
    for rule, r in result["rules"].items():
        for test, s in r["held_out"].items():
            lines.append(f"| `{rule}` | {test} | t {s['threshold']}, min {s['min_mm3']:g} mm3 | {s['dice']:.3f} | {s['f1']:.3f} | "
                         f"{s['sensitivity']:.3f} | {s['ppv']:.3f} | {s['predicted']} |")
        mean = {k: np.mean([s[k] for s in r["held_out"].values()]) for k in ("dice", "f1")}
        lines.append(f"| `{rule}` | **mean** | | **{mean['dice']:.3f}** | **{mean['f1']:.3f}** | | | |")
    write_text_atomic(RESULTS / "change_lopo.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
