"""The phantoms of `configs/benchmarks/cpu_evidence.yaml`: training sites AND unseen subjects of those sites.

Leave-site-out alone tells how a method does on a new scanner; the papers' claims are about
the gap between that and its score on new subjects of the scanners it was trained on. One
dataset of 30 subjects on 3 sites (`mslesion synth`, seed 4242, 2 mm) is split by subject:
subjects 0-23 are the benchmark's dataset (`manifest_train.csv`: every site in turn is held
out of training), subjects 24-29 are never trained on (`manifest_insite.csv`): each fold's
model segments them, and those of its training sites are its in-site scores.

    MSLESION_SHARED_DATA=../shared/data .venv/bin/python benchmarks/evidence_data.py
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from mslesion.io.atomic import write_csv_atomic
from mslesion.synth import make_dataset

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "build" / "bench" / "evidence_data" / "synth30"
SHARED = Path(os.environ.get("MSLESION_SHARED_DATA", ROOT.parent / "shared" / "data"))
N_TRAIN, N_TOTAL = 24, 30


def main() -> None:
    if not (OUT / "manifest.csv").is_file():
        make_dataset(OUT, n=N_TOTAL, seed=4242, n_sites=3, lesion_masks_dir=SHARED / "lesjak-mni-masks", resolution_mm=2.0)
    with open(OUT / "manifest.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    columns = list(rows[0])
    write_csv_atomic(OUT / "manifest_train.csv", rows[:N_TRAIN], columns)
    write_csv_atomic(OUT / "manifest_insite.csv", rows[N_TRAIN:], columns)
    print(f"{N_TRAIN} benchmark subjects and {N_TOTAL - N_TRAIN} held-out subjects of the same sites in {OUT}")


if __name__ == "__main__":
    main()
