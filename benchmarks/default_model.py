"""Measure a segmentation model as issue 3 asks; write benchmarks/results/<name>.{json,md}.

Cases: the held-out real Lesjak case (patient07, FLAIR+T1 and FLAIR alone) and synthetic
subjects of a scanner site never seen in training (a different site seed). For each:
Dice, lesion F1 with the MSSEG-2 (Anima) rule, LTPR/LFPR (ISBI), and the wall-clock
seconds of `segment` (model loading, inference with TTA, postprocessing, writing).

    .venv/bin/python benchmarks/default_model.py --model default --name default_model
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
from mslesion.io.volume import load_volume
from mslesion.pipeline import segment

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MSLESION_SHARED_DATA", ROOT.parent / "shared" / "data"))
COLUMNS = ("dice", "msseg_lesion_f1", "ltpr", "lfpr", "ppv", "tpr", "n_ref_lesions", "n_pred_lesions", "seconds")


def run_case(name: str, images: dict[str, Path], lesion: Path, model: str, flips: int | None, brain: Path | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        segment(images, Path(tmp), model=model, brain_mask=brain, flips=flips)
        seconds = time.perf_counter() - start
        pred = load_volume(Path(tmp) / "lesion_mask.nii.gz").array > 0
    ref = load_volume(lesion)
    metrics = evaluate_case(pred, ref.array > 0, ref.spacing)
    row = {"case": name, **{k: metrics[k] for k in COLUMNS if k in metrics}, "seconds": round(seconds, 1)}
    print(json.dumps(row), flush=True)
    return row


def synthetic_unseen_site(folder: Path, n: int) -> list:
    from mslesion.synth import make_dataset

    if not (folder / "manifest.csv").is_file():
        make_dataset(folder, n=n, seed=777, n_sites=1)  # site seed 777: no training site shares it
    return load_dataset(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--name", default="default_model")
    parser.add_argument("--flips", type=int, default=None, help="test-time flips (default: the model card's test_time_flips)")
    parser.add_argument("--n-synthetic", type=int, default=4)
    args = parser.parse_args()

    rows = []
    real = SHARED / "lesjak-mni" / "patient07"
    rows.append(run_case("patient07 FLAIR+T1", {"FLAIR": real / "FLAIR.nii.gz", "T1": real / "T1.nii.gz"}, real / "lesion.nii.gz", args.model, args.flips))
    rows.append(run_case("patient07 FLAIR", {"FLAIR": real / "FLAIR.nii.gz"}, real / "lesion.nii.gz", args.model, args.flips))
    for case in synthetic_unseen_site(ROOT / "build" / "bench" / "unseen_site", args.n_synthetic):
        images = {c: case.images[c].path for c in ("FLAIR", "T1")}
        rows.append(run_case(f"unseen-site {case.case_id} FLAIR+T1", images, case.lesion.path, args.model, args.flips, case.brain.path))
    synth = [r for r in rows if r["case"].startswith("unseen-site")]
    result = {
        "model": args.model,
        "flips": args.flips,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads default",
        "rows": rows,
        "unseen_site_mean": {k: float(np.nanmean([r[k] for r in synth])) for k in ("dice", "msseg_lesion_f1", "ltpr", "lfpr")},
    }
    out = ROOT / "benchmarks" / "results"
    write_json_atomic(out / f"{args.name}.json", result)
    lines = [f"# {args.name}: model `{args.model}`, flips {args.flips or 'of its card'}", "", "| case | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for r in rows:
        lines.append(f"| {r['case']} | " + " | ".join(f"{r[k]:.3f}" if isinstance(r[k], float) else str(r[k]) for k in COLUMNS) + " |")
    lines += ["", "Unseen synthetic site, mean: " + ", ".join(f"{k} {v:.3f}" for k, v in result["unseen_site_mean"].items())]
    write_text_atomic(out / f"{args.name}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
