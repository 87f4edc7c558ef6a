"""End to end: 2 methods x 2 leave-site-out folds on the tiny dataset, outputs, and --resume skipping finished folds."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mslesion.benchmark.config import DEFAULT_METRICS
from mslesion.benchmark.run import run_benchmark
from mslesion.cli import app
from mslesion.errors import InputError

METHODS = [
    {"name": "BM", "train": {"model": {"architecture": "unet-bm", "params": {"features": [4, 8, 8, 8, 8]}}}},
    {
        "name": "SI-uniform",
        "train": {"model": {"architecture": "scanner-invariant", "params": {"features": [4, 8, 8, 8, 8], "aux": "uniform"}}},
    },
]


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def fake_stages(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Path, bool]]:
    """Training and segmentation replaced by stand-ins (the harness's own logic runs for real, in ~1 s):
    "training" writes a checkpoint, a model card and a summary; "segmentation" returns the reference mask."""
    from mslesion import pipeline
    from mslesion.train import run as train_run

    calls: list[tuple[Path, bool]] = []

    def fake_training(config: Path, out: Path, resume: bool = False) -> dict:
        calls.append((out, resume))
        (out / "checkpoint").mkdir(parents=True, exist_ok=True)
        (out / "model").mkdir(exist_ok=True)
        (out / "model" / "model.json").write_text("{}")
        summary = {"steps": 2, "resumed": resume}
        (out / "summary.json").write_text(json.dumps(summary))
        return summary

    def fake_segment(images: dict, out: Path, model: Path, brain_mask: Path | None, flips: int, overlap: float) -> None:
        assert set(images) == {"FLAIR", "T1"} and flips == 1 and (Path(model) / "model.json").is_file()
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(images["FLAIR"]).parent / "lesion.nii.gz", out / "lesion_mask.nii.gz")
        (out / "summary.json").write_text("{}")

    monkeypatch.setattr(train_run, "run_training", fake_training)
    monkeypatch.setattr(pipeline, "segment", fake_segment)
    return calls


def test_outputs_then_resume_skips_finished_folds(tiny_dataset: Path, bench_yaml, tmp_path: Path, fake_stages) -> None:
    config, out = bench_yaml(methods=METHODS), tmp_path / "bench"
    text = run_benchmark(config, out)
    assert len(fake_stages) == 4 and all(not resume for _, resume in fake_stages)

    rows = _read(out / "metrics.csv")
    assert len(rows) == 2 * 6 and {r["role"] for r in rows} == {"test"} and {r["dice"] for r in rows} == {"1.0"}
    assert {(r["method"], r["fold"]) for r in rows} == {(m, f) for m in ("BM", "SI-uniform") for f in ("site-A", "site-B")}
    for r in rows:  # leave-site-out: each case is tested by the fold holding out its own site
        assert r["fold"] == f"site-{r['site']}"
    summary = _read(out / "tables" / "summary.csv")
    assert {r["metric"] for r in summary} == set(DEFAULT_METRICS) | {"corr", "hybrid_score"}
    assert sum(r["is_best"] == "True" for r in summary if r["metric"] == "dice") == 1
    assert {r["site"] for r in _read(out / "tables" / "per_site.csv")} == {"A", "B", "mean of sites"}
    assert "## Test set: leave-site-out" in text and "| method | A | B | mean of sites |" in text
    assert (out / "summary.md").read_text() == text
    assert all((out / "tables" / "leave-site-out" / f"{m}.png").stat().st_size > 1000 for m in DEFAULT_METRICS)
    assert json.loads((out / "folds.json").read_text())[0]["exclude"] == ["c0", "c1", "c2"]

    with pytest.raises(InputError, match="already holds a benchmark; use --resume"):
        run_benchmark(config, out)

    # A crash during the last fold's training: no metrics, no training summary, a checkpoint left.
    last = out / "runs" / "SI-uniform" / "site-B"
    (last / "metrics.csv").unlink()
    (last / "train" / "summary.json").unlink()
    shutil.rmtree(last / "pred")
    finished = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/metrics.csv")}
    assert len(finished) == 3
    fake_stages.clear()
    result = CliRunner().invoke(app, ["benchmark", "--config", str(config), "--out", str(out), "--resume"])
    assert result.exit_code == 0, result.output
    assert fake_stages == [(last / "train", True)]  # only the unfinished fold, continued from its checkpoint
    assert {p: p.stat().st_mtime_ns for p in finished} == finished
    assert len(_read(out / "metrics.csv")) == 12 and (last / "metrics.csv").is_file()


def test_changed_method_config_refuses_resume(tiny_dataset: Path, bench_yaml, tmp_path: Path, fake_stages) -> None:
    out = tmp_path / "bench"
    run_benchmark(bench_yaml(), out)
    (out / "runs" / "BM" / "site-B" / "metrics.csv").unlink()
    changed = bench_yaml(methods=[{"name": "BM", "train": {"model": {"architecture": "unet-bm", "params": {"features": [4, 4, 8, 8, 8]}}}}])
    with pytest.raises(InputError, match="training config changed since the fold started"):
        run_benchmark(changed, out, resume=True)
    with pytest.raises(InputError, match="the folds differ"):
        run_benchmark(bench_yaml(protocol={"kind": "kfold", "k": 2}), out, resume=True)


def test_cross_dataset_consistency_table(tmp_path: Path, nifti_writer, tiny_dataset: Path, bench_yaml, fake_stages) -> None:
    """Two models (trained on A, on B) segment the same cases: the consistency table has their Dice."""
    config = bench_yaml(
        datasets={"a": str(tiny_dataset), "b": str(tiny_dataset), "t": str(tiny_dataset)},
        protocol={
            "kind": "cross-dataset",
            "folds": [{"name": "on-a", "train": ["a"], "test": ["t"]}, {"name": "on-b", "train": ["b"], "test": ["t"]}],
        },
    )
    text = run_benchmark(config, tmp_path / "cross")
    (record,) = _read(tmp_path / "cross" / "tables" / "consistency.csv")
    assert (record["method"], record["fold_a"], record["fold_b"], record["n"]) == ("BM", "on-a", "on-b", "6")
    assert float(record["mean"]) == 1.0  # both stand-in models return the reference mask
    assert "## Test set: on-a -> t" in text and "## Test set: on-b -> t" in text and "| BM | on-a vs on-b | 6 |" in text


@pytest.mark.slow
def test_end_to_end_real_training(tiny_dataset: Path, bench_yaml, tmp_path: Path) -> None:
    """The real stages: 2 methods x 2 folds, 2 training steps each, segment, evaluate (about 25 s)."""
    out = tmp_path / "bench"
    run_benchmark(bench_yaml(methods=METHODS), out)
    rows = _read(out / "metrics.csv")
    assert len(rows) == 12 and all(0.0 <= float(r["dice"]) <= 1.0 for r in rows)
    card = json.loads((out / "runs" / "SI-uniform" / "site-A" / "train" / "model" / "model.json").read_text())
    assert card["architecture"] == "scanner-invariant" and card["training"]["sites"] == ["B"]
    assert set(card["training"]["cases"] + card["training"]["validation_cases"]) == {"c3", "c4", "c5"}


def test_cli_reports_bad_config_in_one_line(tmp_path: Path, bench_yaml) -> None:
    result = CliRunner().invoke(app, ["benchmark", "--config", str(bench_yaml(protocol={"kind": "x"})), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "protocol.kind must be one of" in result.output


@pytest.mark.slow
def test_smoke_config_runs(tmp_path: Path) -> None:
    """configs/benchmarks/smoke.yaml as shipped: synthetic 2-site data, 2 methods x 2 folds (about 40 s)."""
    config = Path(__file__).resolve().parents[2] / "configs" / "benchmarks" / "smoke.yaml"
    text = run_benchmark(config, tmp_path / "smoke")
    assert "| method | site0 | site1 | mean of sites |" in text
    assert len(_read(tmp_path / "smoke" / "metrics.csv")) == 6 * 2


def test_synthesised_datasets_get_absolute_paths(tmp_path: Path, bench_yaml, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fold training configs live in OUT/runs/...: a relative --out must not leave them relative dataset paths."""
    from mslesion.benchmark.config import load_benchmark
    from mslesion.benchmark.run import prepare_datasets

    config = bench_yaml(datasets={"ph": {"synth": {"n": 1, "sites": 1, "seed": 0, "resolution": 3.0, "deform": False}}})
    monkeypatch.chdir(tmp_path)
    paths = prepare_datasets(load_benchmark(config), Path("relative_out"))
    assert paths["ph"].is_absolute() and (paths["ph"] / "manifest.csv").is_file()
