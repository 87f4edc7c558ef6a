"""Fixtures for benchmark tests: a benchmark YAML writer over the `tiny_dataset` of tests/conftest.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

TINY_TRAINING = {
    "data": {"contrasts": ["FLAIR", "T1"], "split": "holdout", "val_fraction": 0.2},
    "patch": {"size": [32, 32, 32], "batch_size": 2},
    "augment": {"affine": 0.0},
    "optim": {"warmup_steps": 0},
    "train": {"max_epochs": 1, "steps_per_epoch": 2, "seed": 1, "num_threads": 1},
    "infer": {"thresholds": [0.3, 0.5], "min_lesion_mm3": 0.0},
}


@pytest.fixture
def bench_yaml(tmp_path: Path) -> Callable[..., Path]:
    """Write a benchmark YAML over tmp_path/data, where `tiny_dataset` writes its cases (leave-site-out,
    one tiny BM method), with top-level overrides. Validation alone does not open the data."""

    def write(**overrides: Any) -> Path:
        raw: dict[str, Any] = {
            "name": "tiny",
            "datasets": {"tiny": str(tmp_path / "data")},
            "training": TINY_TRAINING,
            "methods": [{"name": "BM", "train": {"model": {"architecture": "unet-bm", "params": {"features": [4, 8, 8, 8, 8]}}}}],
            "protocol": {"kind": "leave-site-out"},
            "test_time": {"flips": 1},
        }
        raw.update(overrides)
        path = tmp_path / "bench.yaml"
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        return path

    return write
