"""Measure new-lesion detection as issue 6 asks; write benchmarks/results/<name>.{json,md}.

Cases, for each method (a trained `new-lesions-unet` model and the `subtraction` baseline):
- held-out synthetic pairs (`mslesion synth --longitudinal`, a site seed no training pair
  shares), given to `mslesion new-lesions` as they are (co-registered, skull-stripped);
  reference = the pair's new-lesion mask;
- the two real Lesjak longitudinal patients, RAW scans (study1 = baseline, study2 =
  follow-up FLAIR; whole preprocessing runs); the prediction on study2's native grid is
  carried onto the database's common grid through the provided study2 transform (nearest
  neighbour) and compared with `gt.nii.gz`. That mask marks every lesion CHANGE (new,
  enlarging AND shrinking or vanished lesions), so this is a change-detection score: a
  perfect new-lesion detector misses the shrinking ones.
Metrics (MSSEG-2): lesion F1 with the Anima detection rule, Dice; on pairs with no new
lesion, the number and volume of (false-positive) predicted lesions. Seconds per pair are
the wall-clock time of `detect_new_lesions` (preprocessing included).

    MSLESION_SHARED_DATA=../shared/data .venv/bin/python benchmarks/new_lesions.py \
        --pairs build/newlesions/test_pairs --model new-lesions --model subtraction --name new_lesions
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from mslesion.evaluate.case_metrics import evaluate_case
from mslesion.io.atomic import write_json_atomic, write_text_atomic
from mslesion.io.dataset import load_dataset
from mslesion.new_lesions import detect_new_lesions

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MSLESION_SHARED_DATA", ROOT.parent / "shared" / "data"))
COLUMNS = ("msseg_lesion_f1", "dice", "msseg_lesion_sensitivity", "msseg_lesion_ppv", "n_ref_lesions", "msseg_n_pred", "msseg_pred_volume_ml")


def _score(name: str, method: str, pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...], seconds: float, kind: str) -> dict:
    metrics = evaluate_case(pred, ref, spacing)
    row = {"case": name, "method": method, "kind": kind, "ref_empty": bool(not ref.any()),
           **{k: metrics.get(k) for k in COLUMNS}, "seconds": round(seconds, 1)}
    print(json.dumps(row), flush=True)
    return row


def synthetic_rows(pairs_dir: Path, method: str, flips: int | None) -> list[dict]:
    rows = []
    for case in load_dataset(pairs_dir):
        baseline = {"FLAIR": case.images["baseline_FLAIR"].path}
        followup = {"FLAIR": case.images["followup_FLAIR"].path}
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            detect_new_lesions(baseline, followup, Path(tmp), model=method, flips=flips, preprocess="no")
            seconds = time.perf_counter() - start
            import nibabel as nib

            pred = np.asarray(nib.load(str(Path(tmp) / "new_lesion_mask.nii.gz")).dataobj) > 0
        rows.append(_score(case.case_id, method, pred, case.lesion.array > 0, case.lesion.spacing, seconds, "synthetic"))
    return rows


def real_rows(method: str, flips: int | None) -> list[dict]:
    import nibabel as nib
    import SimpleITK as sitk

    from mslesion.space.sitkio import from_sitk, to_sitk

    rows = []
    for patient in ("patient01", "patient03"):
        folder = SHARED / "lesjak-longitudinal" / patient
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            detect_new_lesions({"FLAIR": folder / "study1_FLAIR.nii.gz"}, {"FLAIR": folder / "study2_FLAIR.nii.gz"}, Path(tmp), model=method, flips=flips)
            seconds = time.perf_counter() - start
            mask = nib.load(str(Path(tmp) / "new_lesion_mask.nii.gz"))
            gt = nib.load(str(folder / "gt.nii.gz"))
            reference = to_sitk(np.zeros(gt.shape, np.uint8), gt.affine, dtype=np.uint8)
            moving = to_sitk(np.asarray(mask.dataobj).astype(np.float32), mask.affine)
            transform = sitk.ReadTransform(str(folder / "study2_FLAIR_to_common_space.txt"))  # common point -> study2 point
            pred = from_sitk(sitk.Resample(moving, reference, transform, sitk.sitkNearestNeighbor, 0.0)) > 0.5
        spacing = tuple(float(s) for s in gt.header.get_zooms()[:3])
        rows.append(_score(patient, method, pred, np.asarray(gt.dataobj) > 0, spacing, seconds, "real (change mask)"))
    return rows


def _mean(rows: list[dict], key: str) -> float:
    values = [r[key] for r in rows if isinstance(r.get(key), (int, float)) and not np.isnan(r[key])]
    return float(np.mean(values)) if values else float("nan")


def summarise(rows: list[dict]) -> dict:
    out: dict = {}
    for method in sorted({r["method"] for r in rows}):
        for kind in sorted({r["kind"] for r in rows}):
            sel = [r for r in rows if r["method"] == method and r["kind"] == kind]
            if not sel:
                continue
            with_new, stable = [r for r in sel if not r["ref_empty"]], [r for r in sel if r["ref_empty"]]
            out[f"{method} | {kind}"] = {
                "pairs": len(sel),
                "lesion_f1": _mean(with_new, "msseg_lesion_f1"),
                "dice": _mean(with_new, "dice"),
                "stable_pairs": len(stable),
                "fp_lesions_on_stable": _mean(stable, "msseg_n_pred"),
                "fp_volume_ml_on_stable": _mean(stable, "msseg_pred_volume_ml"),
                "seconds_per_pair": _mean(sel, "seconds"),
            }
    return out


def _fmt(value: float | None, spec: str) -> str:
    """A number for the table; NaN (None once written to JSON) as 'nan'."""
    return "nan" if value is None or (isinstance(value, float) and np.isnan(value)) else format(value, spec)


def markdown(summary: dict, rows: list[dict], command: str) -> str:
    lines = ["# New-lesion detection (issue 6)", "", f"`{command}`", "", f"Machine: {platform.machine()}, {os.cpu_count()} cores, CPU only.", "",
             "| method | cases | pairs | lesion F1 (MSSEG-2) | Dice | stable pairs | FP lesions on stable | FP mL on stable | s / pair |",
             "|---|---|---|---|---|---|---|---|---|"]
    for key, s in summary.items():
        cells = [_fmt(s["lesion_f1"], ".3f"), _fmt(s["dice"], ".3f"), str(s["stable_pairs"]), _fmt(s["fp_lesions_on_stable"], ".2f"),
                 _fmt(s["fp_volume_ml_on_stable"], ".3f"), _fmt(s["seconds_per_pair"], ".1f")]
        lines.append(f"| {key} | {s['pairs']} | " + " | ".join(cells) + " |")
    lines += ["", "Lesion F1 and Dice are means over pairs WITH new lesions; FP columns over pairs without.",
              "Real pairs: the reference is the database's change mask (new, enlarging and shrinking lesions).", "",
              "| case | method | kind | F1 | Dice | ref lesions | pred lesions | pred mL | s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['method']} | {r['kind']} | {_fmt(r['msseg_lesion_f1'], '.3f')} | {_fmt(r['dice'], '.3f')} | "
                     f"{r['n_ref_lesions']} | {r['msseg_n_pred']} | {_fmt(r['msseg_pred_volume_ml'], '.3f')} | {r['seconds']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=Path, required=True, help="held-out synthetic pair dataset")
    parser.add_argument("--model", action="append", required=True, help="model name/folder or 'subtraction' (repeatable)")
    parser.add_argument("--name", default="new_lesions")
    parser.add_argument("--flips", type=int, default=None, help="test-time flips (default: the model card's test_time_flips)")
    parser.add_argument("--no-real", action="store_true", help="skip the two real Lesjak pairs")
    args = parser.parse_args()
    rows: list[dict] = []
    for method in args.model:
        rows += synthetic_rows(args.pairs, method, args.flips)
        if not args.no_real:
            rows += real_rows(method, args.flips)
    summary = summarise(rows)
    command = "MSLESION_SHARED_DATA=../shared/data .venv/bin/python benchmarks/new_lesions.py " + " ".join(
        [f"--pairs {args.pairs}", *[f"--model {m}" for m in args.model], f"--name {args.name}"] + ([] if args.flips is None else [f"--flips {args.flips}"]) + (["--no-real"] if args.no_real else []))
    results = ROOT / "benchmarks" / "results"
    write_json_atomic(results / f"{args.name}.json", {"command": command, "summary": summary, "rows": rows})
    write_text_atomic(results / f"{args.name}.md", markdown(summary, rows, command))
    print(markdown(summary, rows, command))


if __name__ == "__main__":
    main()
