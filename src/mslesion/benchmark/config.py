"""Benchmark configuration: datasets, methods, protocol and test-time settings, validated up front.

A benchmark YAML names the data once, the methods as overlays on one base training
config (`configs/*.yaml`), and the protocol that splits cases into folds. Unknown keys
are errors, as in `train/config.py`: a typo must not silently benchmark with a default.
Every method's training config is built and validated here, before any training starts.
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from mslesion.errors import InputError
from mslesion.models.store import is_test_time_flips
from mslesion.train.config import read_yaml_mapping

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")  # also a folder name
SYNTH_KEYS = {"n", "sites", "seed", "resolution", "lesion_masks", "deform"}
# What the tables show by default: the papers' per-case metrics (see docs/metrics.md).
DEFAULT_METRICS = ["dice", "ppv", "tpr", "lesion_f1_isbi", "msseg_lesion_f1", "ltpr", "lfpr", "avd_isbi", "hd95_mm"]


class Protocol(StrEnum):
    """How cases are split into (train, test) folds."""

    KFOLD = "kfold"
    LEAVE_SITE_OUT = "leave-site-out"
    CROSS_DATASET = "cross-dataset"


@dataclass
class DatasetSpec:
    """A dataset on disk (`path`), or one the harness synthesises into OUT/data/<name> (`synth`)."""

    name: str
    path: Path | None = None
    synth: dict[str, Any] | None = None


@dataclass
class MethodSpec:
    """A method: its name and its full training config as a raw mapping (validated)."""

    name: str
    train: dict[str, Any]


@dataclass
class CrossFold:
    """Cross-dataset fold: train on `train` datasets, test on `test` datasets."""

    train: list[str]
    test: list[str]
    name: str = ""


@dataclass
class ProtocolSpec:
    """The split of cases into folds; identical for every method."""

    kind: Protocol
    datasets: list[str] = field(default_factory=list)  # kfold / leave-site-out: whose cases take part
    k: int = 5
    seed: int = 0
    sites: list[str] = field(default_factory=list)  # leave-site-out: sites held out in turn (empty = all)
    folds: list[CrossFold] = field(default_factory=list)  # cross-dataset
    consistency: list[str] = field(default_factory=list)  # datasets every fold's model also segments


@dataclass
class TestTimeSpec:
    """How test cases are segmented (passed to `pipeline.segment`)."""

    flips: int = 1
    overlap: float = 0.25


@dataclass
class TablesSpec:
    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))
    site_metrics: list[str] = field(default_factory=lambda: ["dice"])


@dataclass
class BenchmarkConfig:
    """A validated benchmark: everything `run_benchmark` needs."""

    name: str
    source: Path
    datasets: dict[str, DatasetSpec]
    methods: list[MethodSpec]
    protocol: ProtocolSpec
    test_time: TestTimeSpec
    tables: TablesSpec


TOP_KEYS = {"name", "datasets", "base", "training", "methods", "protocol", "test_time", "tables"}


def _mapping(value: Any, where: str, source: Path) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(source, f"{where!r} must be a mapping")
    return value


def _check_keys(values: dict[str, Any], known: set[str], where: str, source: Path) -> None:
    unknown = sorted(set(values) - known)
    if unknown:
        raise InputError(source, f"unknown key(s) in {where!r}: {', '.join(unknown)} (known: {', '.join(sorted(known))})")


def _check_name(name: Any, where: str, source: Path) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise InputError(source, f"{where}: name {name!r} must be letters, digits, '_', '.', '+' or '-'")
    return name


def _resolve(entry: str, base: Path) -> Path:
    """Expand ${VARS}; relative paths are relative to the YAML file's folder."""
    expanded = Path(os.path.expandvars(str(entry)))
    return expanded if expanded.is_absolute() else (base / expanded).resolve()


def deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """`overlay` on `base` (JSON merge patch, RFC 7386): mappings merge key by key, null removes
    the key (back to the default), anything else (lists too) replaces."""
    merged = copy.deepcopy(base)
    for key, value in overlay.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _training_yaml(path: Path) -> dict[str, Any]:
    """A training YAML as a raw mapping, its validation-only dataset paths made absolute."""
    raw = read_yaml_mapping(path)
    data = _mapping(raw.get("data"), "data", path)
    if data.get("val_datasets"):
        data["val_datasets"] = [str(_resolve(p, path.parent)) for p in data["val_datasets"]]
    return raw


def _datasets(raw: Any, source: Path) -> dict[str, DatasetSpec]:
    raw = _mapping(raw, "datasets", source)
    if not raw:
        raise InputError(source, "'datasets' is empty")
    specs = {}
    for name, value in raw.items():
        _check_name(name, "datasets", source)
        if isinstance(value, str):
            value = {"path": value}
        value = _mapping(value, f"datasets.{name}", source)
        _check_keys(value, {"path", "synth"}, f"datasets.{name}", source)
        if ("path" in value) == ("synth" in value):
            raise InputError(source, f"datasets.{name} needs exactly one of 'path' or 'synth'")
        if "synth" in value:
            synth = _mapping(value["synth"], f"datasets.{name}.synth", source)
            _check_keys(synth, SYNTH_KEYS, f"datasets.{name}.synth", source)
            if "lesion_masks" in synth:
                synth = {**synth, "lesion_masks": str(_resolve(synth["lesion_masks"], source.parent))}
            specs[name] = DatasetSpec(name, synth=synth)
        else:
            specs[name] = DatasetSpec(name, path=_resolve(value["path"], source.parent))
    return specs


def _methods(raw: dict[str, Any], source: Path) -> list[MethodSpec]:
    base: dict[str, Any] = _training_yaml(_resolve(raw["base"], source.parent)) if raw.get("base") else {}
    common = _mapping(raw.get("training"), "training", source)
    entries = raw.get("methods")
    if not isinstance(entries, list) or not entries:
        raise InputError(source, "'methods' must be a non-empty list")
    methods: list[MethodSpec] = []
    for i, entry in enumerate(entries):
        entry = _mapping(entry, f"methods[{i}]", source)
        _check_keys(entry, {"name", "config", "train"}, f"methods[{i}]", source)
        name = _check_name(entry.get("name"), f"methods[{i}]", source)
        if name in {m.name for m in methods}:
            raise InputError(source, f"method name {name!r} appears twice")
        start = _training_yaml(_resolve(entry["config"], source.parent)) if entry.get("config") else base
        train = deep_merge(deep_merge(start, common), _mapping(entry.get("train"), f"methods[{i}].train", source))
        _check_training(name, train, source)
        methods.append(MethodSpec(name, train))
    return methods


def _check_training(name: str, train: dict[str, Any], source: Path) -> None:
    """Validate a method's training config as `mslesion train` does (which builds its network once),
    so a wrong architecture, loss or model.params fails now rather than hours into a benchmark."""
    from mslesion.train.config import config_from_dict

    data = _mapping(train.get("data"), f"methods.{name}.data", source)
    placeholder = ["."] * max(1, len(data.get("dataset_weights") or []))  # the harness fills datasets per fold
    try:
        cfg = config_from_dict({**train, "data": {**data, "datasets": placeholder}}, source)
    except InputError as exc:
        raise InputError(source, f"method {name}: {exc.problem}") from None
    if cfg.data.split not in ("holdout", "none"):
        raise InputError(source, f"method {name}: data.split must be holdout or none inside a benchmark fold, not {cfg.data.split!r}")


def _protocol(raw: Any, datasets: dict[str, DatasetSpec], source: Path) -> ProtocolSpec:
    raw = dict(_mapping(raw, "protocol", source))
    _check_keys(raw, {"kind", "datasets", "k", "seed", "sites", "folds", "consistency"}, "protocol", source)
    kinds = ", ".join(p.value for p in Protocol)
    if raw.get("kind") not in {p.value for p in Protocol}:
        raise InputError(source, f"protocol.kind must be one of {kinds}, not {raw.get('kind')!r}")
    kind = Protocol(raw.pop("kind"))
    folds = []
    for i, fold in enumerate(raw.pop("folds", None) or []):
        fold = _mapping(fold, f"protocol.folds[{i}]", source)
        _check_keys(fold, {"name", "train", "test"}, f"protocol.folds[{i}]", source)
        name = _check_name(fold["name"], f"protocol.folds[{i}]", source) if "name" in fold else ""
        folds.append(CrossFold(list(fold.get("train") or []), list(fold.get("test") or []), name))
    spec = ProtocolSpec(kind=kind, folds=folds, **raw)
    for name in spec.datasets + spec.consistency + [d for f in folds for d in f.train + f.test]:
        if name not in datasets:
            raise InputError(source, f"protocol names dataset {name!r}, not in 'datasets' ({', '.join(datasets)})")
    if kind is Protocol.CROSS_DATASET:
        if not folds or any(not f.train or not f.test for f in folds):
            raise InputError(source, "cross-dataset needs protocol.folds: a list of {train: [datasets], test: [datasets]}")
        if any(set(f.train) & set(f.test) for f in folds):
            raise InputError(source, "cross-dataset: a dataset cannot be both trained and tested on in one fold")
        if spec.datasets or spec.sites:
            raise InputError(source, "cross-dataset takes protocol.folds, not protocol.datasets or protocol.sites")
    else:
        if folds:
            raise InputError(source, f"protocol.folds is for cross-dataset, not {kind.value}")
        spec.datasets = spec.datasets or [n for n in datasets if n not in spec.consistency]
        if set(spec.datasets) & set(spec.consistency):
            raise InputError(source, "a dataset cannot be both in protocol.datasets and protocol.consistency")
    if kind is Protocol.KFOLD and (not isinstance(spec.k, int) or spec.k < 2):
        raise InputError(source, f"protocol.k must be an integer >= 2, not {spec.k!r}")
    return spec


def _test_time(raw: Any, source: Path) -> TestTimeSpec:
    raw = _mapping(raw, "test_time", source)
    _check_keys(raw, {"flips", "overlap"}, "test_time", source)
    spec = TestTimeSpec(**raw)
    if not is_test_time_flips(spec.flips):
        raise InputError(source, f"test_time.flips must be 1, 2 or 4, not {spec.flips!r}")
    if not 0 <= spec.overlap < 1:
        raise InputError(source, f"test_time.overlap must be in [0, 1), not {spec.overlap!r}")
    return spec


def _tables(raw: Any, source: Path) -> TablesSpec:
    from mslesion.evaluate.case_metrics import CASE_COLUMNS

    raw = _mapping(raw, "tables", source)
    _check_keys(raw, {"metrics", "site_metrics"}, "tables", source)
    spec = TablesSpec(**raw)
    bad = [m for m in spec.metrics + spec.site_metrics if m not in CASE_COLUMNS]
    if bad or not spec.metrics:
        raise InputError(source, f"tables: unknown metric(s) {', '.join(bad) or '(none given)'} (see docs/metrics.md)")
    return spec


def load_benchmark(path: str | Path) -> BenchmarkConfig:
    """Read and validate a benchmark YAML, including every method's training config."""
    source = Path(path).resolve()
    raw = read_yaml_mapping(source)
    _check_keys(raw, TOP_KEYS, "benchmark", source)
    datasets = _datasets(raw.get("datasets"), source)
    methods = _methods(raw, source)
    name = raw.get("name", source.stem)
    return BenchmarkConfig(
        name=str(name),
        source=source,
        datasets=datasets,
        methods=methods,
        protocol=_protocol(raw.get("protocol"), datasets, source),
        test_time=_test_time(raw.get("test_time"), source),
        tables=_tables(raw.get("tables"), source),
    )
