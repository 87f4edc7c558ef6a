"""Draw-and-Erase pairs from the real visit-1 scans, leave-one-patient-out (issue 15); writes
benchmarks/results/draw_erase_lopo.{md,json}.

Does a new-lesion network trained on pairs made from the very scanner and protocol of the real
pairs beat the untrained default (`grown-subtraction`)? For each Lesjak longitudinal patient:
1. its raw study-1 FLAIR is preprocessed onto the MNI grid (`mslesion preprocess`) and segmented by
   the shipped single-visit model (`mslesion segment`): the database has no single-visit masks, so
   the model's lesions stand in for the case's own lesions (the ones Draw-and-Erase may erase);
2. `synth.draw_erase.write_draw_erase_pairs` makes N_PAIRS pairs of it (real lesion shapes of the 29
   lesjak-mni-masks drawn into its white matter, some of its own lesions erased).
Fold "train patient01 -> test patient03" trains the shipped new-lesion recipe (configs/new_lesions.yaml:
early-fusion U-Net, 32^3 patches, its 20-minute budget) on patient01's pairs plus Draw-and-Erase pairs of
the two lesjak-mni cases, and the reverse; each fold model then runs as `mslesion new-lesions --model
RUN/model` on the held-out raw pair, scored as change_lopo.py scores the default.

    MSLESION_SHARED_DATA=../shared/data .venv/bin/python benchmarks/draw_erase_lopo.py [--minutes 20]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import change_lopo as cl  # noqa: E402 - the benchmark next door: its patients, data, end-to-end scoring

from mslesion.io.atomic import write_json_atomic, write_text_atomic  # noqa: E402

CACHE = cl.ROOT / "build" / "draw_erase_lopo"
RUNS = cl.ROOT / "runs" / "draw_erase_lopo"
MSLESION = str(Path(sys.executable).with_name("mslesion"))
N_PAIRS = 16
MNI_CASES = ("patient07", "patient19")  # lesjak-mni: real masks, never the longitudinal patients


def _run(*args: str) -> None:
    subprocess.run([MSLESION, *args], check=True, stdout=subprocess.DEVNULL)


def visit1_case(patient: str) -> Path:
    """patient's study-1 FLAIR on the MNI grid with the shipped model's lesions as its mask (a case folder)."""
    case = CACHE / "cases" / patient
    if (case / "lesion.nii.gz").is_file():
        return case
    raw = cl.SHARED / "lesjak-longitudinal" / patient / "study1_FLAIR.nii.gz"
    pre, seg = CACHE / "preprocessed" / patient, CACHE / "segmented" / patient
    _run("preprocess", "--flair", str(raw), "--out", str(pre))
    _run("segment", "--flair", str(pre / "FLAIR.nii.gz"), "--out", str(seg), "--preprocess", "no")
    case.mkdir(parents=True, exist_ok=True)
    shutil.copy(pre / "FLAIR.nii.gz", case / "FLAIR.nii.gz")
    shutil.copy(pre / "brain_mask.nii.gz", case / "brain.nii.gz")
    shutil.copy(seg / "lesion_mask.nii.gz", case / "lesion.nii.gz")
    return case


def pairs(case: Path, seed: int) -> Path:
    """N_PAIRS Draw-and-Erase pairs of one case folder (FLAIR only: patient03 has no study-1 T1)."""
    from mslesion.synth.draw_erase import write_draw_erase_pairs

    out = CACHE / "pairs" / case.name
    if not (out / "manifest.csv").is_file():
        write_draw_erase_pairs(case, cl.SHARED / "lesjak-mni-masks", out, n=N_PAIRS, seed=seed, contrasts=("FLAIR",))
    return out


def train(fold: str, datasets: list[Path], minutes: float) -> Path:
    """The shipped new-lesion recipe on `datasets`, `minutes` long (resumable); its model folder."""
    config = yaml.safe_load((cl.ROOT / "configs" / "new_lesions.yaml").read_text())
    config["data"]["datasets"] = [str(d) for d in datasets]
    config["data"]["dataset_weights"] = [0.5] + [0.5 / (len(datasets) - 1)] * (len(datasets) - 1)  # the fold's own patient first
    config["train"]["time_budget_minutes"] = minutes
    path = CACHE / "configs" / f"{fold}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    run = RUNS / fold
    if not (run / "model" / "model.json").is_file():
        _run("train", "--config", str(path), "--out", str(run), *(["--resume"] if run.is_dir() else []))
    return run / "model"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="training budget per fold (the shipped recipe's)")
    args = parser.parse_args()
    own = {p: pairs(visit1_case(p), seed=i + 1) for i, p in enumerate(cl.PATIENTS)}
    mni = [pairs(cl.SHARED / "lesjak-mni" / c, seed=10 + i) for i, c in enumerate(MNI_CASES)]
    result: dict = {"folds": {}, "n_pairs": N_PAIRS, "minutes": args.minutes}
    for test in cl.PATIENTS:
        tune = next(p for p in cl.PATIENTS if p != test)
        fold = f"train-{tune}_test-{test}"
        model = train(fold, [own[tune], *mni], args.minutes)
        card = json.loads((model / "model.json").read_text())
        row = {k: v for k, v in cl.end_to_end(test, str(model), name=f"draw-erase-{fold}").items() if k != "classes"}
        result["folds"][fold] = {**row, "threshold": card.get("threshold"), "steps": card.get("training", {}).get("steps")}
    default = json.loads((cl.RESULTS / "change_lopo.json").read_text()).get("end_to_end", {}).get("grown-subtraction", {})
    result["grown_subtraction"] = default
    write_json_atomic(cl.RESULTS / "draw_erase_lopo.json", result)
    lines = ["# A new-lesion network trained on Draw-and-Erase pairs of the real visit-1 scans, leave-one-patient-out", "",
             f"Written by `benchmarks/draw_erase_lopo.py --minutes {args.minutes:g}`. {N_PAIRS} pairs per source case; the fold's own "
             "patient's pairs are half of each batch, the two lesjak-mni cases' pairs the other half. Scored as "
             "`change_lopo.md` scores the default: the held-out raw pair through `mslesion new-lesions --model RUN/model`, its mask in "
             "the database's common space against the unsigned change mask.", "",
             "| model | held-out patient | steps | threshold | Dice | lesion F1 (MSSEG-2) | lesion F1 (ISBI) | sensitivity | PPV | predicted | s / pair |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for fold, r in result["folds"].items():
        test = fold.split("_test-")[1]
        lines.append(f"| Draw-and-Erase ({fold}) | {test} | {r['steps']} | {r['threshold']} | {r['dice']:.3f} | {r['f1']:.3f} | "
                     f"{r['f1_isbi']:.3f} | {r['sensitivity']:.3f} | {r['ppv']:.3f} | {r['predicted']} | {r['seconds']} |")
    for test, r in default.items():
        lines.append(f"| `grown-subtraction` (default, untrained) | {test} | | | {r['dice']:.3f} | {r['f1']:.3f} | {r['f1_isbi']:.3f} | "
                     f"{r['sensitivity']:.3f} | {r['ppv']:.3f} | {r['predicted']} | {r['seconds']} |")
    write_text_atomic(cl.RESULTS / "draw_erase_lopo.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
