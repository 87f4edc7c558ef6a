"""The shipped default model: trained on both real Lesjak cases, measured on a raw scan of an unseen scanner.

The ISBI 2015 subject (another scanner, raw 4.4 mm FLAIR with skull) was never trained on:
`segment` must take it from the raw file to a mask on its native grid that overlaps both
raters' lesions. Floors sit below benchmarks/results/real_accuracy.md (one flip here, to keep
the suite fast), so a regression of the weights, the brain extraction, the registration or
the postprocessing fails the suite rather than only the benchmark.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nibabel.processing import resample_from_to

from mslesion.evaluate.voxel import dice
from mslesion.io.volume import load_volume
from mslesion.models.store import resolve_model
from mslesion.pipeline import segment

pytestmark = pytest.mark.shared_data

ISBI_DICE_FLOOR = 0.2  # measured here with flips 1: 0.56 / 0.59; the card's 4 flips: 0.50 / 0.52 (benchmarks/results/real_accuracy.md)
TRAINING_DICE_FLOOR = 0.8  # measured with flips 1: 0.89 (FLAIR+T1 and FLAIR; scanner-long, 2026-12-02)


def test_default_model_ships_in_the_package() -> None:
    folder = resolve_model("default")
    card = json.loads((folder / "model.json").read_text())
    assert (folder / "model.safetensors").stat().st_size < 20_000_000
    assert card["contrasts"][0] == "FLAIR" and card["modality_dropout"] is True
    assert set(card["training"]["cases"]) == {"patient07", "patient19"}  # every labelled real scan
    assert card["training"]["hardware"] and "leave-one-out" in card["training"]["caveat"]


def test_default_model_on_a_raw_flair_of_an_unseen_scanner(shared_data: Path, tmp_path: Path) -> None:
    folder = shared_data / "isbi-raw" / "training01"
    result = segment({"FLAIR": folder / "FLAIR.nii.gz"}, tmp_path / "out", flips=1)
    flair = nib.load(folder / "FLAIR.nii.gz")
    mask = load_volume(tmp_path / "out" / "lesion_mask.nii.gz")
    brain = load_volume(tmp_path / "out" / "brain_mask.nii.gz").array > 0
    assert mask.shape == flair.shape and np.allclose(mask.affine, flair.affine)
    assert 900 < brain.sum() * np.prod(flair.header.get_zooms()[:3]) / 1000 < 1900
    for name in ("mask1", "mask2"):
        rater = nib.load(folder / f"{name}.nii.gz")
        rater = nib.Nifti1Image((np.asarray(rater.dataobj) > 0).astype(np.float32), rater.affine)
        reference = np.asarray(resample_from_to(rater, flair, order=1).dataobj) > 0.5
        assert (reference & brain).sum() == reference.sum()  # no rater lesion cut away with the skull
        score = dice(mask.array > 0, reference)
        print(f"ISBI {name} Dice {score:.3f}")
        assert score >= ISBI_DICE_FLOOR, name
    assert result.lesion_count > 0


@pytest.mark.parametrize("inputs", ["FLAIR+T1", "FLAIR"])
def test_default_model_reproduces_on_a_training_case(shared_data: Path, tmp_path: Path, inputs: str) -> None:
    case = shared_data / "lesjak-mni" / "patient19"
    images = {name: case / f"{name}.nii.gz" for name in inputs.split("+")}
    segment(images, tmp_path / "out", flips=1)
    mask = load_volume(tmp_path / "out" / "lesion_mask.nii.gz")
    reference = load_volume(case / "lesion.nii.gz").array > 0
    score = dice(mask.array > 0, reference)
    print(f"patient19 {inputs} Dice {score:.3f}")
    assert score >= TRAINING_DICE_FLOOR
