"""Voxel identity of `segment`, `new-lesions` and `segment-dataset` between two versions of the code.

Run (20 runs, one at a time: about 15 minutes on 2 idle cores, 45 on busy ones):

    MSLESION_SHARED_DATA=../shared/data nice -n 10 .venv/bin/python benchmarks/voxel_identity.py [--ref REF]

`--ref` (default: the merge-base of HEAD with main) is checked out into a temporary
`git worktree`; every command runs once with that tree's code and once with this tree's
(each as `python -m mslesion.cli` with PYTHONPATH=<tree>/src) on the same inputs:

- demo: the embedded demo subject (`mslesion demo`'s synthetic FLAIR + T1, seed 7, with its
  brain mask), and for `new-lesions` a synthetic pair of the same seed (`synth --longitudinal`);
- patient07: Lesjak patient07 (FLAIR + T1, ready on the MNI 1 mm grid); its follow-up for
  `new-lesions` is the same scan with three small bright spheres added to the FLAIR;
- fine: the same pair (and scan) on a 0.6 mm grid (the brain's box, linear interpolation):
  ready input whose voxels differ from the 1 mm model's, where a network runs at the model's spacing.

`new-lesions` runs with `subtraction` and with `probability-change` (the
shipped network on each visit); `segment-dataset` on a tiny BIDS dataset of symlinks to the
demo and patient07 scans. Every NIfTI output is compared voxel by voxel (array_equal of the
data, allclose of the affines) and every CSV table cell by cell. Writes
benchmarks/results/voxel_identity.md; exits 1 on any difference not listed in FIXED_BUGS (and
on those too with --strict). `--backend torch` where the command takes it; the others run the
default backend, deterministic on one machine (the first run, old code against itself, checks it).
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MSLESION_SHARED_DATA", ROOT.parent / "shared" / "data")).resolve()
RESULTS = ROOT / "benchmarks" / "results"
PATIENT = SHARED / "lesjak-mni" / "patient07"
FINE_MM = 0.6
# Outputs that differ on purpose: (command, case) -> the bug that the newer code fixes.
FIXED_BUGS: dict[tuple[str, str], str] = {
    ("new-lesions probability-change", "fine"): (
        "issue 14: new-lesions ran a network on ready visits at their own voxel size (0.6 mm here), not the 1 mm it was "
        "trained at, without a word; it now resamples them to the model's voxel size and back, as segment does "
        "(summary.json: resampled_to_model_spacing_mm [1.0, 1.0, 1.0]), so its probabilities and masks change. Measured "
        "here: at 0.6 mm the old code found none of the three spheres planted in the follow-up; the new one finds the same "
        "two as both versions find on the 1 mm pair (patient07 row above), at their places (their world centroids match)."),
}


@dataclass(frozen=True)
class Run:
    """One command on one case: its name in the table and its arguments after `mslesion`."""

    command: str
    case: str
    args: tuple[str, ...]


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()


def _save(array: np.ndarray, affine: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(array, np.float32), affine), str(path))
    return path


def _with_spheres(flair: np.ndarray, centres: list[tuple[int, int, int]], radius: float = 3.0) -> np.ndarray:
    """FLAIR with bright spheres (half the brain's median above the voxel) at `centres`: a follow-up with new lesions."""
    grid = np.indices(flair.shape, dtype=np.float32)
    out = flair.astype(np.float32).copy()
    lift = 0.5 * float(np.median(flair[flair > 0]))
    for centre in centres:
        distance = np.sqrt(sum((grid[i] - c) ** 2 for i, c in enumerate(centre)))
        inside = (distance <= radius) & (flair > 0)
        out[inside] += lift
    return out


def _fine(array: np.ndarray, affine: np.ndarray, box: tuple[slice, ...], spacing: float, linear: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """`array` cut to `box` and resampled to `spacing` mm voxels (same orientation and outer corner)."""
    from mslesion.preprocess.resample import resample

    origin = affine @ np.array([s.start for s in box] + [1.0])
    cut = np.asarray(array[box], np.float32)
    cut_affine = affine.copy()
    cut_affine[:3, 3] = origin[:3]
    factor = spacing / np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    fine_affine = cut_affine.copy()
    fine_affine[:3, :3] = affine[:3, :3] * factor
    fine_affine[:3, 3] = (cut_affine @ np.array([*(-0.5 + 0.5 * factor), 1.0]))[:3]
    shape = tuple(int(np.floor(n / f)) for n, f in zip(cut.shape, factor))
    return np.maximum(resample(cut, cut_affine, fine_affine, shape, is_label=not linear), 0.0), fine_affine  # type: ignore[arg-type]


def make_inputs(work: Path) -> list[Run]:
    """Write the inputs under `work`; the runs that use them."""
    sys.path.insert(0, str(ROOT / "src"))
    from mslesion.io.manifest import read_manifest
    from mslesion.synth import make_dataset

    runs: list[Run] = []
    demo = work / "inputs" / "demo"
    (case,) = read_manifest(make_dataset(demo / "subject", n=1, seed=7, n_sites=1))
    flair, t1, brain = (str(case.images["FLAIR"].path), str(case.images["T1"].path), str(case.brain.path))
    runs.append(Run("segment", "demo", ("--flair", flair, "--t1", t1, "--brain-mask", brain)))
    make_dataset(demo / "pair", n=1, seed=7, n_sites=1, longitudinal=True)
    (pair_dir,) = [p for p in (demo / "pair").iterdir() if p.is_dir()]
    pair = {f"{v}_{c}": str(pair_dir / f"{v}_{c}.nii.gz") for v in ("baseline", "followup") for c in ("FLAIR", "T1")}

    image = nib.load(str(PATIENT / "FLAIR.nii.gz"))
    p07_flair, affine = np.asarray(image.dataobj, np.float32), image.affine
    p07_t1 = np.asarray(nib.load(str(PATIENT / "T1.nii.gz")).dataobj, np.float32)
    followup = _with_spheres(p07_flair, [(62, 118, 92), (118, 112, 90), (70, 96, 76)])
    patient = work / "inputs" / "patient07"
    fu_flair = str(_save(followup, affine, patient / "followup_FLAIR.nii.gz"))
    runs.append(Run("segment", "patient07", ("--flair", str(PATIENT / "FLAIR.nii.gz"), "--t1", str(PATIENT / "T1.nii.gz"))))
    p07_pair = {"baseline_FLAIR": str(PATIENT / "FLAIR.nii.gz"), "baseline_T1": str(PATIENT / "T1.nii.gz"),
                "followup_FLAIR": fu_flair, "followup_T1": str(PATIENT / "T1.nii.gz")}

    nonzero = np.argwhere(p07_flair > 0)
    box = tuple(slice(max(int(lo) - 4, 0), min(int(hi) + 5, n)) for lo, hi, n in zip(nonzero.min(0), nonzero.max(0), p07_flair.shape))
    fine = work / "inputs" / "fine"
    fine_paths = {}
    for name, array in (("baseline_FLAIR", p07_flair), ("followup_FLAIR", followup), ("T1", p07_t1)):
        data, fine_affine = _fine(array, affine, box, FINE_MM)
        fine_paths[name] = str(_save(data, fine_affine, fine / f"{name}.nii.gz"))
    runs.append(Run("segment", "fine", ("--flair", fine_paths["baseline_FLAIR"], "--t1", fine_paths["T1"])))
    fine_pair = {"baseline_FLAIR": fine_paths["baseline_FLAIR"], "baseline_T1": fine_paths["T1"],
                 "followup_FLAIR": fine_paths["followup_FLAIR"], "followup_T1": fine_paths["T1"]}
    runs = [Run(r.command, r.case, (*r.args, "--flips", "1", "--backend", "torch")) for r in runs]

    for name, files in (("demo", pair), ("patient07", p07_pair), ("fine", fine_pair)):
        args = tuple(a for key, path in files.items() for a in (f"--{key.replace('_', '-').lower()}", path))
        for model in ("subtraction", "probability-change"):
            runs.append(Run(f"new-lesions {model}", name, (*args, "--model", model, "--flips", "1")))

    bids = work / "inputs" / "bids"
    for subject, images in (("demo", {"FLAIR": flair, "T1w": t1}), ("patient07", {"FLAIR": str(PATIENT / "FLAIR.nii.gz"),
                                                                                  "T1w": str(PATIENT / "T1.nii.gz")})):
        anat = bids / f"sub-{subject}" / "anat"
        anat.mkdir(parents=True, exist_ok=True)
        for suffix, path in images.items():
            (anat / f"sub-{subject}_{suffix}.nii.gz").symlink_to(path)
    (bids / "dataset_description.json").write_text('{"Name": "voxel identity", "BIDSVersion": "1.8.0"}\n')
    runs.append(Run("segment-dataset", "demo + patient07", (str(bids), "--flips", "1", "--workers", "1")))
    return runs


def run_one(tree: Path, run: Run, out: Path) -> float:
    """`mslesion <run>` with the code of `tree`, output to `out`; seconds."""
    command = run.command.split()[0]
    args = [sys.executable, "-m", "mslesion.cli", command, *run.args, "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "CI": "1"}
    start = time.perf_counter()
    done = subprocess.run(args, cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{run.command} {run.case} failed with {tree}:\n{done.stdout}\n{done.stderr}")
    return time.perf_counter() - start


def _outputs(folder: Path) -> list[Path]:
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file() and (p.name.endswith((".nii.gz", ".nii", ".csv"))))


def _nifti(a: Path, b: Path) -> tuple[bool, float, str]:
    ia, ib = nib.load(str(a)), nib.load(str(b))
    if ia.shape != ib.shape:
        return False, float("nan"), f"shape {ia.shape} vs {ib.shape}"
    da, db = np.asarray(ia.dataobj), np.asarray(ib.dataobj)
    same_affine = np.allclose(ia.affine, ib.affine)
    diff = float(np.max(np.abs(da.astype(np.float64) - db.astype(np.float64)))) if da.size else 0.0
    voxels = int(np.count_nonzero(da != db))
    note = "" if voxels == 0 else f"{voxels} voxels differ"
    if not same_affine:
        note = (note + "; " if note else "") + "affines differ"
    return bool(np.array_equal(da, db) and da.dtype == db.dtype and same_affine), diff, note


def _table(a: Path, b: Path) -> tuple[bool, float, str]:
    ta, tb = a.read_text(), b.read_text()
    if ta == tb:
        return True, 0.0, ""
    ra, rb = list(csv.reader(ta.splitlines())), list(csv.reader(tb.splitlines()))
    if len(ra) != len(rb) or (ra and ra[0] != rb[0]):
        return False, float("nan"), f"{len(ra) - 1} vs {len(rb) - 1} rows" + ("" if not ra or ra[0] == rb[0] else ", other columns")
    worst, cells = 0.0, 0
    for row_a, row_b in zip(ra, rb):
        for x, y in zip(row_a, row_b):
            if x == y:
                continue
            cells += 1
            try:
                worst = max(worst, abs(float(x) - float(y)))
            except ValueError:
                worst = float("nan")
    return False, worst, f"{cells} cells differ"


def compare(old: Path, new: Path) -> list[tuple[str, bool, float, str]]:
    """(file, identical, max abs difference, note) for every NIfTI and CSV either side wrote."""
    rows = []
    for rel in sorted(set(_outputs(old)) | set(_outputs(new))):
        a, b = old / rel, new / rel
        if not (a.is_file() and b.is_file()):
            rows.append((str(rel), False, float("nan"), "only in " + ("old" if a.is_file() else "new")))
            continue
        rows.append((str(rel), *(_table(a, b) if rel.suffix == ".csv" else _nifti(a, b))))
    return rows


def _fmt(value: float) -> str:
    return "-" if np.isnan(value) else f"{value:.6g}"


def write_markdown(path: Path, ref: str, ref_sha: str, head: str, dirty: bool,
                   results: list[tuple[Run, list[tuple[str, bool, float, str]]]], seconds: dict[tuple[str, str], tuple[float, float]]) -> None:
    lines = [
        "# Voxel identity: segment, new-lesions, segment-dataset before and after",
        "",
        f"Written by `benchmarks/voxel_identity.py` on {time.strftime('%Y-%m-%d')}: old = `{ref}` ({ref_sha[:10]}), "
        f"new = this tree ({head[:10]}{', with uncommitted changes' if dirty else ''}).",
        f"Cases: demo (the embedded synthetic subject, seed 7; a synthetic pair of seed 7 for new-lesions), patient07 "
        f"(Lesjak, ready MNI 1 mm; follow-up = the same FLAIR with three 3 mm bright spheres), fine (patient07 and that pair "
        f"resampled to {FINE_MM} mm). `--flips 1`; `--backend torch` for segment.",
        "",
        "| command | case | file | identical | max abs difference | note |",
        "|---|---|---|---|---|---|",
    ]
    for run, rows in results:
        for name, same, diff, note in rows:
            fixed = FIXED_BUGS.get((run.command, run.case))
            verdict = "yes" if same else ("no (fixed bug)" if fixed else "**no**")
            lines.append(f"| {run.command} | {run.case} | {name} | {verdict} | {_fmt(0.0 if same else diff)} | {note} |")
    explained = {key: why for key, why in FIXED_BUGS.items() if any(r.command == key[0] and r.case == key[1] and not all(s for _, s, _, _ in rows)
                                                                   for r, rows in results)}
    if explained:
        lines += ["", "## Differences that a fixed bug explains", ""]
        lines += [f"- {command}, {case}: {why}" for (command, case), why in explained.items()]
    lines += ["", "Seconds per run (old / new): " + ", ".join(f"{c} {k} {o:.0f} / {n:.0f}" for (c, k), (o, n) in seconds.items()), ""]
    path.write_text("\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ref", default=None, help="git ref of the old code (default: merge-base of HEAD with main)")
    parser.add_argument("--keep", type=Path, default=None, help="work here and keep the outputs (default: a temporary folder)")
    parser.add_argument("--strict", action="store_true", help="fail on differences listed in FIXED_BUGS too")
    parser.add_argument("--out", type=Path, default=RESULTS / "voxel_identity.md")
    options = parser.parse_args()
    ref = options.ref or git("merge-base", "HEAD", "main")
    ref_sha = git("rev-parse", ref)
    head, dirty = git("rev-parse", "HEAD"), bool(git("status", "--porcelain", "--untracked-files=no"))
    work = options.keep or Path(tempfile.mkdtemp(prefix="voxel-identity-"))
    old_tree = work / "old-tree"
    if old_tree.exists():
        git("worktree", "remove", "--force", str(old_tree))
    git("worktree", "add", "--detach", str(old_tree), ref_sha)
    try:
        runs = make_inputs(work)
        results, seconds = [], {}
        for run in runs:
            folder = f"{run.command.replace(' ', '_')}__{run.case.replace(' + ', '_')}"
            old_out, new_out = work / "old" / folder / "out", work / "new" / folder / "out"
            took = (run_one(old_tree, run, old_out), run_one(ROOT, run, new_out))
            seconds[(run.command, run.case)] = took
            rows = compare(old_out, new_out)
            results.append((run, rows))
            bad = [r[0] for r in rows if not r[1]]
            print(f"{run.command:32s} {run.case:18s} {len(rows)} files, {'identical' if not bad else 'DIFFER: ' + ', '.join(bad)} "
                  f"({took[0]:.0f} s / {took[1]:.0f} s)", flush=True)
    finally:
        git("worktree", "remove", "--force", str(old_tree))
        if options.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    options.out.parent.mkdir(parents=True, exist_ok=True)
    write_markdown(options.out, options.ref or "merge-base with main", ref_sha, head, dirty, results, seconds)
    failing = [(run.command, run.case, name) for run, rows in results for name, same, _, _ in rows
               if not same and (options.strict or (run.command, run.case) not in FIXED_BUGS)]
    empty = [(run.command, run.case) for run, rows in results if not rows]
    for item in failing:
        print("differs:", *item)
    for item in empty:
        print("no outputs:", *item)
    print(f"-> {options.out}")
    return 1 if failing or empty else 0


if __name__ == "__main__":
    sys.exit(main())
