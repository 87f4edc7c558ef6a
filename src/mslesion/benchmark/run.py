"""`mslesion benchmark --config BENCH.yaml --out DIR [--resume]`: train, segment and score every method on every fold.

Each (method, fold) re-uses the toolkit's own stages: `train.run.run_training` on a
training config written for the fold (its test cases in `data.exclude`), `pipeline.segment`
on every test case, `evaluate.runner.evaluate_pairs` against the reference masks. OUT holds:

    benchmark.yaml, folds.json        the validated config and the folds (same for every method)
    data/<name>/                      datasets the harness synthesised
    runs/<method>/<fold>/             train.yaml, train/ (the training run), pred/<dataset>/<case>/,
                                      metrics.csv (written last: the fold is done), summary.json
    metrics.csv                       every per-case row of every method and fold
    summary.md, tables/*.csv, tables/<setting>/<metric>.png   (written by results.py)

With `--resume`, finished folds are skipped, a training run with a checkpoint continues
from it, and cases already segmented are not segmented again.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from pathlib import Path
from typing import Any

from mslesion.benchmark.config import BenchmarkConfig, MethodSpec, Protocol, deep_merge, load_benchmark
from mslesion.benchmark.protocol import CaseKey, Fold, build_folds, prediction_path, usable
from mslesion.errors import InputError
from mslesion.io.atomic import write_csv_atomic, write_json_atomic, write_text_atomic
from mslesion.io.case import Case
from mslesion.train.config import DataConfig

logger = logging.getLogger(__name__)

ID_COLUMNS = ["method", "fold", "setting", "role", "dataset", "case_id", "site"]


# ------------------------------------------------------------------------------ data


def prepare_datasets(cfg: BenchmarkConfig, out: Path) -> dict[str, Path]:
    """Dataset name -> path; synthetic datasets are made once into OUT/data/<name> (kept on resume)."""
    from mslesion.synth import make_dataset

    paths = {}
    for name, spec in cfg.datasets.items():
        if spec.path is not None:
            paths[name] = spec.path
            continue
        target, params = out / "data" / name, dict(spec.synth or {})
        record = target / "benchmark_synth.json"
        if (target / "manifest.csv").is_file() and record.is_file():
            if json.loads(record.read_text()) != params:
                raise InputError(target, f"was synthesised with other settings than datasets.{name}.synth; use another --out")
        else:
            logger.info("synthesising dataset %s into %s", name, target)
            make_dataset(
                target,
                n=int(params.get("n", 8)),
                seed=int(params.get("seed", 0)),
                n_sites=int(params.get("sites", 2)),
                lesion_masks_dir=params.get("lesion_masks"),
                resolution_mm=float(params.get("resolution", 1.0)),
                deform=bool(params.get("deform", True)),
            )
            write_json_atomic(record, params)
        paths[name] = target.resolve()  # training configs live elsewhere: a relative --out would break
    return paths


def load_cases(paths: dict[str, Path]) -> dict[str, list[Case]]:
    """Usable cases (FLAIR + lesion mask) of every dataset."""
    from mslesion.io.dataset import load_dataset

    cases = {name: usable(load_dataset(path)) for name, path in paths.items()}
    for name, found in cases.items():
        if not found:
            raise InputError(paths[name], "no case with FLAIR and a lesion mask")
    return cases


# ------------------------------------------------------------------------------ one fold


def fold_train_config(method: MethodSpec, fold: Fold, paths: dict[str, Path]) -> dict[str, Any]:
    """The method's training config for this fold: its datasets, its test cases excluded."""
    data = method.train.get("data", {})
    overlay = {"data": {"datasets": [str(paths[d]) for d in fold.train_datasets], "exclude": list(data.get("exclude", [])) + fold.exclude}}
    return deep_merge(method.train, overlay)


def _write_train_yaml(path: Path, config: dict[str, Any]) -> None:
    """Write the fold's training YAML; refuse to continue a fold whose config has changed."""
    import yaml

    text = yaml.safe_dump(config, sort_keys=False)
    if path.is_file() and path.read_text(encoding="utf-8") != text:
        raise InputError(path, "this method's training config changed since the fold started; remove its runs/ folder or use another --out")
    write_text_atomic(path, text)


def _train(fold_dir: Path) -> dict[str, Any]:
    """Train (or continue training) the fold's model; a finished run is not touched."""
    from mslesion.train.run import run_training

    run_dir = fold_dir / "train"
    if (run_dir / "summary.json").is_file():
        return json.loads((run_dir / "summary.json").read_text())
    return run_training(fold_dir / "train.yaml", run_dir, resume=(run_dir / "checkpoint").exists())


def _segment(case: Case, contrasts: list[str], model: Path, out: Path, cfg: BenchmarkConfig) -> None:
    """Segment one case with the fold's model (skipped when its summary.json, written last, exists)."""
    from mslesion.pipeline import segment

    if (out / "summary.json").is_file():
        return
    paths = {c: case.images[c].path for c in contrasts if c in case.images}
    images = {c: p for c, p in paths.items() if p is not None}
    if len(images) != len(paths):
        raise InputError(None, f"case {case.case_id}: images must be files on disk")
    brain = case.brain.path if case.brain is not None else None
    segment(images, out, model=model, brain_mask=brain, flips=cfg.test_time.flips, overlap=cfg.test_time.overlap)


def _setting(cfg: BenchmarkConfig, fold: Fold, dataset: str, role: str) -> str:
    """The test set a row belongs to: pooled over folds for k-fold/leave-site-out, per fold and dataset otherwise."""
    if role == "test" and cfg.protocol.kind is not Protocol.CROSS_DATASET:
        return cfg.protocol.kind.value
    return f"{fold.name} -> {dataset}"


def _evaluate(cfg: BenchmarkConfig, method: str, fold: Fold, fold_dir: Path, cases: dict[CaseKey, Case]) -> list[dict[str, Any]]:
    from mslesion.evaluate.runner import evaluate_pairs
    from mslesion.io.matching import MaskEntry
    from mslesion.io.volume import load_volume

    rows = []
    for role, keys in (("test", fold.test), ("consistency", fold.consistency)):
        for key in keys:
            case = cases[key]
            assert case.lesion is not None  # load_cases keeps usable cases only, each with a lesion mask
            pred = MaskEntry(case.case_id, load_volume(prediction_path(fold_dir, key)))
            (row,), _ = evaluate_pairs([(pred, MaskEntry(case.case_id, case.lesion, case.meta.site))])
            ids = {"method": method, "fold": fold.name, "setting": _setting(cfg, fold, key[0], role), "role": role, "dataset": key[0]}
            rows.append({**ids, **row})
    return rows


def run_fold(
    cfg: BenchmarkConfig, method: MethodSpec, fold: Fold, paths: dict[str, Path], cases: dict[CaseKey, Case], fold_dir: Path
) -> None:
    """Train, segment and score one (method, fold) unless its metrics.csv already exists."""
    from mslesion.evaluate.case_metrics import CASE_COLUMNS

    if (fold_dir / "metrics.csv").is_file():
        logger.info("%s / %s: done earlier, skipped", method.name, fold.name)
        return
    config = fold_train_config(method, fold, paths)
    _write_train_yaml(fold_dir / "train.yaml", config)
    started = time.perf_counter()
    logger.info("%s / %s: training on %s (%d case(s) held out)", method.name, fold.name, "+".join(fold.train_datasets), len(fold.exclude))
    training = _train(fold_dir)
    trained = time.perf_counter()
    model = fold_dir / "train" / "model"
    if not (model / "model.json").is_file():
        raise InputError(model, "training saved no model (no validation epoch finished?)")
    contrasts = list(config.get("data", {}).get("contrasts") or DataConfig().contrasts)
    keys = fold.test + fold.consistency
    logger.info("%s / %s: segmenting %d case(s)", method.name, fold.name, len(keys))
    for key in keys:
        _segment(cases[key], contrasts, model, prediction_path(fold_dir, key).parent, cfg)
    segmented = time.perf_counter()
    rows = _evaluate(cfg, method.name, fold, fold_dir, cases)
    write_json_atomic(
        fold_dir / "summary.json",
        {
            "method": method.name,
            "fold": fold.to_dict(),
            "training": training,
            "train_seconds_this_run": round(trained - started, 1),
            "segment_seconds_per_case": round((segmented - trained) / max(1, len(keys)), 2),
        },
    )
    write_csv_atomic(fold_dir / "metrics.csv", rows, ID_COLUMNS + list(CASE_COLUMNS))


# ------------------------------------------------------------------------------ results


def _parse(value: str) -> Any:
    try:
        return float(value)
    except ValueError:
        return value


def read_rows(path: Path) -> list[dict[str, Any]]:
    """A metrics.csv back as dicts (numbers as floats, the rest as text)."""
    with path.open(newline="") as fh:
        return [{k: v if k in ID_COLUMNS else _parse(v) for k, v in row.items()} for row in csv.DictReader(fh)]


# ------------------------------------------------------------------------------ entry point


def _start(cfg: BenchmarkConfig, out: Path, folds: list[Fold], resume: bool) -> None:
    """Record the config and folds; on resume, the folds must be those of the first start."""
    import yaml

    record = [f.to_dict() for f in folds]
    if resume and (out / "folds.json").is_file():
        if json.loads((out / "folds.json").read_text()) != record:
            raise InputError(out / "folds.json", "the folds differ from this config's (data or protocol changed); use another --out")
    write_text_atomic(out / "benchmark.yaml", cfg.source.read_text(encoding="utf-8"))
    write_json_atomic(out / "folds.json", record)
    write_text_atomic(out / "methods.yaml", yaml.safe_dump({m.name: m.train for m in cfg.methods}, sort_keys=False))


def run_benchmark(config_path: Path, out: Path, resume: bool = False) -> str:
    """Run every (method, fold) of the benchmark, then write the tables; returns the Markdown summary."""
    out = Path(out)
    if not resume and (out / "folds.json").is_file():
        raise InputError(out, "already holds a benchmark; use --resume or another --out")
    cfg = load_benchmark(config_path)
    paths = prepare_datasets(cfg, out)
    cases = load_cases(paths)
    folds = build_folds(cfg.protocol, cases)
    _start(cfg, out, folds, resume)
    by_key = {(name, c.case_id): c for name, found in cases.items() for c in found}
    rows: list[dict[str, Any]] = []
    total, done = len(cfg.methods) * len(folds), 0
    for method in cfg.methods:
        for fold in folds:
            done += 1
            logger.info("[%d/%d] %s, fold %s", done, total, method.name, fold.name)
            fold_dir = out / "runs" / method.name / fold.name
            run_fold(cfg, method, fold, paths, by_key, fold_dir)
            rows += read_rows(fold_dir / "metrics.csv")
    from mslesion.evaluate.case_metrics import CASE_COLUMNS

    write_csv_atomic(out / "metrics.csv", rows, ID_COLUMNS + list(CASE_COLUMNS))
    from mslesion.benchmark.results import write_results

    return write_results(cfg, out, rows)
