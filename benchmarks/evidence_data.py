"""The phantoms of `configs/benchmarks/cpu_evidence.yaml`: training sites AND unseen subjects of those sites.

Leave-site-out alone tells how a method does on a new scanner; the papers' claims are about
the gap between that and its score on new subjects of the scanners it was trained on. One
dataset of 42 subjects on 3 sites (`mslesion synth`, seed 4242, 2 mm) is split by subject:
subjects 0-23 are the benchmark's dataset (`manifest_train.csv`: every site in turn is held
out of training), subjects 24-41 are never trained on (`manifest_insite.csv`): each fold's
model segments them, and those of its training sites are its in-site scores. (The first
run had 30 subjects; each subject depends only on the seed and its index, so subjects 0-29
are the same in both.)

It also puts the two real Lesjak MNI cases on the phantoms' 2 mm grid (`real2mm/`), the
grid the models were trained on, so every method (DeepLesionBrain's regions included,
which are fixed on the model's grid) sees them as it saw its training data. Images: Gaussian
anti-aliasing (sigma 0.85 voxel of the 1 mm grid) then linear interpolation, zero outside
the resampled brain; lesion and brain masks: the same on the 0/1 mask, kept where >= 0.5.

    MSLESION_SHARED_DATA=../shared/data .venv/bin/python benchmarks/evidence_data.py
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from mslesion.io.atomic import write_csv_atomic
from mslesion.synth import make_dataset

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "build" / "bench" / "evidence_data" / "phantoms"
SHARED = Path(os.environ.get("MSLESION_SHARED_DATA", ROOT.parent / "shared" / "data"))
N_TRAIN, N_TOTAL = 24, 42


def real_on_phantom_grid(case: Path, out: Path, reference: Path) -> None:
    """FLAIR, T1, T2 and the lesion mask of one 1 mm Lesjak MNI case on `reference`'s grid."""
    import numpy as np
    from scipy import ndimage as ndi

    from mslesion.io.volume import load_volume, save_volume
    from mslesion.preprocess.resample import resample

    target = load_volume(reference)

    def down(array: np.ndarray, affine: np.ndarray) -> np.ndarray:
        smooth = ndi.gaussian_filter(np.asarray(array, dtype=np.float32), 0.85)
        return resample(smooth, affine, target.affine, target.shape)

    flair = load_volume(case / "FLAIR.nii.gz")
    brain = down(flair.array != 0, flair.affine) >= 0.5
    out.mkdir(parents=True, exist_ok=True)
    for name in ("FLAIR", "T1", "T2"):
        image = flair if name == "FLAIR" else load_volume(case / f"{name}.nii.gz")
        save_volume(down(image.array, image.affine) * brain, target.affine, out / f"{name}.nii.gz")
    lesion = load_volume(case / "lesion.nii.gz")
    save_volume((down(lesion.array, lesion.affine) >= 0.5).astype(np.uint8), target.affine, out / "lesion.nii.gz")


def main() -> None:
    if not (OUT / "manifest.csv").is_file():
        make_dataset(OUT, n=N_TOTAL, seed=4242, n_sites=3, lesion_masks_dir=SHARED / "lesjak-mni-masks", resolution_mm=2.0)
    with open(OUT / "manifest.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    columns = list(rows[0])
    write_csv_atomic(OUT / "manifest_train.csv", rows[:N_TRAIN], columns)
    write_csv_atomic(OUT / "manifest_insite.csv", rows[N_TRAIN:], columns)
    print(f"{N_TRAIN} benchmark subjects and {N_TOTAL - N_TRAIN} held-out subjects of the same sites in {OUT}")
    for name in ("patient07", "patient19"):
        real_on_phantom_grid(SHARED / "lesjak-mni" / name, OUT / "real2mm" / name, OUT / rows[0]["FLAIR"])
    print(f"the two real Lesjak cases on the phantoms' 2 mm grid in {OUT / 'real2mm'}")


if __name__ == "__main__":
    main()
