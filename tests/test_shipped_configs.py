"""Every YAML config the repository ships loads and validates (a typo in one fails here, not hours into a run)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mslesion.benchmark.config import load_benchmark
from mslesion.train.config import load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("path", sorted(p for p in CONFIGS.rglob("*.yaml") if "benchmarks" not in p.parts), ids=lambda p: p.name)
def test_training_config_validates(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSLESION_SHARED_DATA", "/nonexistent")  # paths are not opened at validation
    raw = yaml.safe_load(path.read_text())
    if "ensemble" in raw:  # an ensemble recipe of benchmarks/real_accuracy.py: only member recipes, each valid
        assert set(raw) == {"ensemble"} and len(raw["ensemble"]) >= 2
        for member in raw["ensemble"]:
            assert load_config(CONFIGS.parent / member).data.datasets
        return
    cfg = load_config(path)
    assert cfg.data.datasets


@pytest.mark.parametrize("path", sorted((CONFIGS / "benchmarks").glob("*.yaml")), ids=lambda p: p.name)
def test_benchmark_config_validates(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSLESION_SHARED_DATA", "/nonexistent")
    cfg = load_benchmark(path)
    assert cfg.methods
