"""Fold construction: k-fold, leave-one-site-out and cross-dataset; test cases never reach training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mslesion.benchmark.config import CrossFold, Protocol, ProtocolSpec, load_benchmark
from mslesion.benchmark.protocol import build_folds
from mslesion.errors import InputError
from mslesion.io.case import Case, CaseMeta
from mslesion.io.volume import Volume


def _cases(prefix: str, sites: list[str]) -> list[Case]:
    vol = Volume.from_array(np.zeros((2, 2, 2), np.float32), np.eye(4))
    return [Case(f"{prefix}{i}", {"FLAIR": vol}, lesion=vol, meta=CaseMeta(site=s)) for i, s in enumerate(sites)]


def test_kfold_tests_every_case_exactly_once() -> None:
    cases = {"d": _cases("c", ["A"] * 7)}
    folds = build_folds(ProtocolSpec(Protocol.KFOLD, datasets=["d"], k=3, seed=4), cases)
    tested = [key for f in folds for key in f.test]
    assert sorted(tested) == [("d", f"c{i}") for i in range(7)]
    assert [len(f.test) for f in folds] == [3, 2, 2]
    for fold in folds:
        assert fold.exclude == [cid for _, cid in fold.test] and fold.train_datasets == ["d"]
    again = build_folds(ProtocolSpec(Protocol.KFOLD, datasets=["d"], k=3, seed=4), cases)
    assert [f.test for f in again] == [f.test for f in folds]  # deterministic: same folds for every method


def test_leave_site_out_holds_out_exactly_one_site() -> None:
    cases = {"d": _cases("c", ["A", "B", "C", "A", "B", "C"]), "u": _cases("u", ["X", "Y"])}
    folds = build_folds(ProtocolSpec(Protocol.LEAVE_SITE_OUT, datasets=["d"], consistency=["u"]), cases)
    assert [f.name for f in folds] == ["site-A", "site-B", "site-C"]
    by_id = {c.case_id: c.meta.site for c in cases["d"]}
    for fold in folds:
        assert {by_id[cid] for _, cid in fold.test} == {fold.held_out_site}
        assert len(fold.test) == 2 and fold.consistency == [("u", "u0"), ("u", "u1")]
    only = build_folds(ProtocolSpec(Protocol.LEAVE_SITE_OUT, datasets=["d"], sites=["B"]), cases)
    assert [f.held_out_site for f in only] == ["B"]


def test_cross_dataset_trains_on_a_and_tests_on_b() -> None:
    cases = {"a": _cases("a", ["s"] * 3), "b": _cases("b", ["t"] * 2)}
    (fold,) = build_folds(ProtocolSpec(Protocol.CROSS_DATASET, folds=[CrossFold(["a"], ["b"])]), cases)
    assert fold.name == "a" and fold.train_datasets == ["a"] and fold.exclude == []
    assert fold.test == [("b", "b0"), ("b", "b1")]


@pytest.mark.parametrize(
    ("spec", "cases", "message"),
    [
        (ProtocolSpec(Protocol.LEAVE_SITE_OUT, datasets=["d"]), {"d": _cases("c", ["A", "A"])}, "has A"),
        (ProtocolSpec(Protocol.LEAVE_SITE_OUT, datasets=["d"], sites=["Z"]), {"d": _cases("c", ["A", "B"])}, "sites Z not usable"),
        (ProtocolSpec(Protocol.LEAVE_SITE_OUT, datasets=["d"]), {"d": _cases("c", ["A", None])}, "needs a site for every case"),
        (ProtocolSpec(Protocol.KFOLD, datasets=["d"], k=5), {"d": _cases("c", ["A"] * 3)}, "more than the 3 usable cases"),
        (
            ProtocolSpec(Protocol.KFOLD, datasets=["d", "e"], k=2),
            {"d": _cases("c", ["A"] * 2), "e": _cases("c", ["A"])},
            "case id 'c0' is in both d and e",
        ),
    ],
)
def test_bad_folds_are_input_errors(spec: ProtocolSpec, cases: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        build_folds(spec, cases)


@pytest.mark.parametrize("kind", ["leave-site-out", "kfold"])
def test_no_test_case_reaches_training(kind: str, tiny_dataset: Path, bench_yaml, tmp_path: Path) -> None:
    """The fold's training config, read by the trainer's own loader, has none of the fold's test cases."""
    import yaml

    from mslesion.benchmark.run import fold_train_config, load_cases
    from mslesion.train import run as train_run
    from mslesion.train.config import load_config

    cfg = load_benchmark(bench_yaml(protocol={"kind": kind, "k": 3}))
    paths = {"tiny": tiny_dataset}
    folds = build_folds(cfg.protocol, load_cases(paths))
    assert len(folds) == (2 if kind == "leave-site-out" else 3)
    for fold in folds:
        path = tmp_path / f"{fold.name}.yaml"
        path.write_text(yaml.safe_dump(fold_train_config(cfg.methods[0], fold, paths)))
        train, val = train_run.load_cases(load_config(path))
        seen = {c.case_id for c in train + val}
        tested = {cid for _, cid in fold.test}
        assert tested and not seen & tested and seen | tested == {f"c{i}" for i in range(6)}
