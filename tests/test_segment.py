"""`mslesion segment`: outputs on the input grid, lesion table, and every bad-input path."""

from __future__ import annotations

import csv
import json
import pickle
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner, Result

from mslesion.cli import app

runner = CliRunner()


def _segment_flair_t1(scans: dict, out: Path, model: Path, flips: int | None) -> Result:
    """`mslesion segment` on the test scan's FLAIR and T1 (`flips` None: the model card's)."""
    args = ["segment", "--flair", scans["flair"], "--t1", scans["t1"], "--out", out, "--model", model]
    args += [] if flips is None else ["--flips", flips]
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    """A random-weight 2-contrast U-Net that predicts lesion where FLAIR is bright (by its bias)."""
    import torch

    from mslesion.models.registry import build_network
    from mslesion.models.store import ModelCard, save_model

    torch.manual_seed(0)
    net = build_network("unet", 2, {"features": [4, 4, 8, 8, 16, 4]})
    card = ModelCard(
        architecture="unet",
        contrasts=["FLAIR", "T1"],
        params={"features": [4, 4, 8, 8, 16, 4]},
        patch_size=(32, 32, 32),
        threshold=0.5,
        min_lesion_mm3=3.0,
    )
    return save_model(net.state_dict(), card, tmp_path / "model")


@pytest.fixture
def scans(tmp_path: Path, nifti_writer) -> dict[str, Path]:
    """Skull-stripped 40x44x36 FLAIR and T1 with an oblique affine and 1 x 1 x 1.2 mm voxels."""
    rng = np.random.default_rng(5)
    affine = np.array([[-1.0, 0.05, 0, 80], [0, 1.0, 0, -100], [0, 0, 1.2, -60], [0, 0, 0, 1]])
    grid = np.indices((40, 44, 36)).transpose(1, 2, 3, 0)
    brain = np.linalg.norm((grid - [20, 22, 18]) / [17, 19, 15], axis=-1) < 1
    flair = (rng.normal(100, 5, brain.shape) * brain).astype(np.float32)
    return {
        "flair": nifti_writer(tmp_path / "in" / "flair.nii.gz", flair, affine),
        "t1": nifti_writer(tmp_path / "in" / "t1.nii.gz", flair[::-1].copy(), affine),
        "affine": affine,
    }


def test_segment_writes_outputs_on_input_grid(tmp_path: Path, tiny_model: Path, scans) -> None:
    out = tmp_path / "out"
    result = _segment_flair_t1(scans, out, tiny_model, flips=2)
    assert result.exit_code == 0, result.output
    for name in ("lesion_mask.nii.gz", "lesion_prob.nii.gz", "brain_mask.nii.gz", "lesions.csv", "summary.json"):
        assert (out / name).is_file(), name
    mask = nib.load(str(out / "lesion_mask.nii.gz"))
    assert mask.shape == (40, 44, 36) and mask.get_data_dtype() == np.uint8
    np.testing.assert_allclose(mask.affine, scans["affine"], atol=1e-5)
    prob = np.asarray(nib.load(str(out / "lesion_prob.nii.gz")).dataobj)
    assert prob.min() >= 0 and prob.max() <= 1
    summary = json.loads((out / "summary.json").read_text())
    rows = list(csv.DictReader((out / "lesions.csv").open()))
    assert summary["lesion_count"] == len(rows)
    assert summary["total_volume_ml"] == pytest.approx(np.asarray(mask.dataobj).sum() * 1.2 / 1000, abs=1e-3)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no staging left


def test_without_flips_the_cards_test_time_flips_are_run(tmp_path: Path, tiny_model: Path, scans) -> None:
    """The card's test_time_flips (what its postprocessing was chosen with) unless --flips says otherwise."""
    card = json.loads((tiny_model / "model.json").read_text())
    assert "test_time_flips" in card
    (tiny_model / "model.json").write_text(json.dumps({**card, "test_time_flips": 4}))

    def prob(flips: int | None) -> np.ndarray:
        out = tmp_path / f"out{flips}"
        assert _segment_flair_t1(scans, out, tiny_model, flips).exit_code == 0
        return np.asarray(nib.load(str(out / "lesion_prob.nii.gz")).dataobj)

    by_card, four, two = prob(None), prob(4), prob(2)
    np.testing.assert_array_equal(by_card, four)
    assert json.loads((tmp_path / "outNone" / "summary.json").read_text())["model"]["test_time_flips"] == 4
    assert np.abs(four - two).max() > 1e-4


def test_flair_alone_is_accepted(tmp_path: Path, tiny_model: Path, scans) -> None:
    result = runner.invoke(
        app, ["segment", "--flair", str(scans["flair"]), "--out", str(tmp_path / "o"), "--model", str(tiny_model), "--flips", "1"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["model"]["contrasts"] == ["FLAIR", "T1"]


def _fails(args: list[str], message: str, out: Path) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not out.exists() or not any(out.iterdir())


def test_bad_inputs_exit_2_without_outputs(tmp_path: Path, tiny_model: Path, scans, nifti_writer) -> None:
    out = tmp_path / "out"
    base = ["segment", "--flair", str(scans["flair"]), "--out", str(out), "--model", str(tiny_model)]
    other = nifti_writer(tmp_path / "in" / "t1_other.nii.gz", np.zeros((40, 44, 35), np.float32), scans["affine"])
    _fails(base + ["--t1", str(other), "--preprocess", "no"], "differs from FLAIR", out)
    four_d = nifti_writer(tmp_path / "in" / "f4.nii.gz", np.zeros((40, 44, 36, 3), np.float32))
    _fails(["segment", "--flair", str(four_d), "--out", str(out), "--model", str(tiny_model)], "a 3D image is needed", out)
    fake = tmp_path / "fake_model"
    fake.mkdir()
    (fake / "model.json").write_text((tiny_model / "model.json").read_text())
    (fake / "model.safetensors").write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    _fails(base[:-1] + [str(fake)], "not a safetensors file", out)
    _fails(base + ["--flips", "3"], "test-time flips must be 1, 2 or 4, not 3", out)
    raw = nifti_writer(tmp_path / "in" / "raw.nii.gz", np.full((40, 44, 36), 7.0, np.float32), scans["affine"])
    _fails(
        ["segment", "--flair", str(raw), "--out", str(out), "--model", str(tiny_model), "--preprocess", "no"], "looks like a raw scan", out
    )
    # with preprocessing (the default), the same scan fails there, still as one line
    _fails(["segment", "--flair", str(raw), "--out", str(out), "--model", str(tiny_model)], "image is constant", out)
    _fails(base + ["--preprocess", "maybe"], "preprocess must be one of", out)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the output folder should be")
    result = runner.invoke(app, ["segment", "--flair", str(scans["flair"]), "--out", str(blocker / "o"), "--model", str(tiny_model)])
    assert result.exit_code == 2 and "cannot" in result.output


def test_model_spacing_grid_keeps_the_field_of_view() -> None:
    """The input's box at the model's voxel size: same outer corners, voxels of the model's size."""
    from mslesion.pipeline import model_spacing_grid

    affine = np.array([[-1.0, 0, 0, 80], [0, 1.0, 0, -100], [0, 0, 1.2, -60], [0, 0, 0, 1]])
    assert model_spacing_grid(affine, (40, 44, 36), (1.0, 1.0, 1.0)) is None  # within 0.2 mm
    new_affine, shape = model_spacing_grid(affine, (40, 44, 36), (2.0, 2.0, 2.0))
    assert shape == (20, 22, 22)  # 36 x 1.2 mm = 43.2 mm -> 22 voxels of 2 mm
    np.testing.assert_allclose(np.sqrt((new_affine[:3, :3] ** 2).sum(axis=0)), [2.0, 2.0, 2.0])
    corner = lambda a: a @ np.array([-0.5, -0.5, -0.5, 1.0])  # noqa: E731 - the outer corner of voxel 0
    np.testing.assert_allclose(corner(new_affine), corner(affine))


def test_a_coarser_model_segments_a_finer_scan_at_its_own_voxel_size(tmp_path: Path, tiny_model: Path, scans) -> None:
    """A 2 mm model on a 1 x 1 x 1.2 mm scan: inference on a 2 mm grid, outputs on the input grid."""
    card_path = tiny_model / "model.json"
    card = json.loads(card_path.read_text())
    card["spacing_mm"] = [2.0, 2.0, 2.0]
    card_path.write_text(json.dumps(card))
    out = tmp_path / "out"
    result = _segment_flair_t1(scans, out, tiny_model, flips=1)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resampled_to_model_spacing_mm"] == [2.0, 2.0, 2.0]
    assert not any("differs from the model" in w for w in summary["warnings"])
    prob = nib.load(str(out / "lesion_prob.nii.gz"))
    assert prob.shape == (40, 44, 36)
    np.testing.assert_allclose(prob.affine, scans["affine"], atol=1e-5)
    brain = np.asarray(nib.load(str(out / "brain_mask.nii.gz")).dataobj) > 0
    values = np.asarray(prob.dataobj)
    assert values[~brain].max() == 0.0 and 0.0 <= values.min() and values.max() <= 1.0
