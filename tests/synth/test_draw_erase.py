"""Draw-and-Erase pairs from one scan (synth/draw_erase.py): label, erase, draw, determinism, dataset, CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from mslesion.synth.draw_erase import DrawEraseOptions, make_draw_erase_pair, write_draw_erase_pairs
from mslesion.synth.library import RealComponent

CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)
CLEAN = DrawEraseOptions(p_stable=0.0, p_erase=1.0, degrade=False, misregister=False)


def _scan(seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """A 48^3 'scan': WM block at 100 (T1 120), GM shell at 80 (T1 90), noise sd 2; five cube lesions in WM."""
    rng = np.random.default_rng(seed)
    shape = (48, 48, 48)
    brain = np.zeros(shape, bool)
    brain[4:44, 4:44, 4:44] = True
    wm = np.zeros(shape, bool)
    wm[9:39, 9:39, 9:39] = True
    lesion = np.zeros(shape, bool)
    for corner, size in (((12, 12, 12), 3), ((12, 30, 14), 4), ((28, 12, 30), 3), ((30, 30, 30), 5), ((20, 22, 12), 2)):
        lesion[tuple(slice(c, c + size) for c in corner)] = True
    flair = np.where(wm, 100.0, 80.0) + rng.normal(0, 2, shape) + 40.0 * lesion
    t1 = np.where(wm, 120.0, 90.0) + rng.normal(0, 2, shape) - 30.0 * lesion
    images = {"FLAIR": (flair * brain).astype(np.float32), "T1": (t1 * brain).astype(np.float32)}
    return images, lesion, brain, wm


def _shapes() -> list[RealComponent]:
    """Small ball-like lesion shapes (7 to 123 voxels); positions out of the scan, so they are placed at random."""
    grid = np.indices((7, 7, 7)) - 3
    out = []
    for k, radius in enumerate((1.0, 1.5, 2.0, 2.5, 3.0)):
        mask = (grid**2).sum(axis=0) <= radius**2
        out.append(RealComponent(donor="donor", label=k + 1, start=(100, 100, 100), mask=mask[:, :, :]))
    return out


@pytest.fixture(scope="module")
def scan():
    return _scan()


@pytest.fixture(scope="module")
def clean_pairs(scan):
    images, lesion, brain, wm = scan
    return [
        make_draw_erase_pair(images, lesion, brain, _shapes(), np.random.default_rng(s), 1.0, white_matter=wm, options=CLEAN)
        for s in range(6)
    ]


def test_label_is_erased_union_drawn(scan, clean_pairs) -> None:
    images, lesion, _, _ = scan
    labels, _ = ndi.label(lesion, structure=CONNECTIVITY)
    for pair in clean_pairs:
        erased = lesion & (pair.baseline_lesion == 0)
        drawn = (pair.followup_lesion > 0) & ~lesion
        assert pair.new_lesion.dtype == np.uint8
        np.testing.assert_array_equal(pair.new_lesion > 0, erased | drawn)
        assert not (pair.followup_lesion == 0)[lesion].any()  # existing lesions stay at follow-up
        for k in np.unique(labels[erased]):  # whole components are erased
            assert erased[labels == k].all()
        assert not (ndi.binary_dilation(lesion, iterations=1) & drawn).any()  # drawn lesions are new, not enlarging
        assert pair.meta["n_new_lesions"] == len(pair.meta["erased"]) + len(pair.meta["drawn"])
    assert sum(len(p.meta["erased"]) for p in clean_pairs) > 0
    assert sum(len(p.meta["drawn"]) for p in clean_pairs) > 0


def test_erased_lesions_look_like_surrounding_tissue_at_baseline_only(scan, clean_pairs) -> None:
    images, lesion, brain, wm = scan
    for pair in clean_pairs:
        erased = lesion & (pair.baseline_lesion == 0)
        if not erased.any():
            continue
        ring = ndi.binary_dilation(erased, iterations=4) & ~ndi.binary_dilation(lesion, iterations=1) & wm & brain
        for c, img in images.items():
            normal = img[ring]
            filled = pair.baseline_images[c][erased]
            assert abs(filled.mean() - normal.mean()) < normal.std()
            assert 0.4 * normal.std() < filled.std() < 2.0 * normal.std()  # textured, not a smooth fill
            np.testing.assert_array_equal(pair.followup_images[c][erased], img[erased])


def test_drawn_lesions_have_the_ratio_and_baseline_is_untouched(scan, clean_pairs) -> None:
    images, lesion, _, _ = scan
    n = 0
    for pair in clean_pairs:
        drawn = (pair.followup_lesion > 0) & ~lesion
        if not drawn.any():
            continue
        n += 1
        flair = pair.followup_images["FLAIR"][drawn] / images["FLAIR"][drawn]
        t1 = pair.followup_images["T1"][drawn] / images["T1"][drawn]
        assert flair.min() >= 1.15 - 1e-4 and flair.max() <= 1.5 + 1e-4
        assert t1.min() >= 0.85 - 1e-4 and t1.max() <= 0.97 + 1e-4
        np.testing.assert_array_equal(pair.baseline_images["FLAIR"][drawn], images["FLAIR"][drawn])
        far = ndi.distance_transform_edt(~drawn) > 4
        np.testing.assert_array_equal(pair.followup_images["FLAIR"][far], images["FLAIR"][far])
    assert n > 0


def test_stable_pairs_have_an_empty_label_but_still_differ(scan) -> None:
    images, lesion, brain, wm = scan
    pair = make_draw_erase_pair(
        images, lesion, brain, _shapes(), np.random.default_rng(3), 1.0, white_matter=wm, options=DrawEraseOptions(p_stable=1.0)
    )
    assert pair.meta["stable"] and pair.new_lesion.sum() == 0
    np.testing.assert_array_equal(pair.baseline_lesion, lesion.astype(np.uint8))
    np.testing.assert_array_equal(pair.followup_lesion, lesion.astype(np.uint8))
    assert not np.allclose(pair.baseline_images["FLAIR"], pair.followup_images["FLAIR"])
    assert pair.meta["misregistration"] is not None and set(pair.meta["degradations"]) == {"baseline", "followup"}


def test_same_seed_same_pair(scan) -> None:
    images, lesion, brain, wm = scan
    a, b = (
        make_draw_erase_pair(
            images, lesion, brain, _shapes(), np.random.default_rng(11), 1.0, white_matter=wm, options=DrawEraseOptions(p_stable=0.0)
        )
        for _ in range(2)
    )
    for c in images:
        np.testing.assert_array_equal(a.baseline_images[c], b.baseline_images[c])
        np.testing.assert_array_equal(a.followup_images[c], b.followup_images[c])
    np.testing.assert_array_equal(a.new_lesion, b.new_lesion)
    assert a.meta == b.meta


def test_written_dataset_loads_with_pair_image_names(tmp_path: Path, nifti_writer, monkeypatch) -> None:
    """The writer on a tiny case: the MNI grid check and the WM prior are stubbed (they need the 1 mm template)."""
    import mslesion.space.grid as grid
    import mslesion.space.priors as priors
    import mslesion.synth.library as library
    from mslesion.io.dataset import load_dataset

    images, lesion, brain, wm = _scan(1)
    affine = np.eye(4)
    for name, arr in {**images, "lesion": lesion.astype(np.uint8)}.items():
        nifti_writer(tmp_path / "src" / "pt01" / f"{name}.nii.gz", arr, affine)
    monkeypatch.setattr(grid, "FSL_MNI_SHAPE", lesion.shape)
    monkeypatch.setattr(grid, "FSL_MNI_AFFINE", affine)
    monkeypatch.setattr(priors, "mni_tissues_1mm", lambda: {"wm": wm.astype(np.float32)})
    shapes = library.LesionLibrary(folder=tmp_path, donors=("d1_lesion",), components=(tuple(_shapes()),))
    monkeypatch.setattr(library, "load_lesion_library", lambda folder: shapes)

    manifest = write_draw_erase_pairs(tmp_path / "src" / "pt01", tmp_path, tmp_path / "out", n=3, seed=5)
    cases = load_dataset(tmp_path / "out")
    assert manifest.name == "manifest.csv" and (tmp_path / "out" / "pairs.json").is_file()
    assert [c.case_id for c in cases] == ["pt01-de-0000", "pt01-de-0001", "pt01-de-0002"]
    for case in cases:
        assert set(case.images) == {"baseline_FLAIR", "followup_FLAIR", "baseline_T1", "followup_T1"}
        assert case.meta.site == "drawerase-pt01" and case.meta.subject == "pt01"
        base, follow = (case.extra_masks[k].array > 0 for k in ("baseline_lesion", "followup_lesion"))
        np.testing.assert_array_equal(case.lesion.array > 0, follow & ~base)
        assert (case.brain.array > 0).sum() == brain.sum()
        assert (tmp_path / "out" / case.case_id / "pair.json").is_file()


def test_cli_pairs_from_excludes_other_modes(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mslesion.cli import app

    base = ["synth", "--pairs-from", str(tmp_path), "--lesion-masks", str(tmp_path), "--out", str(tmp_path / "o")]
    for extra in (["--longitudinal"], ["--implant-into", str(tmp_path)]):
        result = CliRunner().invoke(app, base + extra)
        assert result.exit_code == 2
        assert "--pairs-from" in result.output and len(result.output.strip().splitlines()) == 1


@pytest.mark.shared_data
def test_two_real_pairs_from_patient19(shared_data: Path, tmp_path: Path) -> None:
    from mslesion.io.dataset import load_dataset

    write_draw_erase_pairs(shared_data / "lesjak-mni" / "patient19", shared_data / "lesjak-mni-masks", tmp_path / "de", n=2, seed=0)
    cases = load_dataset(tmp_path / "de")
    assert len(cases) == 2
    for case in cases:
        assert case.images["followup_FLAIR"].shape == (182, 218, 182)
        base, follow = (case.extra_masks[k].array > 0 for k in ("baseline_lesion", "followup_lesion"))
        np.testing.assert_array_equal(case.lesion.array > 0, follow & ~base)


def test_cli_implant_into_excludes_pair_modes(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mslesion.cli import app

    base = ["synth", "--implant-into", str(tmp_path), "--lesion-masks", str(tmp_path), "--out", str(tmp_path / "o")]
    for extra in (["--longitudinal"], ["--bids"]):
        result = CliRunner().invoke(app, base + extra)
        assert result.exit_code == 2 and "--implant-into cannot be combined" in result.output
