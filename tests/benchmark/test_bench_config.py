"""Benchmark config validation: unknown keys and bad values are one-line InputErrors, merges are as documented."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mslesion.benchmark.config import Protocol, deep_merge, load_benchmark
from mslesion.errors import InputError


def test_valid_config_merges_base_training_and_method(tmp_path: Path, bench_yaml) -> None:
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump({"model": {"architecture": "unet"}, "optim": {"lr": 0.01}, "train": {"seed": 5}}))
    path = bench_yaml(
        base="base.yaml",
        methods=[
            {"name": "U", "train": {}},
            {"name": "SI", "train": {"model": {"architecture": "scanner-invariant", "params": {"aux": "pearson"}}, "train": {"seed": 9}}},
        ],
    )
    cfg = load_benchmark(path)
    assert cfg.protocol.kind is Protocol.LEAVE_SITE_OUT and cfg.protocol.datasets == ["tiny"]
    unet, si = cfg.methods
    assert unet.train["model"]["architecture"] == "unet" and unet.train["optim"]["lr"] == 0.01
    assert unet.train["train"] == {"seed": 1, "max_epochs": 1, "steps_per_epoch": 2, "num_threads": 1}  # training overrides base
    assert si.train["model"] == {"architecture": "scanner-invariant", "params": {"aux": "pearson"}}
    assert si.train["train"]["seed"] == 9 and si.train["train"]["max_epochs"] == 1  # method overrides training
    assert cfg.datasets["tiny"].path is not None and cfg.test_time.flips == 1


def test_deep_merge_replaces_lists_removes_nulls_and_keeps_inputs() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 0, "m": {"params": {"features": [8]}}}
    merged = deep_merge(base, {"a": {"c": [3]}, "e": 1, "m": None})
    assert merged == {"a": {"b": 1, "c": [3]}, "d": 0, "e": 1} and base["a"]["c"] == [1, 2]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"protocl": {}}, "unknown key(s) in 'benchmark': protocl"),
        ({"protocol": {"kind": "loso"}}, "protocol.kind must be one of"),
        ({"protocol": {"kind": "kfold", "k": 1}}, "protocol.k must be an integer >= 2"),
        ({"protocol": {"kind": "kfold", "folds_n": 3}}, "unknown key(s) in 'protocol': folds_n"),
        ({"protocol": {"kind": "leave-site-out", "datasets": ["nope"]}}, "protocol names dataset 'nope'"),
        ({"protocol": {"kind": "cross-dataset"}}, "cross-dataset needs protocol.folds"),
        ({"protocol": {"kind": "cross-dataset", "folds": [{"train": ["tiny"], "test": ["tiny"]}]}}, "both trained and tested"),
        ({"methods": []}, "'methods' must be a non-empty list"),
        ({"methods": [{"name": "a b"}]}, "name 'a b' must be letters"),
        ({"methods": [{"name": "A"}, {"name": "A"}]}, "method name 'A' appears twice"),
        ({"methods": [{"name": "A", "arch": "unet"}]}, "unknown key(s) in 'methods[0]': arch"),
        ({"methods": [{"name": "A", "train": {"model": {"architecture": "resnet"}}}]}, "unknown architecture 'resnet'"),
        ({"methods": [{"name": "A", "train": {"optim": {"learning_rate": 1}}}]}, "method A: unknown key(s) in 'optim': learning_rate"),
        ({"methods": [{"name": "A", "train": {"data": {"split": "kfold"}}}]}, "data.split must be holdout or none"),
        ({"methods": [{"name": "A", "train": {"loss": {"name": "dice2"}}}]}, "method A: unknown loss 'dice2'"),
        (
            {"methods": [{"name": "A", "train": {"model": {"architecture": "cen", "params": {"width": 3}}}}]},
            "method A: model.params do not fit cen",
        ),
        ({"datasets": {}}, "'datasets' is empty"),
        ({"datasets": {"s": {"synth": {"n": 2, "colour": 1}}}}, "unknown key(s) in 'datasets.s.synth': colour"),
        ({"datasets": {"s": {"path": "x", "synth": {}}}}, "exactly one of 'path' or 'synth'"),
        ({"test_time": {"flips": 3}}, "test_time.flips must be 1, 2 or 4"),
        ({"test_time": {"tta": 2}}, "unknown key(s) in 'test_time': tta"),
        ({"tables": {"metrics": ["dice", "accuracy"]}}, "unknown metric(s) accuracy"),
    ],
)
def test_bad_config_is_one_line_input_error(bench_yaml, overrides: dict, message: str) -> None:
    with pytest.raises(InputError) as err:
        load_benchmark(bench_yaml(**overrides))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_missing_and_non_mapping_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="config file not found"):
        load_benchmark(tmp_path / "none.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(InputError, match="must be a YAML mapping"):
        load_benchmark(tmp_path / "list.yaml")


@pytest.mark.parametrize("name", ["smoke.yaml", "aslani_leave_site_out.yaml", "cross_dataset.yaml"])
def test_shipped_configs_validate(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSLESION_SHARED_DATA", "/nowhere")  # paths are resolved, not opened, at validation
    cfg = load_benchmark(Path(__file__).resolve().parents[2] / "configs" / "benchmarks" / name)
    assert len(cfg.methods) >= 2
