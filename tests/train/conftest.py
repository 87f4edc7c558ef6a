"""Fixtures for training tests: a tiny two-site dataset on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def tiny_dataset(tmp_path: Path, nifti_writer) -> Path:
    """Six 40^3 cases on two sites: bright FLAIR blobs are the lesions."""
    rng = np.random.default_rng(0)
    rows = ["case_id,site,FLAIR,T1,lesion"]
    grid = np.indices((40, 40, 40)).transpose(1, 2, 3, 0)
    for i in range(6):
        lesion = np.zeros((40, 40, 40), np.uint8)
        for _ in range(3):
            c = rng.integers(10, 30, 3)
            lesion[np.linalg.norm(grid - c, axis=-1) < rng.uniform(2, 4)] = 1
        brain = np.linalg.norm(grid - 20, axis=-1) < 18
        flair = (rng.normal(100, 5, lesion.shape) + 60 * lesion) * brain
        t1 = (rng.normal(100, 5, lesion.shape) - 30 * lesion) * brain
        for name, arr in (("FLAIR", flair), ("T1", t1), ("lesion", lesion)):
            nifti_writer(tmp_path / "data" / f"c{i}" / f"{name}.nii.gz", arr.astype(np.float32 if name != "lesion" else np.uint8))
        rows.append(f"c{i},{'A' if i < 3 else 'B'},c{i}/FLAIR.nii.gz,c{i}/T1.nii.gz,c{i}/lesion.nii.gz")
    (tmp_path / "data" / "manifest.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "data"
