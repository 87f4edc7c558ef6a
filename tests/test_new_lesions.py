"""`mslesion new-lesions`: the pair pipeline on ready (co-registered, skull-stripped) pairs, its models and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mslesion.cli import app
from mslesion.io.case import required_contrasts
from mslesion.models.new_lesions import EarlyFusionUNet
from mslesion.preprocess.normalize import match_linear, normalised_channels
from mslesion.preprocess.pair import rigid_square_root

runner = CliRunner()


def _pair_args(pairs: Path, i: int, out: Path) -> list[str]:
    return [
        "new-lesions",
        "--baseline-flair",
        str(pairs / f"p{i}" / "baseline_FLAIR.nii.gz"),
        "--followup-flair",
        str(pairs / f"p{i}" / "followup_FLAIR.nii.gz"),
        "--out",
        str(out),
    ]


def test_rigid_square_root_is_half_the_motion() -> None:
    from scipy.spatial.transform import Rotation

    motion = np.eye(4)
    motion[:3, :3] = Rotation.from_euler("xyz", (6.0, -4.0, 10.0), degrees=True).as_matrix()
    motion[:3, 3] = (3.0, -7.0, 12.0)
    half = rigid_square_root(motion)
    assert np.allclose(half @ half, motion, atol=1e-10)
    assert np.allclose(half[:3, :3] @ half[:3, :3].T, np.eye(3), atol=1e-12)  # still a rotation
    angle = np.degrees(np.linalg.norm(Rotation.from_matrix(half[:3, :3]).as_rotvec()))
    assert angle == pytest.approx(np.degrees(np.linalg.norm(Rotation.from_matrix(motion[:3, :3]).as_rotvec())) / 2)
    assert np.allclose(rigid_square_root(np.eye(4)), np.eye(4))


def test_match_linear_undoes_a_linear_change_and_ignores_a_few_new_lesions(rng: np.random.Generator) -> None:
    brain = np.ones((30, 30, 30), bool)
    base = rng.normal(0, 1, brain.shape).astype(np.float32)
    follow = 2.5 * base + 7.0
    follow[:3, :3, :3] += 40.0  # new lesions: 0.1% of the brain
    matched = match_linear(follow, base, brain)
    assert np.allclose(matched[5:, 5:, 5:], base[5:, 5:, 5:], atol=0.02)
    outside = np.zeros_like(brain)
    outside[10:20, 10:20, 10:20] = True
    assert (match_linear(follow, base, outside)[~outside] == 0).all()


def test_pair_channels_are_normalised_jointly(rng: np.random.Generator) -> None:
    brain = np.zeros((20, 20, 20), bool)
    brain[2:18, 2:18, 2:18] = True
    base = rng.gamma(4.0, 25.0, brain.shape).astype(np.float32) * brain
    x = normalised_channels({"baseline_FLAIR": base, "followup_FLAIR": 3 * base + 50}, brain, ["baseline_FLAIR", "followup_FLAIR"])
    assert np.allclose(x[0][brain], x[1][brain], atol=1e-3)  # same tissue, same value after the joint map


def test_required_contrasts_of_pair_and_single_models() -> None:
    assert required_contrasts(["FLAIR", "T1"]) == ("FLAIR",)
    assert required_contrasts(["baseline_FLAIR", "followup_FLAIR"]) == ("baseline_FLAIR", "followup_FLAIR")


def test_early_fusion_unet_adds_the_difference_channels() -> None:
    net = EarlyFusionUNet(2, features=(4, 4, 8, 8, 8, 4))
    assert net.unet.conv_0.conv_0.conv.in_channels == 3  # baseline, follow-up, follow-up - baseline
    assert net(torch.zeros(1, 2, 32, 32, 32)).shape == (1, 1, 32, 32, 32)
    assert EarlyFusionUNet(4, features=(4, 4, 8, 8, 8, 4), difference=False).unet.conv_0.conv_0.conv.in_channels == 4
    with pytest.raises(ValueError, match="channel pairs"):
        EarlyFusionUNet(3)


def test_subtraction_finds_new_blobs_and_reports_a_stable_pair(tiny_pairs: Path, tmp_path: Path) -> None:
    out = tmp_path / "p0"
    result = runner.invoke(app, _pair_args(tiny_pairs, 0, out) + ["--model", "subtraction"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    truth = np.asarray(nib.load(str(tiny_pairs / "p0" / "lesion.nii.gz")).dataobj) > 0
    mask = np.asarray(nib.load(str(out / "new_lesion_mask.nii.gz")).dataobj) > 0
    assert 2.0 * (mask & truth).sum() / (mask.sum() + truth.sum()) > 0.6
    assert summary["new_lesion_count"] >= 1 and summary["method"]["name"] == "subtraction"
    assert {"new_lesion_mask.nii.gz", "new_lesion_prob.nii.gz", "brain_mask.nii.gz", "new_lesions.csv", "summary.json", "report.html"} <= {
        p.name for p in out.iterdir()
    }
    same = tmp_path / "same"
    base = str(tiny_pairs / "p3" / "baseline_FLAIR.nii.gz")
    result = runner.invoke(
        app, ["new-lesions", "--baseline-flair", base, "--followup-flair", base, "--out", str(same), "--model", "subtraction"]
    )
    assert result.exit_code == 0 and "No new lesions" in result.output
    assert json.loads((same / "summary.json").read_text())["no_new_lesions"] is True
    assert "No new lesions" in (same / "report.html").read_text()


def test_probability_change_runs_the_single_visit_model_on_each_visit(tiny_pairs: Path, tmp_path: Path) -> None:
    """Identical visits: the two probability maps are equal, so nothing changed; every table has the change columns."""
    import csv

    base = str(tiny_pairs / "p0" / "followup_FLAIR.nii.gz")
    out = tmp_path / "same"
    result = runner.invoke(
        app,
        [
            "new-lesions",
            "--baseline-flair",
            base,
            "--followup-flair",
            base,
            "--out",
            str(out),
            "--model",
            "probability-change",
            "--flips",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"]["name"] == "probability-change" and summary["method"]["contrasts"] == [
        "baseline_FLAIR",
        "baseline_T1",
        "followup_FLAIR",
        "followup_T1",
    ]
    assert summary["new_lesion_count"] == 0 and summary["change_counts"] == {"new": 0, "enlarging": 0, "shrinking": 0, "resolved": 0}
    assert float(np.asarray(nib.load(str(out / "new_lesion_prob.nii.gz")).dataobj).max()) == 0.0
    with open(out / "new_lesions.csv", newline="") as handle:
        assert {"change", "baseline_volume_ml", "followup_volume_ml"} <= set(next(csv.reader(handle)))
    other = tmp_path / "p0"
    result = runner.invoke(app, _pair_args(tiny_pairs, 0, other) + ["--model", "probability-change", "--flips", "1"])
    assert result.exit_code == 0, result.output
    with open(other / "new_lesions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert all(r["change"] in {"new", "enlarging", "shrinking", "resolved"} for r in rows)
    assert len(rows) == json.loads((other / "summary.json").read_text())["new_lesion_count"]


def test_grown_subtraction_takes_whole_follow_up_lesions_and_classes_them(tiny_pairs: Path, tmp_path: Path) -> None:
    """The default method: what subtraction finds, grown (never shrunk) into the single-visit model's follow-up
    lesions, each row classed; identical visits change nothing."""
    import csv

    from mslesion.new_lesions import DEFAULT_NEW_LESION_MODEL, detect_new_lesions

    assert DEFAULT_NEW_LESION_MODEL == "grown-subtraction"
    visits = ({"FLAIR": tiny_pairs / "p0" / "baseline_FLAIR.nii.gz"}, {"FLAIR": tiny_pairs / "p0" / "followup_FLAIR.nii.gz"})
    detect_new_lesions(*visits, tmp_path / "plain", model="subtraction", flips=1)
    grown = detect_new_lesions(*visits, tmp_path / "grown", flips=1)
    assert grown.summary["method"]["name"] == "grown-subtraction" and "grow" in grown.summary["seconds_per_stage"]
    plain_mask, grown_mask = (np.asarray(nib.load(str(tmp_path / n / "new_lesion_mask.nii.gz")).dataobj) > 0 for n in ("plain", "grown"))
    assert plain_mask.any() and not (plain_mask & ~grown_mask).any() and (grown_mask & ~plain_mask).any()
    with open(tmp_path / "grown" / "new_lesions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    # classed against the lesions it grew into: never shrinking or resolved, the follow-up volume at least the lesion's own
    assert len(rows) == grown.new_lesion_count >= 1 and all(r["change"] in {"new", "enlarging"} for r in rows)
    assert all(float(r["followup_volume_ml"]) >= float(r["volume_ml"]) for r in rows)
    # its own measured numbers, not the single-visit model's caveat
    assert any(w.startswith("method grown-subtraction: change Dice 0.40") for w in grown.summary["warnings"])
    assert not any(w.startswith("model:") for w in grown.summary["warnings"])
    same = detect_new_lesions(visits[1], visits[1], tmp_path / "same", flips=1)
    assert same.new_lesion_count == 0 and same.summary["no_new_lesions"] is True


def test_new_lesion_model_trains_and_detects(tiny_pairs: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "train.yaml"
    cfg.write_text(f"""
data: {{datasets: [{tiny_pairs}], contrasts: [baseline_FLAIR, followup_FLAIR], split: holdout, val_fraction: 0.25}}
model: {{architecture: new-lesions-unet, params: {{features: [4, 4, 8, 8, 8, 4]}}}}
patch: {{size: [32, 32, 32], batch_size: 2, lesion_fraction: 0.5}}
augment: {{affine: 0.0, modality_dropout: 0.0}}
optim: {{warmup_steps: 0}}
train: {{max_epochs: 1, steps_per_epoch: 3, num_threads: 1}}
infer: {{thresholds: [0.5], min_lesion_mm3: 3.0}}
""")
    result = runner.invoke(app, ["train", "--config", str(cfg), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "run" / "model" / "model.json").read_text())
    assert card["architecture"] == "new-lesions-unet" and card["contrasts"] == ["baseline_FLAIR", "followup_FLAIR"]
    out = tmp_path / "pred"
    result = runner.invoke(app, _pair_args(tiny_pairs, 1, out) + ["--model", str(tmp_path / "run" / "model"), "--flips", "1"])
    assert result.exit_code == 0, result.output
    prob = nib.load(str(out / "new_lesion_prob.nii.gz"))
    assert prob.shape == (40, 40, 40) and np.allclose(prob.affine, nib.load(str(tiny_pairs / "p1" / "followup_FLAIR.nii.gz")).affine)


def test_bad_inputs_are_one_line_errors_without_output(tiny_pairs: Path, tmp_path: Path, tiny_dataset: Path) -> None:
    out = tmp_path / "out"
    missing = runner.invoke(
        app,
        [
            "new-lesions",
            "--baseline-flair",
            str(tmp_path / "nope.nii.gz"),
            "--followup-flair",
            str(tiny_pairs / "p0" / "followup_FLAIR.nii.gz"),
            "--out",
            str(out),
            "--model",
            "subtraction",
        ],
    )
    assert missing.exit_code == 2 and "nope.nii.gz" in missing.output and not out.exists()
    wrong = runner.invoke(app, _pair_args(tiny_pairs, 0, out) + ["--model", str(tmp_path / "not_a_model")])
    assert wrong.exit_code == 2 and not out.exists()
    single = runner.invoke(app, _pair_args(tiny_pairs, 0, out) + ["--model", "default"])
    assert single.exit_code == 2 and "not a new-lesion model" in single.output and not out.exists()
    bigger = tmp_path / "bigger.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((40, 40, 41), np.float32), np.eye(4)), str(bigger))
    grid = runner.invoke(
        app,
        [
            "new-lesions",
            "--baseline-flair",
            str(bigger),
            "--followup-flair",
            str(tiny_pairs / "p0" / "followup_FLAIR.nii.gz"),
            "--out",
            str(out),
            "--model",
            "subtraction",
            "--preprocess",
            "no",
        ],
    )
    assert grid.exit_code == 2 and "differs" in grid.output and not out.exists()


@pytest.mark.shared_data
def test_raw_real_pair_with_the_default_method(shared_data: Path, tmp_path: Path) -> None:
    """Raw Lesjak patient01 (oblique 0.72x0.72x4 mm, skull): halfway preprocessing, results on the study-2 grid,
    and the default (grown subtraction) finds most of the expert change mask (measured Dice 0.586; floor 0.5;
    plain subtraction 0.574)."""
    import SimpleITK as sitk

    from mslesion.space.sitkio import from_sitk, to_sitk

    folder = shared_data / "lesjak-longitudinal" / "patient01"
    out = tmp_path / "p01"
    result = runner.invoke(
        app,
        [
            "new-lesions",
            "--baseline-flair",
            str(folder / "study1_FLAIR.nii.gz"),
            "--followup-flair",
            str(folder / "study2_FLAIR.nii.gz"),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"]["name"] == "grown-subtraction"
    reg = summary["preprocessing"]["visit_registration"]
    assert reg["converged"] and reg["nmi"] > 1.05 and not [w for w in summary["warnings"] if "baseline to the follow-up" in w]
    mask = nib.load(str(out / "new_lesion_mask.nii.gz"))
    study2 = nib.load(str(folder / "study2_FLAIR.nii.gz"))
    assert mask.shape == study2.shape and np.allclose(mask.affine, study2.affine, atol=1e-4)
    gt = nib.load(str(folder / "gt.nii.gz"))
    moved = sitk.Resample(
        to_sitk(np.asarray(mask.dataobj).astype(np.float32), mask.affine),
        to_sitk(np.zeros(gt.shape, np.uint8), gt.affine, dtype=np.uint8),
        sitk.ReadTransform(str(folder / "study2_FLAIR_to_common_space.txt")),
        sitk.sitkNearestNeighbor,
        0.0,
    )
    pred, ref = from_sitk(moved) > 0.5, np.asarray(gt.dataobj) > 0
    assert 2.0 * (pred & ref).sum() / (pred.sum() + ref.sum()) > 0.5


def test_nawm_residual_is_zero_for_aligned_visits_and_grows_with_misalignment(rng: np.random.Generator) -> None:
    from scipy import ndimage

    from mslesion.preprocess.pair import nawm_residual

    grid = np.indices((48, 48, 48)).transpose(1, 2, 3, 0)
    radius = np.linalg.norm(grid - 24, axis=-1)
    brain = radius < 21
    image = np.where(radius < 14, 100.0, 130.0) * brain + ndimage.gaussian_filter(rng.normal(0, 8, brain.shape), 1.5) * brain
    image[(np.abs(grid[..., 0] - 24) < 2) & (radius < 12)] = 60.0  # a dark "ventricle" inside the white matter
    white_matter = radius < 14
    assert nawm_residual(image, image, brain, white_matter) == 0.0
    noisy = image + rng.normal(0, 2, image.shape) * brain
    shifted = ndimage.shift(image, (2, 0, 0), order=1) * brain
    assert nawm_residual(shifted, image, brain, white_matter) > 2 * nawm_residual(noisy, image, brain, white_matter)


@pytest.mark.shared_data
@pytest.mark.parametrize(("grid", "limit", "where"), [("mni", 0.55, "white matter"), ("own", 0.9, "normal-appearing tissue")])
def test_two_different_patients_are_flagged(grid: str, limit: float, where: str, shared_data: Path, tmp_path: Path) -> None:
    """Issue 18: visits of two different brains (Lesjak patient07 as baseline, patient19 as follow-up) used to give
    'new lesions' without a word; now a QC warning says they do not line up. Ready on the MNI grid the check uses its
    white-matter prior; on their own grid (cropped by 12 voxels: same 1 mm voxels, not MNI) the brain's tissue."""
    from mslesion.new_lesions import detect_new_lesions

    def flair(patient: str) -> Path:
        path = shared_data / "lesjak-mni" / patient / "FLAIR.nii.gz"
        if grid == "mni":
            return path
        cropped = nib.load(path).slicer[12:-12]
        nib.save(nib.Nifti1Image(np.asarray(cropped.dataobj, np.float32), cropped.affine), tmp_path / f"{patient}.nii.gz")
        return tmp_path / f"{patient}.nii.gz"

    p07, p19 = flair("patient07"), flair("patient19")
    result = detect_new_lesions({"FLAIR": p07}, {"FLAIR": p19}, tmp_path / "out", model="subtraction", flips=1)
    assert result.summary["visit_residual_nawm_sd"] > limit
    assert any("do not line up" in w and where in w and "two different brains" in w for w in result.summary["warnings"])
    same = detect_new_lesions({"FLAIR": p07}, {"FLAIR": p07}, tmp_path / "same", model="subtraction", flips=1)
    assert same.summary["visit_residual_nawm_sd"] < 0.1 and not any("do not line up" in w for w in same.summary["warnings"])


def test_a_network_runs_a_finer_pair_at_its_own_voxel_size(tiny_pairs: Path, tmp_path: Path, nifti_writer) -> None:
    """Issue 14: ready visits on 0.6 mm voxels go to the 1 mm network of `probability-change` resampled to 1 mm and
    come back on their own grid, as in `segment` (they used to run at 0.6 mm); subtraction, which knows its voxel
    size, runs on them as they are. Both summaries time their stages, as segment's do."""
    from mslesion.new_lesions import detect_new_lesions

    affine = np.diag([0.6, 0.6, 0.6, 1.0])
    fine = {
        visit: nifti_writer(
            tmp_path / "fine" / f"{visit}.nii.gz", np.asarray(nib.load(str(tiny_pairs / "p0" / f"{visit}_FLAIR.nii.gz")).dataobj), affine
        )
        for visit in ("baseline", "followup")
    }
    for model, resampled in (("probability-change", [1.0, 1.0, 1.0]), ("subtraction", None)):
        out = tmp_path / model
        summary = detect_new_lesions({"FLAIR": fine["baseline"]}, {"FLAIR": fine["followup"]}, out, model=model, flips=1).summary
        assert summary["resampled_to_model_spacing_mm"] == resampled, model
        assert {"load images", "inference", "back to the input grid", "lesions", "report", "total"} <= set(summary["seconds_per_stage"])
        prob = nib.load(str(out / "new_lesion_prob.nii.gz"))
        assert prob.shape == (40, 40, 40) and np.allclose(prob.affine, affine)
        values = np.asarray(prob.dataobj)
        assert 0.0 <= values.min() and values.max() <= 1.0
