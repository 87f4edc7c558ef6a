"""Fixtures for cohort tests: a tiny BIDS cohort of 1.5 mm phantoms (one corrupt session) and a tiny model."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

AFFINE = np.diag([1.5, 1.5, 1.5, 1.0])  # 1.5 mm: as coarse as the pair pipeline takes without preprocessing
AFFINE[:3, 3] = (-18.0, -19.5, -16.5)


def phantom(seed: int, shape: tuple[int, int, int] = (24, 26, 22), blobs: int = 2) -> np.ndarray:
    """A skull-stripped FLAIR-like ellipsoid with bright blobs, 1.5 mm voxels (seeded)."""
    rng = np.random.default_rng(seed)
    grid = np.indices(shape).transpose(1, 2, 3, 0)
    centre = np.asarray(shape) / 2
    brain = np.linalg.norm((grid - centre) / (centre - 2), axis=-1) < 1
    lesion = np.zeros(shape, bool)
    for _ in range(blobs):
        lesion |= np.linalg.norm(grid - rng.integers(np.asarray(shape) // 3, 2 * np.asarray(shape) // 3), axis=-1) < 2
    return ((rng.normal(100, 5, shape) + 80 * lesion) * brain).astype(np.float32)


def write(path: Path, array: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, affine), str(path))
    return path


@pytest.fixture
def cohort(tmp_path: Path) -> Path:
    """sub-01 and sub-02 with ses-01/ses-02 (FLAIR + T1w), sub-03 with a good ses-01 and a corrupt ses-02 FLAIR."""
    bids = tmp_path / "bids"
    bids.mkdir()
    (bids / "dataset_description.json").write_text('{"Name": "tiny", "BIDSVersion": "1.9.0"}')
    (bids / "participants.tsv").write_text("participant_id\tsite\nsub-01\tA\nsub-02\tB\nsub-03\tA\n")
    for i, sub in enumerate(("sub-01", "sub-02", "sub-03")):
        for j, ses in enumerate(("ses-01", "ses-02")):
            anat = bids / sub / ses / "anat"
            flair = phantom(10 * i + j, blobs=2 + j)
            write(anat / f"{sub}_{ses}_FLAIR.nii.gz", flair)
            write(anat / f"{sub}_{ses}_T1w.nii.gz", flair[::-1].copy())
    (bids / "sub-03" / "ses-02" / "anat" / "sub-03_ses-02_FLAIR.nii.gz").write_bytes(b"\x1f\x8b not really gzip")
    return bids


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    """A random-weight 2-contrast U-Net for 1.5 mm voxels (as tests/test_segment.py's): fast, no resampling."""
    import torch

    from mslesion.models.registry import build_network
    from mslesion.models.store import ModelCard, save_model

    torch.manual_seed(0)
    params = {"features": [4, 4, 8, 8, 16, 4]}
    net = build_network("unet", 2, params)
    card = ModelCard(
        architecture="unet",
        contrasts=["FLAIR", "T1"],
        params=params,
        patch_size=(32, 32, 32),
        threshold=0.5,
        min_lesion_mm3=3.0,
        spacing_mm=(1.5, 1.5, 1.5),
    )
    return save_model(net.state_dict(), card, tmp_path / "model")


def require_ray():
    """Ray, or a skip; under CI=true a missing Ray fails (CI installs it with the test extra)."""
    if os.environ.get("CI", "").lower() == "true":
        import ray
    else:
        ray = pytest.importorskip("ray")
    return ray


@pytest.fixture(scope="session")
def ray_cluster():
    """A 2-CPU Ray on this machine, started once for the session's Ray tests (RAY_ADDRESS: join that one instead)."""
    ray = require_ray()
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], logging_level="WARNING")
    else:
        for attempt in range(3):  # on a busy machine Ray's agents can miss its 15 s start-up window: try again
            try:
                ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
                break
            except Exception:
                ray.shutdown()
                if attempt == 2:
                    raise
    yield ray
    ray.shutdown()


@pytest.fixture
def add_session():
    """Write one more session's FLAIR into a BIDS folder: add_session(bids, subject, session, seed)."""

    def add(bids: Path, subject: str, session: str, seed: int) -> Path:
        return write(bids / subject / session / "anat" / f"{subject}_{session}_FLAIR.nii.gz", phantom(seed, blobs=4))

    return add
