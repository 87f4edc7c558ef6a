"""Raw-scan preprocessing on the Lesjak longitudinal scans: brain-mask Dice, visit-to-visit registration, time.

Run: OMP_NUM_THREADS=1 nice -n 15 .venv/bin/python benchmarks/preprocess_lesjak.py [--patients patient01 patient03]
Needs ../shared/data (or MSLESION_SHARED_DATA). Writes benchmarks/results/preprocess_lesjak.json and .md.

For each patient, `preprocess_raw` runs on study 1 (FLAIR + the T1W/T2W it has), then:
(a) Dice of our brain mask (native FLAIR grid) against the provided `brainmask.nii.gz`,
    our mask brought into that grid through the provided ITK transform (a point p of the
    common space, LPS, lies at A (p - c) + c + t in the raw FLAIR: exactly the transform
    sitk.Resample needs with the common grid as reference);
(b) our rigid registration of study-2 FLAIR onto study-1 FLAIR against the mapping the
    provided transforms imply (common point p: study-1 FLAIR point T1(p), study-2 point
    T2(p)): mean |R(T1(p)) - T2(p)| over the provided brain mask;
(c) wall and CPU seconds of the whole preprocessing (CPU = all threads of this process).
Targets: Dice >= 0.90, displacement < 1.5 mm, preprocessing well under 60 s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from mslesion.io.atomic import write_json_atomic, write_text_atomic
from mslesion.preprocess.bias import n4_correct
from mslesion.preprocess.raw import preprocess_raw
from mslesion.preprocess.register import Init, register
from mslesion.preprocess.skullstrip import dilate_mm
from mslesion.space.sitkio import RAS_LPS, from_sitk, itk_threads, to_sitk

RESULTS = Path(__file__).resolve().parent / "results"
DATA = Path(os.environ.get("MSLESION_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) / "lesjak-longitudinal"
TARGETS = {"brain_dice": 0.90, "mean_displacement_mm": 1.5, "seconds": 60.0}


def itk_transform(path: Path) -> sitk.Transform:
    """The provided MatrixOffsetTransformBase file (common point -> raw image point, LPS)."""
    return sitk.ReadTransform(str(path))


def _study_images(folder: Path, study: str) -> dict[str, Path]:
    names = {"FLAIR": "FLAIR", "T1": "T1W", "T2": "T2W"}
    return {k: folder / f"{study}_{v}.nii.gz" for k, v in names.items() if (folder / f"{study}_{v}.nii.gz").exists()}


def brain_dice(native_brain: np.ndarray, flair_path: Path, folder: Path) -> float:
    """Dice of our native-grid brain mask against the provided one, on the provided grid."""
    flair = nib.load(str(flair_path))
    ref = nib.load(str(folder / "brainmask.nii.gz"))
    reference = to_sitk(np.zeros(ref.shape, np.uint8), ref.affine, dtype=np.uint8)
    ours = sitk.Resample(to_sitk(native_brain.astype(np.float32), flair.affine), reference, itk_transform(folder / "study1_FLAIR_to_common_space.txt"), sitk.sitkLinear, 0.0)
    a, b = from_sitk(ours) > 0.5, np.asarray(ref.dataobj) > 0
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


def visit_registration(pre, folder: Path) -> dict[str, float]:  # noqa: ANN001 - Preprocessed
    """Rigid study-2 -> study-1 FLAIR registration vs the provided transforms (mm, inside the provided brain)."""
    flair1, affine1 = pre._corrected["FLAIR"]  # N4-corrected, canonical grid
    fixed = to_sitk(flair1, affine1)
    raw2 = nib.as_closest_canonical(nib.load(str(folder / "study2_FLAIR.nii.gz")))
    moving, _ = n4_correct(to_sitk(raw2.get_fdata(dtype=np.float32), raw2.affine))
    brain = pre.flair_grid.to_canonical(pre.native_brain)
    mask = to_sitk(dilate_mm(brain, 5.0, fixed.GetSpacing()).astype(np.uint8), affine1, dtype=np.uint8)
    t0 = time.perf_counter()
    reg = register(fixed, moving, "rigid", Init.IDENTITY, fixed_mask=mask, fixed_spacing_mm=1.5, name="study 2 FLAIR")
    seconds = time.perf_counter() - t0
    ref = nib.load(str(folder / "brainmask.nii.gz"))
    idx = np.argwhere(np.asarray(ref.dataobj) > 0)[::7]
    common_lps = (RAS_LPS @ ref.affine @ np.c_[idx, np.ones(len(idx))].T)[:3].T
    t1, t2 = itk_transform(folder / "study1_FLAIR_to_common_space.txt"), itk_transform(folder / "study2_FLAIR_to_common_space.txt")
    ours_tx = reg.transform()
    d = np.array([np.subtract(ours_tx.TransformPoint(t1.TransformPoint(p)), t2.TransformPoint(p)) for p in map(tuple, common_lps)])
    dist = np.linalg.norm(d, axis=1)
    return {"mean_displacement_mm": round(float(dist.mean()), 3), "p95_displacement_mm": round(float(np.percentile(dist, 95)), 3), "max_displacement_mm": round(float(dist.max()), 3), "seconds": round(seconds, 2), "points": int(len(idx))}


def run_patient(patient: str) -> dict[str, object]:
    folder = DATA / patient
    images = _study_images(folder, "study1")
    wall, cpu = time.perf_counter(), time.process_time()
    pre = preprocess_raw(images)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    out: dict[str, object] = {
        "contrasts": sorted(images),
        "brain_dice": round(brain_dice(pre.native_brain, images["FLAIR"], folder), 4),
        "preprocess_wall_s": round(wall, 1),
        "preprocess_cpu_s": round(cpu, 1),
        "qc": {k: v for k, v in pre.qc.items() if k != "inputs"},
    }
    with itk_threads(2):
        out["visit_registration"] = visit_registration(pre, folder)
    print(patient, json.dumps({k: out[k] for k in ("brain_dice", "preprocess_wall_s", "preprocess_cpu_s", "visit_registration")}), flush=True)
    return out


def _markdown(result: dict[str, object]) -> str:
    lines = [
        "# Raw-scan preprocessing on the Lesjak longitudinal scans",
        "",
        f"Command: `{result['command']}`  ",
        f"Machine: {result['machine']}  ",
        f"Targets: brain Dice >= {TARGETS['brain_dice']}, visit registration mean displacement < {TARGETS['mean_displacement_mm']} mm, preprocessing well under {TARGETS['seconds']:.0f} s on 2 cores.",
        "",
        "| patient | contrasts | brain Dice | visit reg. mean / p95 (mm) | NMI MNI | preprocess wall s | preprocess CPU s | warnings |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in result["patients"].items():  # type: ignore[union-attr]
        v, qc = r["visit_registration"], r["qc"]
        lines.append(
            f"| {name} | {'+'.join(r['contrasts'])} | {r['brain_dice']:.3f} | {v['mean_displacement_mm']:.2f} / {v['p95_displacement_mm']:.2f} | "
            f"{qc['mni_registration']['nmi']:.3f} | {r['preprocess_wall_s']:.0f} | {r['preprocess_cpu_s']:.0f} | {'; '.join(qc['warnings']) or '-'} |"
        )
    lines += ["", str(result["note"]), ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", nargs="+", default=["patient01", "patient03"])
    args = parser.parse_args()
    patients = {p: run_patient(p) for p in args.patients}
    result = {
        "command": "OMP_NUM_THREADS=1 nice -n 15 .venv/bin/python benchmarks/preprocess_lesjak.py",
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, SimpleITK on 2 threads",
        "targets": TARGETS,
        "patients": patients,
        "note": (
            "Wall seconds depend on what else the machine runs: CPU seconds (all threads of the process) "
            "are the load-independent number; on 2 idle cores the wall time lies between CPU/2 and CPU."
        ),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json_atomic(RESULTS / "preprocess_lesjak.json", result)
    write_text_atomic(RESULTS / "preprocess_lesjak.md", _markdown(result))


if __name__ == "__main__":
    main()
